"""Translation simulation and the queue-agnostic job functions."""
from __future__ import annotations

import random

import pytest
from sqlalchemy.orm import sessionmaker

from refapp import jobs, translation
from refapp.models import Translation, TranslationJob, init_db, make_engine


@pytest.fixture
def db(tmp_path):
    url = f"sqlite:///{tmp_path / 'jobs.db'}"
    engine = make_engine(url)
    init_db(engine)
    yield url, sessionmaker(bind=engine, expire_on_commit=False)
    engine.dispose()


@pytest.fixture
def events(monkeypatch):
    calls = []
    monkeypatch.setattr(translation.events, "translation_finished", lambda **kw: calls.append(kw))
    return calls


def add_job(factory, source="en", target="de", fmt="srt") -> int:
    with factory() as session:
        job = TranslationJob(file_path="/m/x.mkv", source_lang=source, target_lang=target, fmt=fmt)
        session.add(job)
        session.commit()
        return job.id


def row(factory, job_id):
    with factory() as session:
        job = session.get(TranslationJob, job_id)
        count = session.query(Translation).filter_by(job_id=job_id).count()
        return job, count


@pytest.mark.parametrize(
    ("source", "target", "failure_rate", "status", "rows"),
    [("en", "de", 0.0, "success", 1), ("en", "de", 1.0, "failed", 0), ("en", "en", 0.0, "skipped", 0)],
)
def test_translate_job_outcomes(db, events, source, target, failure_rate, status, rows):
    _, factory = db
    job_id = add_job(factory, source, target, fmt="ass")
    result = translation.translate_job(factory, job_id, 0.0, random.Random(1), failure_rate)

    job, count = row(factory, job_id)
    assert result == job.status == status
    assert job.finished_at is not None
    assert count == rows
    assert len(events) == 1
    assert (events[0]["status"], events[0]["fmt"]) == (status, "ass")
    assert events[0]["duration"] >= 0


def test_translate_missing_job_raises(db, events):
    with pytest.raises(translation.JobNotFound):
        translation.translate_job(db[1], 404, 0.0, random.Random(1))
    assert events == []


def test_run_translation_outside_app_uses_environment(db, events, monkeypatch):
    url, factory = db
    monkeypatch.setenv("SUBLARR_DATABASE_URL", url)
    monkeypatch.setenv("SUBLARR_SIM_LATENCY_SCALE", "0")
    monkeypatch.setenv("SUBLARR_SIM_FAILURE_RATE", "0")
    monkeypatch.delenv("SUBLARR_REDIS_URL", raising=False)
    monkeypatch.setattr(jobs, "_process_context", None)
    job_id = add_job(factory)
    try:
        assert jobs.run_translation(job_id) == "success"
        assert row(factory, job_id)[0].status == "success"
        built = jobs._process_context
        jobs.run_translation(add_job(factory))
        assert jobs._process_context is built  # engine built once per process
    finally:
        if jobs._process_context is not None:
            jobs._process_context[1].dispose()


def test_run_translation_raises_so_queues_count_failures(db, events, monkeypatch):
    url, factory = db
    monkeypatch.setenv("SUBLARR_DATABASE_URL", url)
    monkeypatch.setenv("SUBLARR_SIM_LATENCY_SCALE", "0")
    monkeypatch.setenv("SUBLARR_SIM_FAILURE_RATE", "1")
    monkeypatch.setattr(jobs, "_process_context", None)
    job_id = add_job(factory)
    try:
        with pytest.raises(jobs.TranslationFailed):
            jobs.run_translation(job_id)
        assert row(factory, job_id)[0].status == "failed"
    finally:
        if jobs._process_context is not None:
            jobs._process_context[1].dispose()


def test_always_fails():
    with pytest.raises(RuntimeError):
        jobs.always_fails()
