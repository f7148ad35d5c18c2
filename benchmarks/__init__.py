"""Benchmarks (not tests): each prints its figures and writes them to var/bench/. See BENCHMARKS.md."""
