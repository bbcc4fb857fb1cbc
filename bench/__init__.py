"""Benchmarks of the telemetry package (not installed with it): ``bench/run.py``."""
