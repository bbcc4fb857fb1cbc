"""The JSON API under /api/v1, shaped like Sublarr's.

Each route touches one infrastructure piece the telemetry layer watches: the
database (jobs, wanted), the queue (job submission), the cache (search and
series lookups), the providers (search, download) and error handling.
"""
from __future__ import annotations

import math

from flask import Blueprint, current_app, jsonify, request
from sqlalchemy import select

from refapp import jobs
from refapp.models import SUBTITLE_FORMATS, TranslationJob, WantedItem, utcnow
from refapp.providers import CircuitOpenError, ProviderError, UnknownProviderError

SEARCH_TTL = 120.0  # seconds; short, so a provider that recovers is seen soon
SERIES_TTL = 600.0

api = Blueprint("api", __name__, url_prefix="/api/v1")


def _db():
    """The request's (or queue thread's) session; removed at app-context teardown."""
    return current_app.session_factory()


def _error(status: int, message: str):
    return jsonify(error=message), status


def _text(body: dict, key: str, default: str | None = None, max_len: int = 512) -> str | None:
    value = body.get(key, default)
    if isinstance(value, str) and 0 < len(value.strip()) <= max_len:
        return value.strip()
    return None


@api.get("/health")
def health():
    return {"status": "ok"}


@api.get("/jobs")
def list_jobs():
    limit = max(1, min(request.args.get("limit", 50, type=int), 500))
    rows = _db().scalars(select(TranslationJob).order_by(TranslationJob.id.desc()).limit(limit))
    return [row.as_dict() for row in rows]


@api.get("/jobs/<int:job_id>")
def get_job(job_id: int):
    job = _db().get(TranslationJob, job_id)
    if job is None:
        return _error(404, f"job {job_id} not found")
    return job.as_dict()


@api.post("/jobs")
def submit_job():
    body = request.get_json(silent=True) or {}
    file_path = _text(body, "file_path", max_len=1024)
    source_lang = _text(body, "source_lang", "en", max_len=16)
    target_lang = _text(body, "target_lang", "de", max_len=16)
    fmt = body.get("fmt", "srt")
    if not (file_path and source_lang and target_lang):
        return _error(400, "file_path, source_lang and target_lang must be non-empty strings")
    if fmt not in SUBTITLE_FORMATS:
        return _error(400, f"fmt must be one of {', '.join(SUBTITLE_FORMATS)}")

    session = _db()
    job = TranslationJob(file_path=file_path, source_lang=source_lang, target_lang=target_lang, fmt=fmt)
    session.add(job)
    session.commit()
    try:
        queue_job_id = current_app.job_queue.enqueue(jobs.run_translation, job.id)
    except Exception:
        # Not queued (e.g. Redis down): don't leave a row pending forever.
        job.status, job.finished_at = "failed", utcnow()
        session.commit()
        raise
    return {"id": job.id, "queue_job_id": queue_job_id, "status": job.status}, 202


@api.get("/wanted")
def list_wanted():
    rows = _db().scalars(select(WantedItem).order_by(WantedItem.id.desc()).limit(500))
    return [row.as_dict() for row in rows]


@api.post("/wanted")
def add_wanted():
    body = request.get_json(silent=True) or {}
    title = _text(body, "title")
    language = _text(body, "language", "en", max_len=16)
    if not (title and language):
        return _error(400, "title and language must be non-empty strings")
    session = _db()
    item = WantedItem(title=title, language=language, status="wanted")
    session.add(item)
    session.commit()
    return item.as_dict(), 201


@api.post("/wanted/<int:item_id>/search")
def search_wanted(item_id: int):
    session = _db()
    item = session.get(WantedItem, item_id)
    if item is None:
        return _error(404, f"wanted item {item_id} not found")

    cache = current_app.cache_backend
    key = f"search:{item.title}:{item.language}"
    results = cache.get(key)
    cached = results is not None
    if not cached:
        results = current_app.extensions["provider_manager"].search(item.title, item.language)
        cache.set(key, results, ttl=SEARCH_TTL)
    if results and item.status != "found":
        item.status = "found"
        session.commit()
    return {"item_id": item_id, "cached": cached, "results": results}


@api.post("/providers/<name>/download")
def download(name: str):
    body = request.get_json(silent=True) or {}
    result = {k: body[k] for k in ("id", "fmt", "title") if k in body}
    try:
        subtitle = current_app.extensions["provider_manager"].download(name, result)
    except UnknownProviderError:
        return _error(404, f"unknown provider {name!r}")
    except ValueError as exc:
        return _error(400, str(exc))
    except CircuitOpenError as exc:
        response, status = _error(503, str(exc))
        response.headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after)))
        return response, status
    except ProviderError as exc:
        return _error(502, str(exc))
    return subtitle


@api.get("/series/<int:series_id>")
def get_series(series_id: int):
    cache = current_app.cache_backend
    key = f"series:{series_id}"
    series = cache.get(key)
    cached = series is not None
    if not cached:
        series = _series_info(series_id)
        cache.set(key, series, ttl=SERIES_TTL)
    return {**series, "cached": cached}


def _series_info(series_id: int) -> dict:
    """Stand-in for a slow metadata lookup (Sonarr/TMDB in Sublarr)."""
    return {
        "id": series_id,
        "title": f"Series {series_id}",
        "seasons": 1 + series_id % 7,
        "episodes": 6 + (series_id * 5) % 20,
    }


@api.get("/debug/error")
def debug_error():
    raise RuntimeError("deliberate unhandled error (tests 500 handling)")


@api.get("/status")
def status():
    return {
        "queue": current_app.job_queue.get_backend_info(),
        "cache": current_app.cache_backend.get_stats(),
        "providers": current_app.extensions["provider_manager"].breaker_states(),
    }
