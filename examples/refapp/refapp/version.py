"""The app's version, read from the VERSION file beside it (as Sublarr's ``backend/version.py``)."""
from __future__ import annotations

from pathlib import Path

__version__ = (Path(__file__).with_name("VERSION").read_text(encoding="utf-8").strip()
               if Path(__file__).with_name("VERSION").is_file() else "0+unknown")
