"""Statements of the request path compiled once and run on the driver's connection.

A SQLAlchemy Core statement costs 100-250 us of CPU per execution before the database sees it (cache
key, compilation cache lookup, result metadata); the same SQL on the DBAPI connection costs about
10 us (measured on this machine, SQLite). The request path runs a few statements per request, so the
ones it runs are built once with SQLAlchemy (dialect-correct SQL for SQLite and PostgreSQL) and
executed here. Bind processors of the columns still apply (e.g. a DATE compared with a string);
results come back as plain tuples.
"""
from __future__ import annotations

import threading
import weakref
from contextlib import contextmanager
from typing import Any, Callable, Hashable, Iterator, Sequence

from sqlalchemy.engine import Engine
from sqlalchemy.sql import ClauseElement


class Prepared:
    """One statement compiled for one engine's dialect: ``rows(engine, values)`` for a read; for writes, run ``sql``
    with ``params(...)`` on the cursor of ``transaction(engine)``. It keeps no reference to the engine, so a cache
    keyed weakly by engine (``for_engine``) lets an engine go."""

    def __init__(self, engine: Engine, statement: ClauseElement):
        compiled = statement.compile(dialect=engine.dialect)
        self.sql = str(compiled)
        self._positions = compiled.positiontup  # bind names in order for ? / %s styles, None for named styles
        self._defaults = compiled.construct_params(_check=False)  # values bound in the statement itself
        self._processors = dict(compiled._bind_processors)  # noqa: SLF001 - the column types' own conversions

    def params(self, values: dict[str, Any] | None = None) -> Sequence[Any] | dict[str, Any]:
        merged = {**self._defaults, **values} if values else dict(self._defaults)
        for name, process in self._processors.items():
            if name in merged and merged[name] is not None:
                merged[name] = process(merged[name])
        return [merged[n] for n in self._positions] if self._positions is not None else merged

    def rows(self, engine: Engine, values: dict[str, Any] | None = None) -> list[tuple]:
        """Run a read on a pooled connection and return every row."""
        raw = engine.raw_connection()
        try:
            cursor = raw.cursor()
            try:
                cursor.execute(self.sql, self.params(values))
                return cursor.fetchall()
            finally:
                cursor.close()
        finally:
            raw.close()  # back to the pool, which ends the read transaction


_BY_ENGINE: "weakref.WeakKeyDictionary[Engine, dict[Hashable, Prepared]]" = weakref.WeakKeyDictionary()
_BY_ENGINE_LOCK = threading.Lock()


def for_engine(engine: Engine, key: Hashable, build: Callable[[], ClauseElement]) -> Prepared:
    """The statement ``key`` of this engine, built by ``build()`` and compiled the first time it is asked for."""
    statements = _BY_ENGINE.get(engine)
    found = statements.get(key) if statements is not None else None
    if found is None:
        found = Prepared(engine, build())
        with _BY_ENGINE_LOCK:
            _BY_ENGINE.setdefault(engine, {})[key] = found
    return found


@contextmanager
def transaction(engine: Engine) -> Iterator[Any]:
    """A DBAPI cursor in one transaction: committed when the block ends, rolled back if it raises."""
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        try:
            yield cursor
            raw.commit()
        except BaseException:
            raw.rollback()
            raise
        finally:
            cursor.close()
    finally:
        raw.close()
