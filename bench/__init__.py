"""Benchmarks: `make bench` runs every bench/bench_*.py (or those named: python -m bench NAME...)."""
