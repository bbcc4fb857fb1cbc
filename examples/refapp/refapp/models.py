"""Database tables and engine setup (plain SQLAlchemy 2.x, as Sublarr uses).

Only the three tables the API touches. The engine is tuned per backend: SQLite
gets WAL and a busy timeout so request threads and queue workers can write the
same file; PostgreSQL gets a bounded QueuePool with pre-ping so dropped
connections are noticed before a request uses them.
"""
from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    DateTime,
    Engine,
    Float,
    ForeignKey,
    Integer,
    String,
    create_engine,
    event,
    text,
)
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.pool import QueuePool

JOB_STATUSES = ("pending", "running", "success", "failed", "skipped")
WANTED_STATUSES = ("wanted", "found")
SUBTITLE_FORMATS = ("ass", "srt", "vtt", "ssa")


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Base(DeclarativeBase):
    def as_dict(self) -> dict[str, Any]:
        """Column values as JSON-friendly types (datetimes as ISO strings)."""
        out = {}
        for column in self.__table__.columns:
            value = getattr(self, column.key)
            if isinstance(value, datetime):
                # SQLite hands back naive datetimes; they were stored as UTC.
                value = (value if value.tzinfo else value.replace(tzinfo=timezone.utc)).isoformat()
            out[column.key] = value
        return out


class TranslationJob(Base):
    __tablename__ = "jobs"  # as Sublarr's

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    file_path: Mapped[str] = mapped_column(String(1024))
    source_lang: Mapped[str] = mapped_column(String(16))
    target_lang: Mapped[str] = mapped_column(String(16))
    fmt: Mapped[str] = mapped_column(String(8))
    status: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class WantedItem(Base):
    __tablename__ = "wanted_items"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    title: Mapped[str] = mapped_column(String(512))
    language: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default="wanted")


class Translation(Base):
    __tablename__ = "translations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id"), index=True)
    fmt: Mapped[str] = mapped_column(String(8))
    duration_seconds: Mapped[float] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


def normalize_url(url: str | URL) -> URL:
    """Point plain PostgreSQL URLs at psycopg 3, the driver the image ships."""
    parsed = make_url(url)
    if parsed.drivername in ("postgres", "postgresql"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def make_engine(url: str | URL) -> Engine:
    """Create the engine for ``url`` (SQLite file or PostgreSQL)."""
    parsed = normalize_url(url)
    backend = parsed.get_backend_name()
    if backend == "postgresql":
        return create_engine(
            parsed, poolclass=QueuePool, pool_size=5, max_overflow=5, pool_pre_ping=True
        )
    if backend == "sqlite":
        engine = create_engine(parsed)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(parsed)


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    # WAL lets readers proceed while a queue worker writes; the busy timeout
    # makes concurrent writers wait instead of failing with "database is locked".
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


def init_db(engine: Engine) -> None:
    """Create missing tables (idempotent), safe when several processes start at once.

    gunicorn's workers (and RQ workers) run this together on a fresh database;
    ``create_all`` checks for each table and then creates it, so without a lock
    two processes both see it missing and the second CREATE fails ("table ...
    already exists"), which stops that worker from booting. The check and the
    CREATEs therefore run under one database-wide lock: a transaction-scoped
    advisory lock on PostgreSQL, the write lock on SQLite (see
    :func:`_create_sqlite_schema`).
    """
    if engine.dialect.name == "sqlite":
        _create_sqlite_schema(engine)
        return
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(5172023)"))
        Base.metadata.create_all(conn)


def _create_sqlite_schema(engine: Engine, attempts: int = 20) -> None:
    """``create_all`` inside ``BEGIN IMMEDIATE``, retried while the file is locked.

    The busy timeout makes most lock waits block, but SQLite answers "database
    is locked" at once, without waiting, where waiting could deadlock: on a
    fresh file, a new connection's ``PRAGMA journal_mode=WAL`` (a read lock
    that must be upgraded) while another process holds the write lock to
    create its tables. Such a refusal is retried after a short, growing pause
    (about 10 s in all).
    """
    for attempt in range(1, attempts + 1):
        try:
            # pysqlite would open its own deferred transaction; in AUTOCOMMIT
            # mode it leaves transaction control to the statements below.
            with engine.connect() as conn:
                conn = conn.execution_options(isolation_level="AUTOCOMMIT")
                conn.exec_driver_sql("BEGIN IMMEDIATE")
                try:
                    Base.metadata.create_all(conn)
                except BaseException:
                    conn.exec_driver_sql("ROLLBACK")
                    raise
                conn.exec_driver_sql("COMMIT")
            return
        except OperationalError as exc:
            if "database is locked" not in str(exc) or attempt == attempts:
                raise
            time.sleep(0.05 * attempt)
