"""Engine creation and schema versioning for the node's store."""
from __future__ import annotations

import threading
import weakref
from pathlib import Path

from sqlalchemy import Column, Integer, MetaData, String, Table, create_engine, event, select
from sqlalchemy.engine import Engine

from node.errors import ConfigError

SCHEMA_VERSION = 1

metadata = MetaData()

schema_version = Table("schema_version", metadata, Column("component", String, primary_key=True), Column("version", Integer, nullable=False))


def create_store_engine(url: str) -> Engine:
    """An engine with durable SQLite settings: WAL, and a commit is on disk before it returns."""
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        path.parent.mkdir(parents=True, exist_ok=True)
    # No pre-ping for SQLite: a file needs no liveness probe, and it would cost a query per checkout.
    engine = create_engine(url, future=True, pool_pre_ping=not url.startswith("sqlite"))
    if engine.dialect.name == "sqlite":
        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record):  # noqa: ANN001 - DBAPI types
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=FULL")  # accepted means on disk
            cur.execute("PRAGMA busy_timeout=10000")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()
    return engine


_WRITE_LOCKS: "weakref.WeakKeyDictionary[Engine, threading.RLock]" = weakref.WeakKeyDictionary()
_WRITE_LOCKS_GUARD = threading.Lock()


def write_lock(engine: Engine) -> threading.RLock:
    """The lock this process's writers of ``engine``'s store take around a write transaction.

    SQLite has one writer at a time, and a connection that finds the write lock taken sleeps in SQLite's busy
    handler (1, 2, 5, 10 ... 100 ms) and looks again: under a steady stream of request commits the access log's
    flusher lost whole tenths of a second that way per write. Queued on this lock instead, a writer starts the
    moment the previous one commits. Other processes (the CLI) still meet SQLite's busy timeout."""
    with _WRITE_LOCKS_GUARD:
        return _WRITE_LOCKS.setdefault(engine, threading.RLock())


def migrate(engine: Engine, component: str, component_metadata: MetaData, version: int) -> None:
    """Create a component's tables and record its schema version; refuse a store from a newer version."""
    metadata.create_all(engine)
    with engine.begin() as conn:
        found = conn.execute(select(schema_version.c.version).where(schema_version.c.component == component)).scalar()
        if found is not None and found > version:
            raise ConfigError(f"the store's {component} schema is version {found}, newer than this node's {version}",
                              hint="upgrade the node software")
        component_metadata.create_all(conn)
        if found is None:
            conn.execute(schema_version.insert().values(component=component, version=version))
        elif found < version:
            conn.execute(schema_version.update().where(schema_version.c.component == component).values(version=version))
