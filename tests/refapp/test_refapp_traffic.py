"""The traffic generator against a real werkzeug server on 127.0.0.1."""
from __future__ import annotations

import json
import random
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlalchemy import func, select
from werkzeug.serving import make_server

from harness.net import free_port
from refapp.models import TranslationJob
from refapp.traffic import MIX, Planner, TrafficGenerator


@pytest.fixture
def server(app):
    srv = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{srv.server_port}"
    srv.shutdown()
    thread.join(5)
    srv.server_close()


def test_planner_is_deterministic_and_covers_the_mix():
    def plan(seed, n=600):
        planner = Planner(random.Random(seed), ["a", "b"], [1, 2, 3])
        return [planner.next() for _ in range(n)]

    first = plan("7:0")
    assert first == plan("7:0")
    assert first != plan("8:0")
    assert {r.kind for r in first} == {kind for kind, _ in MIX}


def test_generator_exercises_the_app(app, server):
    generator = TrafficGenerator(server, rate=0, seed=5, threads=2)
    progress = []
    stats = generator.run(requests=200, on_progress=progress.append)

    assert stats.total == 200
    assert stats.errors == 0
    assert sum(stats.by_status.values()) == 200
    assert {200, 201, 202, 404, 500} <= set(stats.by_status)
    assert progress and progress[-1].total == 200

    # The server saw the submissions and the cached lookups.
    app.job_queue.shutdown(wait=True)
    with app.session_factory() as session:
        jobs = session.scalar(select(func.count()).select_from(TranslationJob))
    assert jobs == stats.by_status[202]
    assert app.cache_backend.get_stats()["hits"] > 0


class _KeepAliveHandler(BaseHTTPRequestHandler):
    """Answers everything with 200 JSON over HTTP/1.1, counting connections."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in separate writes
    connections: list[int] = []
    drop_idle = False  # close silently after each answer, like an idle-timeout

    def setup(self):
        super().setup()
        self.connections.append(1)

    def _answer(self):
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        body = json.dumps({"id": 1, "providers": {"a": "closed"}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        if self.drop_idle:
            self.close_connection = True

    do_GET = do_POST = _answer

    def log_message(self, *args):
        pass


def test_connections_are_kept_alive_when_the_server_allows():
    # werkzeug's dev server closes every connection; a stdlib HTTP/1.1 server does not.
    _KeepAliveHandler.connections = []
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _KeepAliveHandler)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        stats = TrafficGenerator(f"http://127.0.0.1:{srv.server_port}", rate=0, seed=3,
                                 threads=2).run(requests=60)
    finally:
        srv.shutdown()
        srv.server_close()
    assert stats.total == stats.by_status[200] == 60
    assert len(_KeepAliveHandler.connections) == 3  # seed_data's, then one per thread


def test_silently_dropped_keep_alive_connection_is_retried():
    _KeepAliveHandler.connections = []
    srv = ThreadingHTTPServer(("127.0.0.1", 0), type("Dropping", (_KeepAliveHandler,), {"drop_idle": True}))
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        stats = TrafficGenerator(f"http://127.0.0.1:{srv.server_port}", rate=50, seed=3).run(requests=10)
    finally:
        srv.shutdown()
        srv.server_close()
    assert stats.total == stats.by_status[200] == 10
    assert stats.errors == 0


def test_connection_closing_server_needs_no_retry_errors(server):
    stats = TrafficGenerator(server, rate=0, seed=3).run(requests=30)
    assert stats.total == 30 and stats.errors == 0


def test_rate_is_respected(server):
    started = time.monotonic()
    stats = TrafficGenerator(server, rate=40, seed=1).run(requests=12)
    elapsed = time.monotonic() - started
    assert stats.total == 12
    assert elapsed >= 11 / 40 * 0.9


def test_stop_event_and_duration_end_the_run(server):
    stop = threading.Event()
    threading.Timer(0.3, stop.set).start()
    started = time.monotonic()
    stats = TrafficGenerator(server, rate=20, seed=1).run(stop_event=stop)
    assert time.monotonic() - started < 3
    assert 1 <= stats.total <= 20

    stats = TrafficGenerator(server, rate=20, seed=1).run(duration=0.3)
    assert 1 <= stats.total <= 20


def test_network_errors_are_counted_not_raised():
    port = free_port()  # nothing listens there
    stats = TrafficGenerator(f"http://127.0.0.1:{port}", rate=0, seed=1).run(requests=5)
    assert stats.total == stats.errors == 5
    assert stats.by_status == {}
    assert sum(stats.error_types.values()) == 5


def test_rejects_non_http_url():
    with pytest.raises(ValueError):
        TrafficGenerator("ftp://example.invalid/")
