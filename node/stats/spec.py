"""Job specs: what an operator asks for, and the public spec every participant checks against the chain.

A request (TOML or JSON) names a kind (horizontal, vertical, fraud), a dataset, filters, group-by axes
and release controls. The requester turns it into the *public spec*: the request normalized (members as
checksum addresses), plus the requester, a random job id and the requester's Paillier public key. Its
SHA-256 over canonical JSON is the spec hash opened on StatsLedger; a participant recomputes it from
the spec it is sent, so it computes exactly what the chain says it was asked. Anything private to the
requester (the persons of a fraud query) lives outside the public spec and never leaves the node.
"""
from __future__ import annotations

import hashlib
import json
import math
import secrets
from dataclasses import dataclass
from datetime import date
from typing import Any, Callable

from node.errors import ConsortiumError
from node.store.datasets import SCHEMAS, DatasetError, dataset_schema
from privacy.aggregation import HorizontalSpec
from privacy.join import JoinSpec
from privacy.paillier import PublicKey

KINDS = ("horizontal", "vertical", "fraud")
# What a vertical result means, in the spec itself (so in its hash on chain) and in every result.
VERTICAL_SEMANTICS = {
    "persons": "the label owner's policyholders (policies dataset, population_filters) plus its claimants, "
               "matched with the platform's users in the bucket",
    "claimants": "persons with at least one claim passing claim_filters",
    "claim_rate": "claimants / persons",
    "claim_amount": "total of those claims",
    "filters": "platform user_features",
    "claim_filters": "label owner's claims (private to the label owner)",
    "population_filters": "label owner's policies (private to the label owner)",
}
STAT_PURPOSES = ("STATISTICS", "PRICING")
FRAUD_CHECKS = {"fraud_list": "fraud_list", "recent_claims": "claims"}  # check -> dataset it reads
RANGE_OPS = ("gte", "gt", "lte", "lt")
MAX_BUCKETS = 4096
MAX_PERSONS = 10_000
# Records outside every declared bucket (an undeclared value, a value outside the bins or outside the
# declared value range) are counted here instead of vanishing: the result says how many there were.
OVERFLOW = "(other)"


class SpecError(ConsortiumError):
    """A job spec the node refuses (HTTP 422 with ``reason``)."""

    reason = "bad_spec"
    http_status = 422


