"""The figures of the regulator's dashboard and of a member's own view: index queries -> chart + CSV + links.

Every figure is pinned to one block (``Window.as_of``) and one time window of whole UTC days ending at
that block's chain time, so the chart, the filtered table its marks link to and the CSV behind it all
hold the same events. The member's figures take the member's own address from the node, never from
the request: each query is filtered to it as data owner or as requester.
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import datetime, timezone
from urllib.parse import urlencode

from markupsafe import Markup

from node.audit.queries import AuditQueries, LogFilter, iso
from node.chain.deployment import Purpose
from node.web import charts

DAY = 86_400
MAX_DAYS = 366


@dataclass(frozen=True)
class Window:
    """Whole UTC days ``since`` (inclusive) to ``until`` (exclusive), the last one holding block ``as_of``."""

    as_of: int
    end_ts: int  # chain time of block as_of
    days: int

    @property
    def until(self) -> int:
        return (self.end_ts // DAY + 1) * DAY

    @property
    def since(self) -> int:
        return self.until - self.days * DAY

    @property
    def day_labels(self) -> list[str]:
        return [_day(self.since + i * DAY) for i in range(self.days)]

    def params(self, **extra: object) -> dict[str, str]:
        """Query-string parameters of the filtered table for this window (and ``extra`` filters)."""
        out = {"since": iso(self.since), "until": iso(self.until), "as_of": str(self.as_of)}
        out.update({k: str(v) for k, v in extra.items() if v not in (None, "")})
        return out

    def ticks(self) -> list[tuple[int, str]]:
        every = max(1, self.days // 7)
        return [(self.since + i * DAY, _day(self.since + i * DAY)[5:]) for i in range(0, self.days + 1, every)]


def _short_day(label: str) -> str:
    return label[5:]  # 2026-01-31 -> 01-31 on the axis; the window line above states the year


def _day(ts: int) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d")


@dataclass
class Figure:
    key: str
    title: str
    svg: Markup
    as_of_block: int
    table_url: str  # the filtered table behind the whole figure
    events_csv_url: str  # the events behind it, as the table's CSV
    data_columns: list[str]  # the figure's own numbers (its CSV)
    data_rows: list[list] = field(default_factory=list)
    note: str = ""

    def csv_text(self) -> str:
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(self.data_columns)
        writer.writerows(self.data_rows)
        return buf.getvalue()


class Names:
    """Display names for addresses: a member's registered name, else a shortened address."""

    def __init__(self, names: dict[str, str]):
        self.names = names

    def __call__(self, address: str) -> str:
        return self.names.get(address) or (f"{address[:6]}…{address[-4:]}" if len(address) > 12 else address)


def _link(base: str, params: dict[str, str]) -> str:
    return f"{base}?{urlencode(params)}"


def _daily_series(queries: AuditQueries, f: LogFilter, w: Window, table: str, fixed: dict) -> tuple[list, list[list]]:
    """Accesses and denials per day (one line each, zero-filled), and the figure's CSV rows."""
    result = queries.summarize_logs(f, group_by=("day", "outcome"), as_of=w.as_of)
    counts = {(g["day"], g["outcome"]): g for g in result["groups"]}
    series, rows = [], []
    for outcome in ("access", "denial"):
        values, hrefs = [], []
        for label in w.day_labels:
            g = counts.get((label, outcome))
            values.append(g["events"] if g else 0)
            start = int(datetime.strptime(label, "%Y-%m-%d").replace(tzinfo=timezone.utc).timestamp())
            hrefs.append(_link(table, {**fixed, "since": iso(start), "until": iso(start + DAY), "outcome": outcome,
                                       "as_of": str(w.as_of)}))
            rows.append([label, outcome, g["events"] if g else 0, g["rows"] if g else 0])
        series.append(charts.Series(outcome, values, hrefs))
    return series, rows


# ---------------------------------------------------------------------- regulator


