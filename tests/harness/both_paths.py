"""The workload of the "same series on both paths" tests: one in-process web
app serving /metrics and pushing OTLP (service.name sublarr-web), and an
in-process RQ SimpleWorker pushing OTLP (sublarr-worker), both exercised so
that every contract family the two can produce has data.

The OTLP endpoint comes from ``push_env`` (variables such as
``OTEL_EXPORTER_OTLP_METRICS_ENDPOINT``), so the same workload feeds the
collector or Prometheus 3's OTLP receiver.
"""
from __future__ import annotations

import redis


def run_web_and_worker(monkeypatch, redis_url: str, tmp_path, push_env: dict[str, str]):
    """Exercise both; returns (app, test client), the app still running (the
    caller scrapes it and shuts it down), the worker's last push done."""
    from refapp import Config, create_app, jobs
    from rq import Queue
    from telemetry.rq_worker import SimpleWorker, WorkerTelemetry

    for key, value in push_env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("OTEL_METRICS_EXPORTER", "prometheus,otlp")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "sublarr-web")
    env = {"SUBLARR_DATABASE_URL": f"sqlite:///{tmp_path}/both.db", "SUBLARR_REDIS_URL": redis_url,
           "SUBLARR_DATA_DIR": str(tmp_path), "SUBLARR_SIM_LATENCY_SCALE": "0", "SUBLARR_SIM_FAILURE_RATE": "0"}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    app = create_app(Config.from_env(env))
    client = app.test_client()
    client.post("/api/v1/wanted", json={"title": "Show", "language": "de"})
    for i in range(5):
        client.post("/api/v1/wanted/1/search")
        client.get(f"/api/v1/series/{i % 2}")
        client.post("/api/v1/jobs", json={"file_path": f"/m/{i}.ass", "source_lang": "en",
                                          "target_lang": "de", "fmt": "ass"})
        client.get("/nope")
    client.post("/api/v1/providers/podnapisi/download", json={"id": "1", "fmt": "srt", "title": "Show"})
    app.job_queue.enqueue(jobs.always_fails)

    monkeypatch.setenv("OTEL_METRICS_EXPORTER", "otlp")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "sublarr-worker")
    worker_telemetry = WorkerTelemetry(job_functions=jobs.JOB_FUNCTIONS)
    connection = redis.Redis.from_url(redis_url)
    SimpleWorker([Queue("sublarr", connection=connection)], connection=connection,
                 telemetry=worker_telemetry).work(burst=True)
    worker_telemetry.shutdown()  # final push
    return app, client


def enqueue_translations(engine, queue, n: int, fmt: str = "srt") -> None:
    """``n`` pending translation rows (en -> de, in ``fmt``) in the refapp database
    of ``engine``, one ``run_translation`` job each on the RQ ``queue``."""
    from refapp import jobs
    from refapp.models import TranslationJob
    from sqlalchemy.orm import Session

    with Session(engine) as session:
        rows = [TranslationJob(file_path=f"/m/{i}.{fmt}", source_lang="en", target_lang="de", fmt=fmt,
                               status="pending") for i in range(n)]
        session.add_all(rows)
        session.commit()
        ids = [r.id for r in rows]
    for job_id in ids:
        queue.enqueue(jobs.run_translation, job_id)


def enqueue_translations_at(db_url: str, redis_url: str, n: int) -> None:
    """:func:`enqueue_translations` into a fresh database at ``db_url`` and the app's RQ queue."""
    from refapp.models import init_db, make_engine
    from rq import Queue

    engine = make_engine(db_url)
    init_db(engine)
    try:
        enqueue_translations(engine, Queue("sublarr", connection=redis.Redis.from_url(redis_url)), n)
    finally:
        engine.dispose()
