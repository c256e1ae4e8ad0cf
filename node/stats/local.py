"""A member's local part of a job, computed in SQL over its own dataset tables (node.store.datasets.TABLES).

Values are carried in fixed point: SUM(CAST(ROUND(value * 10^decimals) AS INTEGER)) is an exact integer
sum in SQLite (a 64-bit overflow raises instead of wrapping), so counts and sums are exact; a value
with more decimals than declared is rounded to the declared precision.
"""
from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from typing import Any, Iterator

from sqlalchemy import Integer as SqlInteger
from sqlalchemy import and_, case, cast, func, literal, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError

from node.stats.spec import OVERFLOW, Axis, SpecError
from node.store.datasets import TABLES, dataset_schema

_OPS = {"gte": "__ge__", "gt": "__gt__", "lte": "__le__", "lt": "__lt__"}


def _typed(schema, column: str, value: Any) -> Any:
    return date.fromisoformat(value) if schema.field(column).kind == "date" else value


def where_clauses(dataset: str, filters: dict) -> list:
    table, schema = TABLES[dataset], dataset_schema(dataset)
    clauses = []
    for column, cond in filters.items():
        col = table.c[column]
        if isinstance(cond, dict):
            clauses += [getattr(col, _OPS[op])(_typed(schema, column, v)) for op, v in cond.items()]
        elif isinstance(cond, list):
            clauses.append(col.in_([_typed(schema, column, v) for v in cond]))
        else:
            clauses.append(col == _typed(schema, column, cond))
    return clauses


def _axis_expression(table, axis: Axis):
    """A SQL expression giving the axis label of a row (NULL when the row falls outside the axis)."""
    col = table.c[axis.column]
    if axis.values:
        return col
    whens = [(and_(col >= lo, col < hi), literal(label)) for (lo, hi), label in zip(zip(axis.edges, axis.edges[1:]), axis.labels)]
    return case(*whens, else_=None)


def _scaled(column, decimals: int):
    return cast(func.round(column * (10**decimals)), SqlInteger)


def _in_range(table, public: dict):
    """1 when the row's value lies in the declared value range (or there is no value column), else 0."""
    if not public.get("value"):
        return literal(1)
    lo, hi = public["value_range"]
    col = table.c[public["value"]]
    return case((and_(col >= lo, col <= hi), literal(1)), else_=literal(0))


def _bucket(labels: list, in_range: int, index: dict, has_axes: bool) -> str:
    """The declared bucket of a row, or the overflow bucket when it falls outside the declared values."""
    if not in_range or any(label is None for label in labels):
        return OVERFLOW
    bucket = "|".join(str(label) for label in labels) if has_axes else "all"
    return bucket if bucket in index else OVERFLOW


def horizontal_buckets(engine: Engine, public: dict, with_persons: bool = True) -> tuple[dict[str, list[int]], dict[str, list[str]]]:
    """Per bucket (the overflow bucket included), the exact statistics the spec asks for, in fixed point,
    and the persons in it (for the owner's minimum cohort and differencing checks, which stay in this node).

    One pass over the selected rows: SQL computes each row's axis labels and fixed-point value, Python adds
    them up per bucket (exact integers) and collects the persons. Overflow rows are counted, never summed:
    their values are outside what the spec declared.
    """
    dataset, stats = public["dataset"], public["statistics"]
    table, schema = TABLES[dataset], dataset_schema(dataset)
    axes = [Axis(a["column"], tuple(a.get("values", ())), tuple(a.get("edges", ()))) for a in public["group_by"]]
    columns = [_axis_expression(table, a).label(f"k{i}") for i, a in enumerate(axes)]
    columns += [_in_range(table, public).label("in_range"), table.c[schema.person]]
    where = list(where_clauses(dataset, public["filters"]))
    if public.get("value"):
        columns.append(_scaled(table.c[public["value"]], public["decimals"]))
        where.append(table.c[public["value"]].isnot(None))
    index = {b: i for i, b in enumerate(public["buckets"])}
    totals = {b: [0] * len(stats) for b in public["buckets"]}
    persons: dict[str, list[str]] = {b: [] for b in public["buckets"]}
    n_axes, has_value = len(axes), bool(public.get("value"))
    squares = "sum_of_squares" in stats
    sums = "sum" in stats
    where_of: dict[tuple, tuple[list[int], list[str], bool]] = {}
    try:
        with engine.connect() as conn:
            for row in conn.execute(select(*columns).select_from(table).where(*where)):
                key = tuple(row[:n_axes + 1])
                target = where_of.get(key)
                if target is None:
                    bucket = _bucket(list(key[:n_axes]), key[n_axes], index, bool(axes))
                    target = where_of[key] = (totals[bucket], persons[bucket], has_value and bucket != OVERFLOW)
                entry, people, add_value = target
                entry[0] += 1
                if with_persons:
                    people.append(row[n_axes + 1])
                if add_value:
                    v = int(row[n_axes + 2])
                    if sums:
                        entry[1] += v
                    if squares:
                        entry[-1] += v * v
    except (OperationalError, OverflowError) as exc:
        raise SpecError(f"local aggregate failed: {exc.__class__.__name__}", reason="overflow",
                        hint="values too large for exact 64-bit fixed point; lower decimals") from None
    return totals, persons


