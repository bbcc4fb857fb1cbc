"""Sublarr's ``backend/metrics.py`` after adoption: one import line."""
from telemetry.sublarr_metrics import *  # noqa: F401,F403
