"""Declared dataset schemas, atomic CSV import and the small aggregate queries the node serves.

Each dataset has a fixed schema; rows live in their own table ``ds_<name>``. An import either
loads every row or none: bad rows are reported with their line numbers and the store is unchanged.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, Callable, Iterable

from sqlalchemy import Column, Date, Float, Integer, MetaData, String, Table, bindparam, func, select
from sqlalchemy.engine import Engine

from node.errors import ConsortiumError
from node.store.db import migrate
from node.store.prepared import for_engine

SCHEMA_VERSION = 1
metadata = MetaData()


class DatasetError(ConsortiumError):
    reason = "dataset"


@dataclass(frozen=True)
class Field_:
    """A column. ``identifier``: a key or direct identifier (never grouped on or filtered on in a release);
    ``domain``: the declared values of a categorical column; ``bounds``: the declared range of a numeric one.
    Imports refuse rows outside a declared domain or range, so the declarations are true of the data."""

    name: str
    kind: str  # "str" | "int" | "float" | "date"
    required: bool = True
    identifier: bool = False
    domain: tuple[str, ...] = ()
    bounds: tuple[float, float] | None = None


@dataclass(frozen=True)
class DatasetSchema:
    name: str
    fields: tuple[Field_, ...]
    key: str
    person: str = "person_id"  # whose record a row is: minimum cohorts count distinct values of this column

    @property
    def columns(self) -> list[str]:
        return [f.name for f in self.fields]

    def field(self, name: str) -> Field_:
        for f in self.fields:
            if f.name == name:
                return f
        raise DatasetError(f"dataset {self.name} has no column {name!r}", reason="unknown_column",
                           hint=f"columns are: {', '.join(self.columns)}")

    @property
    def identifiers(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields if f.identifier)


AGE_BANDS = ("18-29", "30-39", "40-49", "50-59", "60+")
CLAIM_STATUSES = ("open", "paid", "rejected")
CHANNELS = ("app", "web", "mini-program")
SEGMENTS = ("low", "mid", "high")
MONEY = (0.0, 10_000_000.0)  # the declared range of an amount or premium, in currency units


def _id(name: str, required: bool = True) -> Field_:
    return Field_(name, "str", required, identifier=True)


SCHEMAS: dict[str, DatasetSchema] = {s.name: s for s in (
    DatasetSchema("policies", (_id("policy_id"), _id("person_id"), Field_("product", "str"),
                               Field_("premium", "float", bounds=MONEY), Field_("start_date", "date"), Field_("region", "str")),
                  "policy_id"),
    DatasetSchema("claims", (_id("claim_id"), _id("person_id"), _id("policy_id", False),
                             Field_("amount", "float", bounds=MONEY), Field_("claim_date", "date"),
                             Field_("status", "str", domain=CLAIM_STATUSES), Field_("age_band", "str", False, domain=AGE_BANDS),
                             Field_("region", "str", False)), "claim_id"),
    DatasetSchema("user_features", (_id("person_id"), Field_("age_band", "str", domain=AGE_BANDS),
                                    Field_("channel", "str", domain=CHANNELS), Field_("activity_segment", "str", domain=SEGMENTS)),
                  "person_id"),
    DatasetSchema("fraud_list", (_id("person_id"), Field_("listed_on", "date"), Field_("reason", "str", False)), "person_id"),
)}

_SQL_TYPES = {"str": String, "int": Integer, "float": Float, "date": Date}
TABLES: dict[str, Table] = {
    s.name: Table(f"ds_{s.name}", metadata,
                  *[Column(f.name, _SQL_TYPES[f.kind], primary_key=(f.name == s.key), nullable=not f.required) for f in s.fields])
    for s in SCHEMAS.values()
}


def dataset_schema(name: str) -> DatasetSchema:
    try:
        return SCHEMAS[name]
    except KeyError:
        raise DatasetError(f"unknown dataset {name!r}", reason="unknown_dataset",
                           hint=f"declared datasets are: {', '.join(SCHEMAS)}") from None


def init_datasets(engine: Engine) -> None:
    migrate(engine, "datasets", metadata, SCHEMA_VERSION)


_PARSERS: dict[str, Callable[[str], Any]] = {"str": str, "int": int, "float": float, "date": date.fromisoformat}


def parse_csv(schema: DatasetSchema, text: str, max_errors: int = 20) -> list[dict]:
    """Parse and validate every row; raise DatasetError listing bad rows by line number."""
    reader = csv.DictReader(io.StringIO(text))
    header = reader.fieldnames or []
    missing = [f.name for f in schema.fields if f.required and f.name not in header]
    unknown = [h for h in header if h not in schema.columns]
    if missing or unknown:
        parts = []
        if missing:
            parts.append(f"missing columns {', '.join(missing)}")
        if unknown:
            parts.append(f"unknown columns {', '.join(unknown)}")
        raise DatasetError(f"{schema.name} CSV header: {'; '.join(parts)}", reason="bad_header",
                           hint=f"the header must be: {','.join(schema.columns)}")
    rows, errors, seen = [], [], set()
    for row in reader:
        line = reader.line_num
        parsed, problems = {}, []
        if None in row:
            problems.append("too many fields")
        for f in schema.fields:
            raw = (row.get(f.name) or "").strip()
            if raw == "":
                if f.required:
                    problems.append(f"{f.name} is empty")
                parsed[f.name] = None
                continue
            try:
                parsed[f.name] = _PARSERS[f.kind](raw)
            except ValueError:
                problems.append(f"{f.name}={raw!r} is not a {f.kind}")
                continue
            if f.domain and parsed[f.name] not in f.domain:
                problems.append(f"{f.name}={raw!r} is not one of {', '.join(f.domain)}")
            if f.bounds and not f.bounds[0] <= parsed[f.name] <= f.bounds[1]:
                problems.append(f"{f.name}={raw!r} is outside {f.bounds[0]:g} .. {f.bounds[1]:g}")
        key = parsed.get(schema.key)
        if key is not None and key in seen:
            problems.append(f"duplicate {schema.key} {key!r}")
        seen.add(key)
        if problems:
            errors.append(f"line {line}: {', '.join(problems)}")
        else:
            rows.append(parsed)
    if errors:
        shown = "; ".join(errors[:max_errors]) + (f"; and {len(errors) - max_errors} more" if len(errors) > max_errors else "")
        raise DatasetError(f"{len(errors)} bad row(s) in {schema.name} CSV, nothing imported: {shown}",
                           reason="bad_rows", hint="fix those lines and import again")
    return rows


def import_csv(engine: Engine, dataset: str, source: Path | str, *, replace: bool = True, allow_empty: bool = False) -> int:
    """Import a CSV file (or text) into a dataset atomically; returns the number of rows.

    A file with a header and no rows is refused unless ``allow_empty``: replacing a dataset with nothing
    is almost always a truncated export, and it would silently drop the member out of every statistic."""
    schema = dataset_schema(dataset)
    if isinstance(source, Path):
        try:
            text = source.read_text(encoding="utf-8-sig")
        except OSError as exc:
            raise DatasetError(f"cannot read {source}: {exc.strerror}", reason="io", hint="check the path") from None
        except UnicodeDecodeError:
            raise DatasetError(f"{source} is not UTF-8 text", reason="encoding", hint="save the CSV as UTF-8") from None
    else:
        text = source
    rows = parse_csv(schema, text)
    if not rows and not allow_empty:
        raise DatasetError(f"{source if isinstance(source, Path) else 'the CSV'} has a header but no rows; nothing imported",
                           reason="empty_import", hint="check the export; to really empty the dataset, add --replace-with-empty")
    table = TABLES[dataset]
    with engine.begin() as conn:  # one transaction: all rows or none
        if replace:
            conn.execute(table.delete())
        if rows:
            try:
                conn.execute(table.insert(), rows)
            except Exception as exc:  # e.g. a key already present when appending
                raise DatasetError(f"import into {dataset} refused by the store: {type(exc).__name__}",
                                   reason="store", hint="use a replacing import or remove the duplicate keys") from None
    return len(rows)


def dataset_rows(engine: Engine, dataset: str) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(TABLES[dataset_schema(dataset).name])).scalar_one()


METRICS = ("count", "sum", "mean")


@dataclass(frozen=True)
class AggregateQuery:
    """A small aggregate over one dataset: metric of a column, optional equality filters and one group-by."""

    dataset: str
    metric: str = "count"
    column: str | None = None
    filters: tuple[tuple[str, Any], ...] = ()
    group_by: str | None = None

    def validate(self) -> DatasetSchema:
        schema = dataset_schema(self.dataset)
        if self.metric not in METRICS:
            raise DatasetError(f"unknown metric {self.metric!r}", reason="unknown_metric", hint=f"use one of {', '.join(METRICS)}")
        if self.metric != "count":
            if not self.column:
                raise DatasetError(f"metric {self.metric} needs a column", reason="missing_column", hint="name a numeric column")
            if schema.field(self.column).kind not in ("int", "float"):
                raise DatasetError(f"column {self.column} is not numeric", reason="bad_column", hint="choose a numeric column")
        for name, _ in self.filters:
            schema.field(name)
        if self.group_by:
            schema.field(self.group_by)
        return schema

    def check_release(self, schema: DatasetSchema) -> None:
        """The release gate's scope rules for a direct query: no key or identifier column grouped or filtered on,
        no filter value outside a declared domain (it would silently match nothing)."""
        for name in [self.group_by] if self.group_by else []:
            if schema.field(name).identifier:
                raise DatasetError(f"group_by {name}: a key or identifier column; grouping on it would release single "
                                   "records", reason="identifier_column", hint="group on a categorical column")
        for name, wanted in self.filters:
            field = schema.field(name)
            if field.identifier:
                raise DatasetError(f"filter {name}: a key or identifier column; filtering on it would select single "
                                   "records", reason="identifier_column", hint="filter on categorical, date or numeric columns")
            if field.domain and str(wanted) not in field.domain:
                raise DatasetError(f"filter {name}: {wanted!r} is not one of the declared values ({', '.join(field.domain)})",
                                   reason="unknown_value", hint="check the spelling")

    def query_hash(self, requester: str, purpose: int) -> bytes:
        """The hash written on chain with the access or denial: what was asked, by whom, for what."""
        body = json.dumps({"q": [self.dataset, self.metric, self.column, list(self.filters), self.group_by],
                           "requester": requester.lower(), "purpose": purpose}, sort_keys=True, default=str)
        return hashlib.sha256(body.encode()).digest()


def _filtered(stmt, table: Table, q: AggregateQuery):
    # filter values are bind parameters f0, f1, ... so one compiled statement serves every value
    for i, (name, _) in enumerate(q.filters):
        stmt = stmt.where(table.c[name] == bindparam(f"f{i}"))
    return stmt


def _shape(q: AggregateQuery) -> tuple:
    return q.dataset, q.metric, q.column, tuple(name for name, _ in q.filters), q.group_by


def _aggregate_statement(q: AggregateQuery):
    table = TABLES[q.dataset]
    value = {"count": func.count(), "sum": func.sum(table.c[q.column]) if q.column else None,
             "mean": func.avg(table.c[q.column]) if q.column else None}[q.metric]
    cols = [value.label("value"), func.count().label("records")]
    stmt = _filtered(select(*([table.c[q.group_by].label("group")] if q.group_by else []), *cols).select_from(table), table, q)
    if q.group_by:
        stmt = stmt.group_by(table.c[q.group_by]).order_by(table.c[q.group_by])
    return stmt


def _persons_statement(q: AggregateQuery, person: str):
    table = TABLES[q.dataset]
    return _filtered(select(*([table.c[q.group_by]] if q.group_by else []), table.c[person]).distinct(), table, q)


def _values(q: AggregateQuery) -> dict[str, Any]:
    """Filter values as the column's type (a date column is compared with a date, not with its spelling)."""
    schema, out = dataset_schema(q.dataset), {}
    for i, (name, wanted) in enumerate(q.filters):
        kind = schema.field(name).kind
        try:
            out[f"f{i}"] = _PARSERS[kind](wanted if kind != "date" else str(wanted))
        except (TypeError, ValueError):
            raise DatasetError(f"filter {name}: {wanted!r} is not a {kind}", reason="bad_filter_value",
                               hint="dates as YYYY-MM-DD, numbers as numbers") from None
    return out