def canonical_json(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def spec_hash(public: dict) -> str:
    """Hex SHA-256 of the canonical public spec: the bytes32 ``specHash`` of the job on chain."""
    return hashlib.sha256(b"consortium/stats-spec/v1|" + canonical_json(public)).hexdigest()


def message_commitment(message: dict) -> str:
    """Hex SHA-256 of a protocol message, as privacy.aggregation.Contribution.commitment computes it."""
    return hashlib.sha256(json.dumps(message, sort_keys=True).encode()).hexdigest()


def _need(cond: bool, message: str, hint: str | None = None, reason: str = "bad_spec") -> None:
    if not cond:
        raise SpecError(message, hint=hint, reason=reason)


# ------------------------------------------------------------------------------------------ axes, filters


@dataclass(frozen=True)
class Axis:
    """One group-by axis: a categorical column with declared values, or a numeric column with bin edges."""

    column: str
    values: tuple[str, ...] = ()
    edges: tuple[float, ...] = ()

    @property
    def labels(self) -> tuple[str, ...]:
        if self.values:
            return self.values
        return tuple(f"[{_num(a)},{_num(b)})" for a, b in zip(self.edges, self.edges[1:]))

    def to_dict(self) -> dict:
        return {"column": self.column, "values": list(self.values)} if self.values else \
            {"column": self.column, "edges": list(self.edges)}


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(float(x))


def parse_axes(raw: Any, dataset: str) -> list[Axis]:
    if raw is None:
        return []
    _need(isinstance(raw, list) and len(raw) <= 3, "group_by must be a list of at most 3 axes",
          "write [[group_by]] tables with column and values (or edges)")
    schema = dataset_schema(dataset)
    axes = []
    for item in raw:
        _need(isinstance(item, dict) and isinstance(item.get("column"), str), "each group_by axis needs a column")
        field = schema.field(item["column"])
        _need(not field.identifier, f"group_by {field.name}: {field.name} is a key or identifier column; "
              "grouping on it would release single records", "group on a categorical or binned column", reason="identifier_column")
        values, edges = item.get("values"), item.get("edges")
        _need((values is None) != (edges is None), f"group_by {field.name}: give either values or edges")
        if values is not None:
            _need(isinstance(values, list) and values and all(isinstance(v, (str, int)) for v in values)
                  and len(set(map(str, values))) == len(values), f"group_by {field.name}: values must be distinct strings")
            undeclared = [str(v) for v in values if field.domain and str(v) not in field.domain]
            _need(not undeclared, f"group_by {field.name}: {', '.join(undeclared)} not in the declared values "
                  f"({', '.join(field.domain)})", "check the spelling", reason="unknown_value")
            axes.append(Axis(field.name, values=tuple(str(v) for v in values)))
        else:
            _need(field.kind in ("int", "float"), f"group_by {field.name}: edges need a numeric column")
            _need(isinstance(edges, list) and len(edges) >= 2 and all(isinstance(e, (int, float)) and not isinstance(e, bool)
                                                                        and math.isfinite(e) for e in edges)
                  and all(a < b for a, b in zip(edges, edges[1:])), f"group_by {field.name}: edges must increase")
            axes.append(Axis(field.name, edges=tuple(float(e) for e in edges)))
    _need(len({a.column for a in axes}) == len(axes), "group_by repeats a column")
    return axes


def bucket_names(axes: list[Axis]) -> tuple[str, ...]:
    names = [""]
    for axis in axes:
        names = [f"{n}|{label}" if n else label for n in names for label in axis.labels]
    names = (names if axes else ["all"]) + [OVERFLOW]
    _need(len(names) <= MAX_BUCKETS, f"{len(names)} buckets; at most {MAX_BUCKETS}", "declare fewer values or edges")
    return tuple(names)


def parse_filters(raw: Any, dataset: str) -> dict:
    """column -> value (equality), list (any of) or {gte/gt/lte/lt: bound}; values typed by the schema."""
    if raw is None:
        return {}
    _need(isinstance(raw, dict) and len(raw) <= 16, "filters must be a table of at most 16 columns")
    schema = dataset_schema(dataset)
    out: dict[str, Any] = {}
    for column, cond in raw.items():
        field = schema.field(column)
        _need(not field.identifier, f"filter {column}: {column} is a key or identifier column; filtering on it "
              "would select single records", "filter on categorical, date or numeric columns", reason="identifier_column")

        def typed(v: Any) -> Any:
            try:
                if field.kind == "date":
                    return date.fromisoformat(str(v)).isoformat()
                if field.kind in ("int", "float"):
                    _need(isinstance(v, (int, float)) and not isinstance(v, bool), f"filter {column}: {v!r} is not a number")
                    return v
                _need(isinstance(v, (str, int)), f"filter {column}: {v!r} is not a string")
                # a typo would otherwise match nothing and suppress every bucket without a word
                _need(not field.domain or str(v) in field.domain, f"filter {column}: {v!r} is not one of the declared "
                      f"values ({', '.join(field.domain)})", "check the spelling", reason="unknown_value")
                return str(v)
            except ValueError:
                raise SpecError(f"filter {column}: {v!r} is not an ISO date", hint="write dates as YYYY-MM-DD") from None

        if isinstance(cond, dict):
            _need(cond and set(cond) <= set(RANGE_OPS), f"filter {column}: range keys are {', '.join(RANGE_OPS)}")
            out[column] = {op: typed(v) for op, v in sorted(cond.items())}
        elif isinstance(cond, list):
            _need(0 < len(cond) <= 100, f"filter {column}: 1 to 100 values")
            out[column] = [typed(v) for v in cond]
        else:
            out[column] = typed(cond)
    return dict(sorted(out.items()))


# ------------------------------------------------------------------------------------------ requests


@dataclass
class JobRequest:
    """A validated request: the public spec (without requester, job id and key, added at submission) and
    what stays private to the requester."""

    kind: str
    public: dict
    private: dict
    participants: list[str]
    deadline_seconds: int
    name: str


def _purpose(raw: Any, allowed: tuple[str, ...]) -> str:
    value = raw or allowed[0]
    _need(value in allowed, f"purpose {value!r} is not allowed for this job", f"use one of {', '.join(allowed)}")
    return value


def _members(raw: Any, resolve: Callable[[str], str], what: str) -> list[str]:
    _need(isinstance(raw, list) and raw and all(isinstance(p, str) for p in raw), f"{what} must be a list of member names or addresses")
    out = [resolve(p) for p in raw]
    _need(len(set(out)) == len(out), f"{what} repeat a member")
    return out


def parse_request(data: Any, resolve: Callable[[str], str], requester: str) -> JobRequest:
    """Validate a job request; ``resolve`` maps a member name or address to its checksum address."""
    _need(isinstance(data, dict), "a job spec is a table (TOML) or object (JSON)")
    kind = data.get("kind")
    _need(kind in KINDS, f"kind must be one of {', '.join(KINDS)}")
    known = {"kind", "name", "deadline_seconds", "min_cohort", "participants", "dataset", "purpose", "filters", "group_by",
             "value", "value_range", "statistics", "decimals", "epsilon", "value_bound", "platform", "label_owner",
             "claim_filters", "population_filters", "pad_to", "include_squares", "check", "days", "as_of", "persons"}
    unknown = sorted(set(data) - known)
    _need(not unknown, f"unknown spec keys: {', '.join(unknown)}")
    # keys of another kind are refused rather than ignored: a spec is computed exactly as written or not at all
    foreign = {"vertical": {"participants", "dataset", "value", "value_range", "statistics", "decimals", "check", "days",
                            "as_of", "persons"},
               "horizontal": {"platform", "label_owner", "claim_filters", "population_filters", "pad_to", "include_squares",
                              "check", "days", "as_of", "persons"},
               "fraud": {"min_cohort", "dataset", "filters", "group_by", "value", "value_range", "statistics", "decimals",
                         "epsilon", "value_bound", "platform", "label_owner", "claim_filters", "population_filters", "pad_to",
                         "include_squares"}}.get(kind, set()) & set(data)
    hints = {"participants": "a vertical job names platform (the member whose features are joined); the labels are "
                             "always the requester's own", "min_cohort": "a fraud signal is a per-person answer under a "
                             "FRAUD grant; no minimum cohort applies"}
    _need(not foreign, f"{kind} specs do not take {', '.join(sorted(foreign))}",
          next((hints[k] for k in sorted(foreign) if k in hints), "remove them"), reason="key_not_for_kind")
    deadline = data.get("deadline_seconds", 120)
    _need(isinstance(deadline, int) and 5 <= deadline <= 7 * 86400, "deadline_seconds must be 5 .. 604800")
    min_cohort = data.get("min_cohort", 10 if kind != "fraud" else 1)
    _need(isinstance(min_cohort, int) and not isinstance(min_cohort, bool) and min_cohort >= 1, "min_cohort must be a positive integer")
    name = str(data.get("name") or kind)[:200]
    try:
        if kind == "horizontal":
            return _horizontal(data, resolve, requester, deadline, min_cohort, name)
        if kind == "vertical":
            return _vertical(data, resolve, requester, deadline, min_cohort, name)
        return _fraud(data, resolve, requester, deadline, name)
    except DatasetError as exc:
        raise SpecError(str(exc), hint=exc.hint, reason=exc.reason) from None


def _horizontal(data, resolve, requester, deadline, min_cohort, name) -> JobRequest:
    dataset = data.get("dataset")
    _need(dataset in SCHEMAS, f"dataset must be one of {', '.join(SCHEMAS)}")
    participants = _members(data.get("participants"), resolve, "participants")
    _need(len(participants) >= 2, "horizontal statistics need at least two participants",
          "secure aggregation hides each member's vector only among two or more")
    _need(requester not in participants, "the requester cannot be a participant of its own job",
          "its own data needs no consortium job")
    value = data.get("value")
    if value is not None:
        _need(dataset_schema(dataset).field(value).kind in ("int", "float"), f"value column {value} is not numeric")
    stats = data.get("statistics") or (["count", "sum", "sum_of_squares"] if value else ["count"])
    _need(isinstance(stats, list) and "count" in stats and set(stats) <= {"count", "sum", "sum_of_squares"},
          "statistics must include count and be among count, sum, sum_of_squares")
    _need(value is not None or stats == ["count"], "sum and sum_of_squares need a value column")
    decimals = data.get("decimals", 2)
    _need(isinstance(decimals, int) and 0 <= decimals <= 6, "decimals must be 0 .. 6")
    value_range = _value_range(data, dataset, value)
    epsilon = data.get("epsilon")
    if epsilon is not None:
        _need(isinstance(epsilon, (int, float)) and not isinstance(epsilon, bool) and 0 < epsilon <= 10, "epsilon must be in (0, 10]")
        _need(value is None or data.get("value_range") is not None or data.get("value_bound") is not None,
              "differential privacy on sums needs value_range or value_bound (the largest absolute value one record may add)")
    axes = parse_axes(data.get("group_by"), dataset)
    public = {
        "kind": "horizontal", "dataset": dataset, "purpose": _purpose(data.get("purpose"), STAT_PURPOSES),
        "filters": parse_filters(data.get("filters"), dataset), "group_by": [a.to_dict() for a in axes],
        "buckets": list(bucket_names(axes)), "value": value, "statistics": [s for s in ("count", "sum", "sum_of_squares") if s in stats],
        "decimals": decimals, "min_cohort": min_cohort, "participants": sorted(participants),
    }
    if value is not None:
        public["value_range"] = value_range
    if epsilon is not None:  # each data owner adds this noise to its own contribution and charges its own budget
        public["epsilon"] = float(epsilon)
    return JobRequest("horizontal", public, {}, sorted(participants), deadline, name)


def _value_range(data: dict, dataset: str, value: str | None) -> list[float] | None:
    """The declared range of the value column: the spec's ``value_range``, else ``[-value_bound, value_bound]``
    within the schema's range, else the schema's range. Rows outside it are counted in the overflow bucket."""
    if value is None:
        return None
    field = dataset_schema(dataset).field(value)
    lo, hi = field.bounds or (-1e12, 1e12)
    raw = data.get("value_range")
    if raw is None and data.get("value_bound") is not None:
        bound = data["value_bound"]
        _need(isinstance(bound, (int, float)) and not isinstance(bound, bool) and bound > 0, "value_bound must be positive")
        raw = [max(lo, -bound), min(hi, bound)]
    if raw is None:
        return [float(lo), float(hi)]
    _need(isinstance(raw, list) and len(raw) == 2 and all(isinstance(x, (int, float)) and not isinstance(x, bool)
                                                          and math.isfinite(x) for x in raw) and raw[0] < raw[1],
          "value_range must be [lowest, highest] with lowest < highest")
    return [float(raw[0]), float(raw[1])]


def _vertical(data, resolve, requester, deadline, min_cohort, name) -> JobRequest:
    platform = data.get("platform")
    _need(isinstance(platform, str), "vertical statistics need platform = the member whose features are joined")
    platform = resolve(platform)
    _need(platform != requester, "the platform must be another member")
    label_owner = resolve(data["label_owner"]) if isinstance(data.get("label_owner"), str) else requester
    _need(label_owner == requester, "a vertical job computes the requester's own labels (policies and claims); "
          "another member's labels cannot be named", "run the job from the label owner's node", reason="not_label_owner")
    axes = parse_axes(data.get("group_by"), "user_features")
    _need(all(a.values for a in axes), "vertical group_by axes are categorical platform columns with declared values")
    pad_to = data.get("pad_to")
    _need(pad_to is None or (isinstance(pad_to, int) and 0 < pad_to <= 10_000_000), "pad_to must be a positive integer")
    epsilon = data.get("epsilon")
    if epsilon is not None:
        _need(isinstance(epsilon, (int, float)) and 0 < epsilon <= 10, "epsilon must be in (0, 10]")
        _need(isinstance(data.get("value_bound"), (int, float)) and data["value_bound"] > 0,
              "platform noise needs value_bound (the largest claim amount one person may add)")
    public = {
        "kind": "vertical", "dataset": "user_features", "purpose": _purpose(data.get("purpose"), STAT_PURPOSES),
        "filters": parse_filters(data.get("filters"), "user_features"), "group_by": [a.to_dict() for a in axes],
        "buckets": list(bucket_names(axes)), "min_cohort": min_cohort, "participants": [platform],
        "include_squares": bool(data.get("include_squares", False)), "pad_to": pad_to, "label_owner": requester,
        "semantics": VERTICAL_SEMANTICS,
    }
    if epsilon is not None:  # the platform adds this Laplace noise to the encrypted sums: it must see it on chain
        public |= {"epsilon": float(epsilon), "value_bound": float(data["value_bound"])}
    # the insurer's own selection stays private: the platform has no need to know which claims are counted
    private = {"epsilon": epsilon, "claim_filters": parse_filters(data.get("claim_filters"), "claims"),
               "population_filters": parse_filters(data.get("population_filters"), "policies")}
    return JobRequest("vertical", public, private, [platform], deadline, name)


def _fraud(data, resolve, requester, deadline, name) -> JobRequest:
    check = data.get("check", "fraud_list")
    _need(check in FRAUD_CHECKS, f"check must be one of {', '.join(FRAUD_CHECKS)}")
    participants = _members(data.get("participants"), resolve, "participants")
    _need(requester not in participants, "the asking member cannot be one of the members asked")
    persons = data.get("persons")
    _need(isinstance(persons, list) and 0 < len(persons) <= MAX_PERSONS and all(isinstance(p, str) and p for p in persons),
          f"persons must be a list of 1 .. {MAX_PERSONS} identifiers")
    days = data.get("days", 90)
    _need(isinstance(days, int) and 0 < days <= 3650, "days must be 1 .. 3650")
    try:
        as_of = date.fromisoformat(str(data.get("as_of") or date.today().isoformat())).isoformat()
    except ValueError:
        raise SpecError("as_of must be an ISO date (YYYY-MM-DD)") from None
    persons = list(dict.fromkeys(persons))
    # min_cohort 1 on chain: a fraud signal is a per-person count (a spec naming min_cohort is refused above)
    public = {"kind": "fraud", "check": check, "dataset": FRAUD_CHECKS[check], "purpose": "FRAUD",
              "participants": sorted(participants), "min_cohort": 1, "persons": len(persons)}
    if check == "recent_claims":
        public |= {"days": days, "as_of": as_of}
    return JobRequest("fraud", public, {"persons": persons}, sorted(participants), deadline, name)


def complete(request: JobRequest, requester: str, public_key: PublicKey, job_id: str | None = None, round_: int = 0) -> dict:
    """The public spec as opened on chain: the request plus requester, job id, round and job key."""
    public = dict(request.public)
    public |= {"requester": requester, "job_id": job_id or secrets.token_hex(16), "round": round_,
               "public_key": {"n": str(public_key.n), "fingerprint": public_key.fingerprint}, "key_bits": public_key.bits}
    return public


# ------------------------------------------------------------------------------------------ privacy specs


def public_key_of(public: dict) -> PublicKey:
    return PublicKey.from_dict(public["public_key"])


def horizontal_spec(public: dict) -> HorizontalSpec:
    stats = tuple(public["statistics"])
    # sums of squares of cents overflow 112 bits only beyond ~10^16 records of a billion: generous on purpose
    return HorizontalSpec(public["job_id"], tuple(public["participants"]), tuple(public["buckets"]),
                          public["public_key"]["fingerprint"], statistics=stats, decimals=public["decimals"],
                          count_bits=40, sum_bits=80, square_bits=140, key_bits=public["key_bits"], round=public["round"])


def join_spec(public: dict) -> JoinSpec:
    return JoinSpec(public["job_id"], tuple(public["buckets"]), public["public_key"]["fingerprint"],
                    min_cohort=public["min_cohort"], key_bits=public["key_bits"], include_squares=public["include_squares"])


def check_public(public: dict) -> None:
    """A participant's check that a public spec asks for exactly what its kind allows, before any query runs.

    The chain proves who asked what; this proves that what was asked is well formed (known columns,
    declared buckets, the dataset and purpose that belong to the kind), so the grant checked is the
    grant for the data that will be read.
    """
    try:
        kind = public["kind"]
        if kind == "horizontal":
            _need(public["dataset"] in SCHEMAS, "unknown dataset")
            _need(public["purpose"] in STAT_PURPOSES, "purpose not allowed for statistics")
            axes = parse_axes(public["group_by"], public["dataset"])
            _need(list(bucket_names(axes)) == public["buckets"], "buckets do not follow from group_by")
            _need(parse_filters(public["filters"], public["dataset"]) == public["filters"], "filters are not normalized")
            value = public.get("value")
            if value is not None:
                _need(dataset_schema(public["dataset"]).field(value).kind in ("int", "float"), "value column is not numeric")
                lo, hi = public["value_range"]
                _need(isinstance(lo, float) and isinstance(hi, float) and math.isfinite(lo) and math.isfinite(hi) and lo < hi,
                      "value_range is not valid")
            if "epsilon" in public:
                _need(isinstance(public["epsilon"], float) and 0 < public["epsilon"] <= 10, "epsilon out of range")
            _need(public["statistics"] in (["count"], ["count", "sum"], ["count", "sum_of_squares"], ["count", "sum", "sum_of_squares"])
                  and (value is not None or public["statistics"] == ["count"]), "statistics are not valid")
            _need(isinstance(public["decimals"], int) and 0 <= public["decimals"] <= 6, "decimals out of range")
        elif kind == "vertical":
            _need(public["dataset"] == "user_features", "a vertical job reads the platform's user_features")
            _need(public["purpose"] in STAT_PURPOSES, "purpose not allowed for statistics")
            axes = parse_axes(public["group_by"], "user_features")
            _need(all(a.values for a in axes) and list(bucket_names(axes)) == public["buckets"], "buckets do not follow from group_by")
            _need(parse_filters(public["filters"], "user_features") == public["filters"], "filters are not normalized")
            if "epsilon" in public:
                _need(isinstance(public["epsilon"], float) and 0 < public["epsilon"] <= 10
                      and isinstance(public["value_bound"], float) and public["value_bound"] > 0, "noise parameters out of range")
        elif kind == "fraud":
            _need(public["check"] in FRAUD_CHECKS and public["dataset"] == FRAUD_CHECKS[public["check"]], "check and dataset differ")
            _need(public["purpose"] == "FRAUD", "fraud signals are answered for the FRAUD purpose only")
            _need(isinstance(public["persons"], int) and 0 < public["persons"] <= MAX_PERSONS, "persons out of range")
            if public["check"] == "recent_claims":
                _need(isinstance(public["days"], int) and 0 < public["days"] <= 3650, "days out of range")
                date.fromisoformat(public["as_of"])
        else:
            raise SpecError(f"unknown kind {kind!r}")
    except DatasetError as exc:
        raise SpecError(str(exc), reason=exc.reason) from None
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise SpecError(f"malformed job spec: {type(exc).__name__}: {exc}") from None
