"""Anomaly flags over the access-log index (DESIGN.md flow 6).

==========================  =======================================================================
outside_grant_window        an access logged before its grant's notBefore, or (after a grace for the
                            node's log batching) after its expiry or revocation; flagged at index time
denial_burst                a requester refused ``denial_burst_count`` times within ``denial_burst_seconds``,
                            counting only denials proven by the requester's signed request
unproven_denial             denials whose signed request the owner cannot produce, or that does not
                            verify (node/audit/denial_proofs.py); the subject is the owner that logged them
volume_spike                a requester's accesses on one UTC day over ``spike_factor`` x its own mean
                            of the previous ``baseline_days`` days (needs ``baseline_min_days`` of history)
small_cohort_job            a statistics job with minCohort below ``min_cohort`` or fewer than
                            ``min_participants`` participants: its result can expose single records
repeated_job                ``repeat_jobs`` or more jobs by one requester over the same participants
                            within ``repeat_window_seconds``, or the same spec hash asked again:
                            a differencing attempt (the spec is only a hash on chain, so "near-identical"
                            means same requester, same participants, close in time)
==========================  =======================================================================
"""
from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import asdict, dataclass

from sqlalchemy import and_, func, select
from sqlalchemy.engine import Engine

from node.audit import schema as s
from node.audit.denial_proofs import PROVEN, UNREACHABLE, ensure_schema, proofs
from node.audit.queries import AuditQueries, AuditQueryError, iso

DAY = 86_400
KINDS = ("outside_grant_window", "denial_burst", "unproven_denial", "volume_spike", "small_cohort_job", "repeated_job")


@dataclass(frozen=True)
class AnomalyRules:
    denial_burst_count: int = 5
    denial_burst_seconds: int = 60
    spike_factor: float = 3.0
    spike_min_events: int = 20
    baseline_days: int = 7
    baseline_min_days: int = 2
    min_cohort: int = 10
    min_participants: int = 2
    repeat_jobs: int = 3
    repeat_window_seconds: int = DAY


def _anomaly(kind: str, subject: str, first_ts: int, last_ts: int, count: int, detail: str, **extra) -> dict:
    return {"kind": kind, "subject": subject, "first_time": iso(first_ts), "last_time": iso(last_ts),
            "first_ts": first_ts, "last_ts": last_ts, "count": count, "detail": detail, **extra}