def regulator_figures(queries: AuditQueries, anomalies: dict, names: Names, w: Window) -> tuple[list[Figure], list[dict]]:
    """The dashboard: per-day use, use by purpose, top requesters and owners, the flow map, anomalies.

    Returns the figures and the "top requesters" answer table (who used most rows, for what, refused how often).
    """
    table, table_csv = "/web/logs", "/web/logs.csv"
    window = LogFilter(since=w.since, until=w.until)
    whole = w.params()
    figures: list[Figure] = []

    series, rows = _daily_series(queries, window, w, table, {})
    figures.append(Figure("daily", "Accesses and denials per day", charts.line_chart(
        "chart-daily", "Accesses and denials per day", w.day_labels, series, tick=_short_day), w.as_of,
        _link(table, whole), _link(table_csv, whole), ["day", "outcome", "events", "rows"], rows))

    by_purpose = queries.summarize_logs(LogFilter(since=w.since, until=w.until, outcome=1), group_by=("day", "purpose"),
                                        as_of=w.as_of)
    per = {(g["day"], g["purpose"]): g for g in by_purpose["groups"]}
    used = [p.name for p in Purpose if any(k[1] == p.name for k in per)]
    purpose_series = [charts.Series(p, [per[(d, p)]["events"] if (d, p) in per else 0 for d in w.day_labels],
                                    [_link(table, w.params(purpose=p, outcome="access")) for _ in w.day_labels])
                      for p in used]
    figures.append(Figure("purposes", "Accesses per day by purpose", charts.line_chart(
        "chart-purposes", "Accesses per day by purpose", w.day_labels, purpose_series, tick=_short_day), w.as_of,
        _link(table, w.params(outcome="access")), _link(table_csv, w.params(outcome="access")),
        ["day", "purpose", "events", "rows"],
        [[d, p, per[(d, p)]["events"], per[(d, p)]["rows"]] for d in w.day_labels for p in used if (d, p) in per]))

    by_member = queries.summarize_logs(LogFilter(since=w.since, until=w.until, outcome=1), group_by=("day", "requester"),
                                       as_of=w.as_of)["groups"]
    per_member = {(g["day"], g["requester"]): g for g in by_member}
    busiest = sorted(_totals([{**g, "outcome": "access"} for g in by_member], "requester").items(),
                     key=lambda kv: (-kv[1]["rows"], -kv[1]["access"], kv[0]))[:8]  # more lines would not be readable
    member_series = [charts.Series(names(a), [per_member[(d, a)]["events"] if (d, a) in per_member else 0 for d in w.day_labels],
                                   [_link(table, w.params(requester=a, outcome="access")) for _ in w.day_labels])
                     for a, _ in busiest]
    figures.append(Figure("members", "Accesses per day by requester", charts.line_chart(
        "chart-members", "Accesses per day by requester", w.day_labels, member_series, tick=_short_day), w.as_of,
        _link(table, w.params(outcome="access")), _link(table_csv, w.params(outcome="access")),
        ["day", "requester", "name", "events", "rows"],
        [[d, a, names(a), per_member[(d, a)]["events"], per_member[(d, a)]["rows"]] for d in w.day_labels
         for a, _ in busiest if (d, a) in per_member]))

    pairs = queries.summarize_logs(window, group_by=("owner", "requester", "outcome"), as_of=w.as_of)["groups"]
    for side, title in (("requester", "Top requesters (rows used)"), ("owner", "Top owners (rows served)")):
        totals = _totals(pairs, side)
        ranked = sorted(totals.items(), key=lambda kv: (-kv[1]["rows"], -kv[1]["access"] - kv[1]["denial"], kv[0]))[:10]
        bars = [charts.Bar(names(a), [("access", t["access"]), ("denial", t["denial"])], _link(table, w.params(**{side: a})),
                           note=f"{t['rows']:,} rows", key=a) for a, t in ranked]
        figures.append(Figure(side + "s", title, charts.bar_chart(f"chart-{side}s", title, bars), w.as_of,
                              _link(table, whole), _link(table_csv, whole),
                              [side, "name", "accesses", "denials", "rows"],
                              [[a, names(a), t["access"], t["denial"], t["rows"]] for a, t in ranked]))

    edges = _totals(pairs, "owner", "requester")
    flagged = {a["subject"] for a in anomalies["anomalies"]}
    members = {k for pair in edges for k in pair} | {a for a in names.names}
    nodes = [charts.FlowNode(a, names(a), a in flagged, _link(table, w.params(owner=a))) for a in sorted(members)]
    flow_edges = [charts.FlowEdge(o, r, e["access"], e["rows"], e["denial"], _link(table, w.params(owner=o, requester=r)))
                  for (o, r), e in sorted(edges.items())]
    figures.append(Figure("flows", "Data flows: owner → requester (width: rows; red: refusals; ringed: anomalies)",
                          charts.flow_map("chart-flows", "Data flows between members", nodes, flow_edges), w.as_of,
                          _link(table, whole), _link(table_csv, whole),
                          ["owner", "owner_name", "requester", "requester_name", "accesses", "rows", "denials"],
                          [[o, names(o), r, names(r), e["access"], e["rows"], e["denial"]] for (o, r), e in sorted(edges.items())]))

    marks = [charts.Mark(a["first_ts"], a["kind"], f"{names(a['subject'])}: {a['detail']}",
                         _link("/web/anomalies", {"kind": a["kind"]})) for a in anomalies["anomalies"]]
    figures.append(Figure("anomalies", "Anomalies", charts.timeline("chart-anomalies", "Anomalies over time", marks, w.since,
                                                                   w.until, tick_labels=w.ticks()),
                          anomalies["as_of_block"], "/web/anomalies", _link(table_csv, w.params(flagged="true")),
                          ["kind", "member", "name", "first_time", "last_time", "events", "detail"],
                          [[a["kind"], a["subject"], names(a["subject"]), a["first_time"], a["last_time"], a["count"], a["detail"]]
                           for a in anomalies["anomalies"]]))

    # The one-screen answer: who used most, for what, and how much of it was refused.
    purposes = queries.summarize_logs(window, group_by=("requester", "purpose", "outcome"), as_of=w.as_of)["groups"]
    top = []
    for address, t in sorted(((a, t) for a, t in _totals(pairs, "requester").items()),
                             key=lambda kv: (-kv[1]["rows"], -kv[1]["access"], kv[0]))[:10]:
        mine = [g for g in purposes if g["requester"] == address]
        top.append({"address": address, "name": names(address), "rows": t["rows"], "uses": t["access"],
                    "denials": t["denial"],
                    "purposes": sorted(((g["purpose"], g["rows"], g["events"]) for g in mine if g["outcome"] == "access"),
                                       key=lambda p: (-p[1], p[0])),
                    "refused_for": sorted({g["purpose"] for g in mine if g["outcome"] == "denial"}),
                    "table_url": _link(table, w.params(requester=address)),
                    "denials_url": _link(table, w.params(requester=address, outcome="denial"))})
    return figures, top