def run_query(engine: Engine, q: AggregateQuery) -> tuple[list[dict], int]:
    """Run an aggregate; returns (result rows, number of records it touched)."""
    q.validate()
    result = _aggregate(engine, q, _values(q))
    return result, sum(r["records"] for r in result)


def _aggregate(engine: Engine, q: AggregateQuery, values: dict[str, Any]) -> list[dict]:
    # Compiled once per query shape (node/store/prepared.py): this runs on every /data/query.
    statement = for_engine(engine, ("aggregate", _shape(q)), lambda: _aggregate_statement(q))
    names = ("group", "value", "records") if q.group_by else ("value", "records")
    return [dict(zip(names, row)) for row in statement.rows(engine, values)]


def query_groups(engine: Engine, q: AggregateQuery) -> tuple[dict[str, dict], dict[str, list[str]]]:
    """Per group (``"all"`` without group_by): the result row, and the distinct persons in the group (for the
    release gate's minimum cohort and differencing checks; they never leave the node)."""
    schema = q.validate()
    values = _values(q)  # validated and typed once for both statements
    key = (lambda r: str(r["group"])) if q.group_by else (lambda r: "all")
    out = {key(r): r for r in _aggregate(engine, q, values) if r["records"]}
    statement = for_engine(engine, ("persons", _shape(q)), lambda: _persons_statement(q, schema.person))
    persons: dict[str, list[str]] = {g: [] for g in out}
    for row in statement.rows(engine, values):
        group = str(row[0]) if q.group_by else "all"
        persons.setdefault(group, []).append(row[-1])
    return out, persons


def write_csv(path: Path, header: Iterable[str], rows: Iterable[Iterable[Any]]) -> None:
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
