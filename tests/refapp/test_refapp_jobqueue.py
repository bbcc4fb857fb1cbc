"""MemoryJobQueue bookkeeping: statuses, exact counts, bounded history."""
from __future__ import annotations

import threading

import pytest
from flask import Flask, current_app

from refapp import jobs
from refapp.jobqueue import MemoryJobQueue


@pytest.fixture
def flask_app():
    return Flask("queue-test")


@pytest.fixture
def make_queue(flask_app):
    queues = []

    def make(**kwargs):
        queue = MemoryJobQueue(flask_app, **kwargs)
        queues.append(queue)
        return queue

    yield make
    for queue in queues:
        queue.shutdown(wait=True)


def test_queued_and_active_counts(make_queue, wait_until):
    queue = make_queue(workers=2)
    release = threading.Event()
    ids = [queue.enqueue(release.wait, 5) for _ in range(5)]

    wait_until(lambda: queue.count_active() == 2)
    assert queue.count_queued() == queue.get_queue_length() == 3
    assert len(queue.get_active_jobs()) == 2
    assert sorted(queue.get_job(i)["status"] for i in ids) == ["queued"] * 3 + ["started"] * 2
    info = queue.get_backend_info()
    assert (info["type"], info["queued"], info["active"], info["failed"]) == ("memory", 3, 2, 0)

    release.set()
    wait_until(lambda: all(queue.get_job(i)["status"] == "finished" for i in ids))
    assert (queue.count_queued(), queue.count_active(), queue.count_failed()) == (0, 0, 0)
    assert queue.get_job(ids[0])["result"] is True


def test_jobs_run_inside_app_context(make_queue, wait_until):
    queue = make_queue()
    job_id = queue.enqueue(lambda: current_app.name)
    job = wait_until(lambda: (j := queue.get_job(job_id)) and j["status"] == "finished" and j)
    assert job["result"] == "queue-test"


def test_failed_count_is_exact_with_no_cap_at_100(make_queue, wait_until):
    queue = make_queue(workers=4)
    for _ in range(150):
        queue.enqueue(jobs.always_fails)

    wait_until(lambda: queue.count_failed() == 150 and queue.count_active() == 0)
    failed = queue.get_failed_jobs()
    assert len(failed) == 150
    assert all(j["status"] == "failed" and "deliberate failure" in j["error"] for j in failed)
    assert queue.get_backend_info()["failed"] == 150


def test_failed_details_are_bounded_but_count_is_not(make_queue, wait_until):
    queue = make_queue(failed_history=10)
    ids = [queue.enqueue(jobs.always_fails) for _ in range(25)]
    wait_until(lambda: queue.count_failed() == 25 and queue.count_active() == 0)
    failed = queue.get_failed_jobs()
    assert len(failed) == 10
    assert {j["id"] for j in failed} <= set(ids)


def test_old_finished_records_are_forgotten(make_queue, wait_until):
    queue = make_queue(workers=1, history=5)
    ids = [queue.enqueue(int, i) for i in range(20)]
    wait_until(lambda: (j := queue.get_job(ids[-1])) and j["status"] == "finished")
    assert queue.get_job(ids[0]) is None
    assert queue.get_job(ids[-1])["result"] == 19


def test_explicit_job_id_and_duplicates(make_queue, wait_until):
    queue = make_queue(workers=1)
    release = threading.Event()
    assert queue.enqueue(release.wait, 5, job_id="mine") == "mine"
    with pytest.raises(ValueError, match="mine"):
        queue.enqueue(release.wait, 5, job_id="mine")
    release.set()
    wait_until(lambda: queue.get_job("mine")["status"] == "finished")
    assert queue.get_job("unknown") is None


def test_enqueue_after_shutdown_fails_cleanly(make_queue):
    queue = make_queue()
    queue.shutdown()
    with pytest.raises(RuntimeError):
        queue.enqueue(int)
    assert queue.count_queued() == 0
