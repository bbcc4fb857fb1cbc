"""A small reference app shaped like Sublarr, used to exercise sublarr-telemetry.

It has Sublarr's moving parts (Flask API, SQLAlchemy models, a memory or Redis
cache, a memory or RQ job queue, subtitle providers behind circuit breakers)
with simulated provider and translation work, so the telemetry layer can be
demonstrated and tested against something realistic without Sublarr itself.
"""
from __future__ import annotations

from refapp.version import __version__
from refapp.app import create_app
from refapp.config import Config

__all__ = ["Config", "__version__", "create_app"]
