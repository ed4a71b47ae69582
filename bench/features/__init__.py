"""Helpers of bench/bench_features.py."""