class AnomalyDetector:
    def __init__(self, engine: Engine, rules: AnomalyRules | None = None):
        self.engine = engine
        self.rules = rules or AnomalyRules()
        ensure_schema(engine)

    def find(self, *, since: int | None = None, until: int | None = None, kinds: list[str] | None = None,
             subject: str | None = None) -> dict:
        kinds = list(kinds or KINDS)
        unknown = [k for k in kinds if k not in KINDS]
        if unknown:
            raise AuditQueryError(f"unknown anomaly kind {', '.join(unknown)}", hint=f"use {', '.join(KINDS)}")
        with self.engine.connect() as conn:
            block = AuditQueries.indexed_block(conn)
            names = {i: a for i, a in conn.execute(select(s.accounts.c.id, s.accounts.c.address))}
            lo_ts = since if since is not None else -(2**62)
            hi_ts = until if until is not None else 2**62
            found: list[dict] = []
            if "outside_grant_window" in kinds:
                found += self._window(conn, names, lo_ts, hi_ts)
            if "denial_burst" in kinds:
                found += self._denial_bursts(conn, names, lo_ts, hi_ts)
            if "unproven_denial" in kinds:
                found += self._unproven_denials(conn, names, lo_ts, hi_ts)
            if "volume_spike" in kinds:
                found += self._spikes(conn, names, lo_ts, hi_ts)
            if "small_cohort_job" in kinds or "repeated_job" in kinds:
                found += self._jobs(conn, names, lo_ts, hi_ts, kinds)
        if subject is not None:
            found = [a for a in found if a["subject"].lower() == subject.lower()]
        found.sort(key=lambda a: (a["last_ts"], a["kind"]), reverse=True)
        return {"as_of_block": block, "rules": asdict(self.rules), "count": len(found), "anomalies": found}

    # ------------------------------------------------------------------ checks

    def _window(self, conn, names, lo_ts, hi_ts) -> list[dict]:
        lg = s.log
        query = (select(lg.c.grant_id, lg.c.flag, lg.c.requester, lg.c.owner, func.count().label("n"),
                        func.min(lg.c.ts).label("first"), func.max(lg.c.ts).label("last"), func.min(lg.c.pos).label("pos"))
                 .where(and_(lg.c.flag != 0, lg.c.ts >= lo_ts, lg.c.ts < hi_ts))
                 .group_by(lg.c.grant_id, lg.c.flag, lg.c.requester, lg.c.owner))
        out = []
        for r in conn.execute(query):
            why = s.FLAG_NAMES[r.flag].replace("_", " ")
            out.append(_anomaly("outside_grant_window", names[r.requester], r.first, r.last, r.n,
                                f"{r.n} access(es) under grant {r.grant_id} logged {why}", grant_id=r.grant_id,
                                owner=names[r.owner], reason=s.FLAG_NAMES[r.flag], block=s.block_of(r.pos)))
        return out

    def _denial_bursts(self, conn, names, lo_ts, hi_ts) -> list[dict]:
        rules = self.rules
        by_requester: dict[int, list[int]] = defaultdict(list)
        # Only proven denials count: an owner cannot make a member look like a prober by logging
        # denials that name it (issue 11 item 4); unproven ones are reported as unproven_denial.
        query = (select(s.log.c.requester, s.log.c.ts).join(proofs, proofs.c.pos == s.log.c.pos)
                 .where(and_(s.log.c.kind == s.KIND_DENIAL, proofs.c.status == PROVEN, s.log.c.ts >= lo_ts, s.log.c.ts < hi_ts))
                 .order_by(s.log.c.requester, s.log.c.pos))
        for requester, ts in conn.execute(query):
            by_requester[requester].append(ts)
        out = []
        for requester, times in by_requester.items():
            # Every denial that sits in some window of ``count`` denials within ``seconds`` is "in a burst";
            # consecutive such denials closer than the window form one reported burst.
            in_burst = [False] * len(times)
            start = 0
            for end in range(len(times)):
                while times[end] - times[start] >= rules.denial_burst_seconds:
                    start += 1
                if end - start + 1 >= rules.denial_burst_count:
                    for i in range(start, end + 1):
                        in_burst[i] = True
            run: list[int] = []
            for i, flagged in enumerate(in_burst + [False]):
                if flagged and (not run or times[i] - times[run[-1]] < rules.denial_burst_seconds):
                    run.append(i)
                    continue
                if run:
                    first, last = times[run[0]], times[run[-1]]
                    out.append(_anomaly("denial_burst", names[requester], first, last, len(run),
                                        f"{len(run)} denials in {last - first} s (threshold {rules.denial_burst_count} "
                                        f"within {rules.denial_burst_seconds} s)"))
                run = [i] if flagged else []
        return out

    def _unproven_denials(self, conn, names, lo_ts, hi_ts) -> list[dict]:
        lg = s.log
        query = (select(lg.c.owner, lg.c.requester, proofs.c.status, func.count().label("n"),
                        func.min(lg.c.ts).label("first"), func.max(lg.c.ts).label("last"), func.min(lg.c.pos).label("pos"))
                 .join(proofs, proofs.c.pos == lg.c.pos)
                 .where(and_(lg.c.kind == s.KIND_DENIAL, proofs.c.status != PROVEN, lg.c.ts >= lo_ts, lg.c.ts < hi_ts))
                 .group_by(lg.c.owner, lg.c.requester, proofs.c.status))
        out = []
        for r in conn.execute(query):
            why = ("the owner did not answer (retried)" if r.status == UNREACHABLE
                   else r.status.replace("_", " "))
            out.append(_anomaly("unproven_denial", names[r.owner], r.first, r.last, r.n,
                                f"{r.n} denial(s) naming {names[r.requester]} without a valid signed request: {why}; "
                                f"not counted toward denial_burst", requester=names[r.requester], reason=r.status,
                                block=s.block_of(r.pos)))
        return out

    def _spikes(self, conn, names, lo_ts, hi_ts) -> list[dict]:
        rules = self.rules
        d = s.daily
        per: dict[int, dict[int, int]] = defaultdict(dict)
        for requester, day, events in conn.execute(
                select(d.c.requester, d.c.day, func.sum(d.c.events)).where(d.c.kind == s.KIND_ACCESS)
                .group_by(d.c.requester, d.c.day)):
            per[requester][day] = int(events)
        out = []
        for requester, days in per.items():
            first_day = min(days)
            for day, count in days.items():
                if not (lo_ts // DAY <= day <= (hi_ts - 1) // DAY) or count < rules.spike_min_events:
                    continue
                prior = [x for x in range(day - rules.baseline_days, day) if x >= first_day]
                if len(prior) < rules.baseline_min_days:
                    continue
                baseline = sum(days.get(x, 0) for x in prior) / len(prior)
                if count > rules.spike_factor * max(baseline, 1.0):
                    out.append(_anomaly("volume_spike", names[requester], day * DAY, day * DAY + DAY - 1, count,
                                        f"{count} accesses on {iso(day * DAY)[:10]} against a baseline of "
                                        f"{baseline:.1f}/day over the previous {len(prior)} day(s)",
                                        baseline=round(baseline, 2)))
        return out

    def _jobs(self, conn, names, lo_ts, hi_ts, kinds) -> list[dict]:
        rules = self.rules
        j = s.jobs
        rows = list(conn.execute(select(j).where(and_(j.c.opened_ts >= lo_ts, j.c.opened_ts < hi_ts))
                                 .order_by(j.c.requester, j.c.opened_ts)))
        out = []
        if "small_cohort_job" in kinds:
            for r in rows:
                participants = json.loads(r.participants)
                problems = []
                if r.min_cohort < rules.min_cohort:
                    problems.append(f"minCohort {r.min_cohort} < {rules.min_cohort}")
                if len(participants) < rules.min_participants:
                    problems.append(f"{len(participants)} participant(s) < {rules.min_participants}")
                if problems:
                    out.append(_anomaly("small_cohort_job", names[r.requester], r.opened_ts, r.opened_ts, 1,
                                        f"job {r.job_id}: " + ", ".join(problems), job_id=r.job_id,
                                        block=s.block_of(r.opened_pos)))
        if "repeated_job" in kinds:
            groups: dict[tuple, list] = defaultdict(list)
            for r in rows:
                groups[(r.requester, r.participants)].append(r)
            for (requester, _), jobs in groups.items():
                start, flagged = 0, set()
                for end in range(len(jobs)):
                    while jobs[end].opened_ts - jobs[start].opened_ts >= rules.repeat_window_seconds:
                        start += 1
                    if end - start + 1 >= rules.repeat_jobs:
                        flagged.update(range(start, end + 1))
                by_spec: dict[bytes, list] = defaultdict(list)
                for job in jobs:
                    by_spec[bytes(job.spec_hash)].append(job)
                repeats = {id(job) for same in by_spec.values() if len(same) > 1 for job in same}
                picked = [job for i, job in enumerate(jobs) if i in flagged or id(job) in repeats]
                if picked:
                    ids = [job.job_id for job in picked]
                    identical = sum(1 for same in by_spec.values() if len(same) > 1)
                    detail = (f"{len(picked)} jobs over the same {len(json.loads(jobs[0].participants))} participant(s)"
                              + (f", {identical} spec hash(es) asked more than once" if identical else "")
                              + ": possible differencing")
                    out.append(_anomaly("repeated_job", names[requester], picked[0].opened_ts, picked[-1].opened_ts,
                                        len(picked), detail, job_ids=ids))
        return out
