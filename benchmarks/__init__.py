"""Benchmarks: speed and memory targets, each reported as a ratio against a baseline measured in the same
run. Never timed assertions in tests. Run with `make bench` (or `python -m benchmarks [name ...]`)."""
