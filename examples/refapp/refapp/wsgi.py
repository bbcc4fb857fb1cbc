"""WSGI entry point: ``gunicorn refapp.wsgi:app`` (configured from SUBLARR_*)."""
from __future__ import annotations

from refapp.app import create_app

app = create_app()
