"""Benchmarks (not run by the test suite); each sub-folder runs with one command."""
