"""Importers: external model formats -> graph dialect; one package per format."""
