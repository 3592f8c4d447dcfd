"""Fuzzing PyFlameRT against onnxruntime: hypothesis-generated (model, feed) cases run in checked
builds in child processes. `python -m tests.fuzz --help` runs a campaign (README.md, "Fuzzing")."""
