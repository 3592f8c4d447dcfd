"""Kernel generators: each returns a func.func with the runtime's task signature."""
