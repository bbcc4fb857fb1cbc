"""The server fixtures give real, controllable Redis and PostgreSQL instances."""
from __future__ import annotations

import socket
import time

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from sqlalchemy import create_engine, text

pytestmark = pytest.mark.e2e


def _redis(url: str, timeout: float = 2.0) -> redis.Redis:
    """No retries: a timeout must surface after one socket_timeout, not four."""
    return redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout,
                                retry=Retry(NoBackoff(), 0))


def _scalar(url: str, sql: str):
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(text(sql)).scalar_one()
    finally:
        engine.dispose()


def test_redis_set_get_round_trip(redis_url):
    client = _redis(redis_url)
    client.set("greeting", "hello")
    assert client.get("greeting") == b"hello"
    client.close()


def test_redis_url_starts_empty(redis_server, redis_url):
    assert redis_url == f"redis://127.0.0.1:{redis_server.port}/0"
    assert _redis(redis_url).dbsize() == 0


def test_paused_redis_accepts_tcp_but_never_answers(redis_server, redis_url):
    client = _redis(redis_url, timeout=0.5)
    assert client.ping()
    client.close()  # the timeout must come from the server, not a reused connection
    redis_server.pause()
    try:
        with socket.create_connection(("127.0.0.1", redis_server.port), timeout=1):
            pass  # the kernel completes the handshake from the listen backlog
        started = time.monotonic()
        with pytest.raises(redis.exceptions.TimeoutError):
            client.ping()
        assert time.monotonic() - started < 2
    finally:
        redis_server.resume()
    assert client.ping()


def test_redis_restart_keeps_port_and_starts_empty(redis_server, redis_url):
    _redis(redis_url).set("gone", "soon")
    old_pid = redis_server.pid
    redis_server.restart()
    assert redis_server.pid != old_pid
    assert redis_server.url == redis_url
    assert _redis(redis_url).get("gone") is None


def test_postgres_select_and_database_size(postgres_server, postgres_url):
    assert _scalar(postgres_url, "SELECT 1") == 1
    assert _scalar(postgres_url, "SELECT pg_database_size(current_database())") > 0
    assert _scalar(postgres_server.url, "SELECT current_database()") == "sublarr_test"


def test_postgres_url_is_a_fresh_database_per_test(postgres_server, postgres_url):
    name = _scalar(postgres_url, "SELECT current_database()")
    assert name != postgres_server.database
    assert _scalar(postgres_url, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == 0


def test_postgres_restart_keeps_data(postgres_server, postgres_url):
    engine = create_engine(postgres_url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE kept (id int PRIMARY KEY, name text)"))
        conn.execute(text("INSERT INTO kept VALUES (1, 'survives')"))
    old_pid, port = postgres_server.pid, postgres_server.port
    postgres_server.restart()
    assert postgres_server.pid != old_pid and postgres_server.port == port
    engine.dispose()  # pooled connections died with the old server
    with engine.connect() as conn:
        assert conn.execute(text("SELECT name FROM kept WHERE id = 1")).scalar_one() == "survives"
    engine.dispose()
