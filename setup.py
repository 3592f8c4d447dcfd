"""Builds the C runtime through cffi at install; everything else is in pyproject.toml."""
from setuptools import setup

setup(cffi_modules=["runtime/build_runtime.py:ffibuilder"])