def horizontal_vector(totals: dict[str, list[int]], buckets: list[str]) -> list[int]:
    """The flat vector in privacy.aggregation's order (bucket-major, statistics within)."""
    return [v for b in buckets for v in totals[b]]


def platform_rows(engine: Engine, public: dict) -> list[tuple[str, str]]:
    """(person_id, bucket) for the platform's users; undeclared feature values go to the overflow bucket."""
    table = TABLES["user_features"]
    columns = [a["column"] for a in public["group_by"]]
    declared = set(public["buckets"])
    stmt = select(table.c.person_id, *[table.c[c] for c in columns]).where(*where_clauses("user_features", public["filters"]))
    out = []
    with engine.connect() as conn:
        for row in conn.execute(stmt):
            bucket = "|".join(str(v) for v in row[1:]) if columns else "all"
            out.append((row[0], bucket if bucket in declared else OVERFLOW))
    return out


def insurer_rows(engine: Engine, private: dict) -> list[tuple[str, int, Decimal]]:
    """(person_id, claimed 0/1, total claimed amount) for every policyholder and claimant.

    The population is the policyholders (population filters on policies) plus anyone with a claim;
    ``claimed`` says whether the person has a claim passing the claim filters.
    """
    policies, claims = TABLES["policies"], TABLES["claims"]
    totals: dict[str, int] = {}
    with engine.connect() as conn:
        persons = {p for (p,) in conn.execute(select(policies.c.person_id).distinct()
                                              .where(*where_clauses("policies", private.get("population_filters", {}))))}
        stmt = (select(claims.c.person_id, func.sum(_scaled(claims.c.amount, 2)))
                .where(*where_clauses("claims", private.get("claim_filters", {}))).group_by(claims.c.person_id))
        for person, cents in conn.execute(stmt):
            totals[person] = int(cents or 0)
    persons |= set(totals)
    return [(p, int(p in totals), Decimal(totals.get(p, 0)) / 100) for p in sorted(persons)]


def fraud_set(engine: Engine, public: dict) -> Iterator[str]:
    """The member's side of a fraud query: its fraud list, or persons with a claim in the window."""
    if public["check"] == "fraud_list":
        table = TABLES["fraud_list"]
        stmt = select(table.c.person_id)
    else:
        table = TABLES["claims"]
        as_of = date.fromisoformat(public["as_of"])
        stmt = select(table.c.person_id).distinct().where(
            table.c.claim_date > as_of - timedelta(days=public["days"]), table.c.claim_date <= as_of)
    with engine.connect() as conn:
        return [p for (p,) in conn.execute(stmt)]


def policyholder_count(engine: Engine, population_filters: dict) -> int:
    """Distinct policyholders passing the population filters: the population a claim rate is taken over."""
    policies = TABLES["policies"]
    stmt = select(func.count(policies.c.person_id.distinct())).where(*where_clauses("policies", population_filters))
    with engine.connect() as conn:
        return int(conn.execute(stmt).scalar_one())