def _totals(groups: list[dict], *keys: str) -> dict:
    """Accesses, denials and rows per value of ``keys`` (one key: the value; several: a tuple)."""
    totals: dict = {}
    for g in groups:
        k = g[keys[0]] if len(keys) == 1 else tuple(g[x] for x in keys)
        t = totals.setdefault(k, {"access": 0, "denial": 0, "rows": 0})
        t[g["outcome"]] += g["events"]
        t["rows"] += g["rows"]
    return totals


# ---------------------------------------------------------------------- a member's own view


def member_figures(queries: AuditQueries, me: str, names: Names, w: Window) -> list[Figure]:
    """Uses of this member's data (as owner) and its uses of others' data (as requester)."""
    table, table_csv = "/web/me/logs", "/web/me/logs.csv"
    figures: list[Figure] = []
    mine = LogFilter(owner=me, since=w.since, until=w.until)
    series, rows = _daily_series(queries, mine, w, table, {"side": "owner"})
    figures.append(Figure("my-daily", "Uses of my data per day", charts.line_chart(
        "chart-my-daily", "Uses of my data per day", w.day_labels, series, tick=_short_day), w.as_of,
        _link(table, w.params(side="owner")), _link(table_csv, w.params(side="owner")),
        ["day", "outcome", "events", "rows"], rows))
    for side, other, f, title in (("owner", "requester", mine, "Who used my data"),
                                  ("requester", "owner", LogFilter(requester=me, since=w.since, until=w.until),
                                   "Whose data I used")):
        groups = queries.summarize_logs(f, group_by=(other, "outcome"), as_of=w.as_of)["groups"]
        totals = _totals(groups, other)
        ranked = sorted(totals.items(), key=lambda kv: (-kv[1]["rows"], -kv[1]["access"] - kv[1]["denial"], kv[0]))
        key = "users" if side == "owner" else "sources"
        bars = [charts.Bar(names(a), [("access", t["access"]), ("denial", t["denial"])],
                           _link(table, w.params(side=side, **{other: a})), note=f"{t['rows']:,} rows", key=a)
                for a, t in ranked]
        figures.append(Figure(key, title, charts.bar_chart(f"chart-{key}", title, bars), w.as_of,
                              _link(table, w.params(side=side)), _link(table_csv, w.params(side=side)),
                              [other, "name", "accesses", "denials", "rows"],
                              [[a, names(a), t["access"], t["denial"], t["rows"]] for a, t in ranked]))
    return figures


def member_uses(queries: AuditQueries, me: str, names: Names, w: Window) -> list[dict]:
    """Uses of my data grouped by who, for which purpose, under which grant, with how many rows."""
    groups = queries.summarize_logs(LogFilter(owner=me, since=w.since, until=w.until),
                                    group_by=("requester", "purpose", "grant_id", "outcome"), as_of=w.as_of)["groups"]
    return [{**g, "name": names(g["requester"]),
             "table_url": _link("/web/me/logs", w.params(side="owner", requester=g["requester"], purpose=g["purpose"],
                                                         grant_id=g["grant_id"], outcome=g["outcome"]))}
            for g in sorted(groups, key=lambda g: (-g["rows"], -g["events"], g["requester"], g["purpose"]))]
