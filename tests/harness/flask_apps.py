"""Small Flask apps the HTTP tests instrument."""
from __future__ import annotations

from flask import Flask, abort

from telemetry import Settings, Telemetry


def build_app(settings: Settings | None = None, **telemetry_kwargs) -> tuple[Flask, Telemetry]:
    """A tiny Flask app with the route shapes the HTTP tests need."""
    app = Flask("http_test_app", static_folder=None)
    app.static_folder = None

    @app.get("/api/v1/jobs/<int:job_id>")
    def job(job_id):
        return {"id": job_id}

    @app.post("/api/v1/jobs")
    def create_job():
        return {"created": True}, 201

    @app.get("/api/v1/missing/<name>")
    def missing(name):
        abort(404)

    @app.get("/api/v1/boom")
    def boom():
        raise RuntimeError("boom")

    @app.get("/api/v1/health")
    def health():
        return {"status": "ok"}

    telemetry = Telemetry(settings=settings or Settings(), **telemetry_kwargs)
    telemetry.init_app(app)
    return app, telemetry
