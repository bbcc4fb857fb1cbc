"""Several processes creating the schema of one fresh database at the same moment.

gunicorn -w N (and RQ workers beside it) all run ``init_db`` at start-up; a
failure there stops a worker from booting. Each round starts the processes
together on a new database, so the check-then-CREATE race gets many chances.
"""
import multiprocessing
import os
import subprocess
import time

from sqlalchemy import inspect

from refapp.models import Base, init_db, make_engine
from harness.net import answers_ok
from harness.support import free_port, terminate, venv_executable, wait_for

PROCESSES = 6
ROUNDS = 8


def _create_schema(url, barrier, errors):
    try:
        engine = make_engine(url)
        barrier.wait(timeout=30)
        init_db(engine)
        engine.dispose()
    except BaseException as exc:  # reported to the test, not lost in a child
        errors.put(f"{type(exc).__name__}: {exc}")


def _race(url):
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(PROCESSES)
    errors = context.Queue()
    workers = [context.Process(target=_create_schema, args=(url, barrier, errors)) for _ in range(PROCESSES)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    found = []
    while not errors.empty():
        found.append(errors.get())
    assert [w.exitcode for w in workers] == [0] * PROCESSES
    return found


def test_concurrent_schema_creation_on_sqlite(tmp_path):
    failures = []
    for round_no in range(ROUNDS):
        url = f"sqlite:///{tmp_path / f'round{round_no}.db'}"
        failures += _race(url)
        tables = set(inspect(make_engine(url)).get_table_names())
        assert tables == set(Base.metadata.tables), tables
    assert failures == []


def test_schema_creation_waits_for_a_writer_on_a_fresh_sqlite_file(tmp_path):
    """The case SQLite refuses at once instead of waiting: another process holds the write lock
    while this one's first connection switches the fresh file to WAL."""
    import sqlite3
    import threading

    path = tmp_path / "fresh.db"
    writer = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("CREATE TABLE other_process_table (x)")
    threading.Timer(0.5, lambda: writer.execute("COMMIT")).start()
    engine = make_engine(f"sqlite:///{path}")
    init_db(engine)
    assert set(inspect(engine).get_table_names()) == set(Base.metadata.tables) | {"other_process_table"}
    engine.dispose()
    writer.close()


def test_concurrent_schema_creation_on_postgresql(postgres_url):
    from sqlalchemy import text

    engine = make_engine(postgres_url)
    for _ in range(3):
        with engine.begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
        assert _race(postgres_url) == []
        assert set(inspect(engine).get_table_names()) == set(Base.metadata.tables)
    engine.dispose()


def test_gunicorn_workers_all_boot_on_a_fresh_sqlite_database(tmp_path):
    """No --preload: every worker imports the app, and so creates the schema, at once."""
    gunicorn = venv_executable("gunicorn")
    for round_no in range(2):
        data = tmp_path / f"round{round_no}"
        data.mkdir()
        port = free_port()
        env = dict(os.environ, SUBLARR_DATA_DIR=str(data), SUBLARR_DATABASE_URL=f"sqlite:///{data / 'sublarr.db'}",
                   SUBLARR_SIM_LATENCY_SCALE="0", OTEL_METRICS_EXPORTER="prometheus")
        env.pop("SUBLARR_REDIS_URL", None)
        log = data / "gunicorn.log"
        server = subprocess.Popen([str(gunicorn), "-w", "4", "-b", f"127.0.0.1:{port}", "refapp.wsgi:app"],
                                  env=env, stdout=subprocess.DEVNULL, stderr=open(log, "w"))
        try:
            wait_for(lambda: log.read_text().count("Booting worker") >= 4 and answers_ok(f"http://127.0.0.1:{port}/api/v1/health"),
                     timeout=60, interval=0.2, what="4 workers booted and serving")
            time.sleep(1)  # a worker that fails to boot takes the arbiter down within a moment
            assert server.poll() is None, log.read_text()
            text = log.read_text()
            assert "Worker failed to boot" not in text and "Traceback" not in text, text
        finally:
            terminate(server)

