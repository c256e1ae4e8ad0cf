"""`consortium demo`: the consortium end to end, with every member node a real process on loopback.

A local anvil chain, five members (two insurers, a platform, a regulator, an auditor), four node
processes with generated sample data, then: grants with consent references, served and refused
queries (each logged on chain by the data owner's node), joint statistics, a claim's evidence, a data
certificate metered and settled, a risk pool and a mutual-aid apportionment of the claim, an admission
vote, a revocation that takes effect on the very next request, a regulator's yellow card, and the
chain's record of all of it.
"""
from __future__ import annotations

import hashlib
import json
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from rich.console import Console
from rich.table import Table

from node.access.consent import attest_batch, scope_hash
from node.chain.anvil import free_port
from node.chain.deployment import Purpose
from node.chain.events import EventReader
from node.chain.ledger import dataset_id
from node.client import NodeClient
from node.connect import node_url
from node.errors import ConsortiumError, parse_problem
from node.keys import create_member_keys
from node.network.devnet import NodeProcess, dev_passphrase, spawn_node, start_dev_consortium
from node.sample_data import generate, write_member_csvs
from node.store.datasets import import_csv, init_datasets
from node.store.db import create_store_engine

NODE_MEMBERS = ("insurer-east", "insurer-west", "shop-platform", "regulator")
INSURERS = {"insurer-east": "insurer_a", "insurer-west": "insurer_b"}


def _plain_sum_by_age(claims: list[dict]) -> dict[str, tuple[int, float]]:
    out: dict[str, list] = {}
    for c in claims:
        entry = out.setdefault(c["age_band"], [0, 0.0])
        entry[0] += 1
        entry[1] += c["amount"]
    return {k: (v[0], round(v[1], 2)) for k, v in sorted(out.items())}


def run_demo(home: Path | None = None, *, as_json: bool = False, console: Console | None = None) -> dict:
    console = console or Console(stderr=as_json)
    started = time.monotonic()
    owned_tmp = tempfile.TemporaryDirectory(prefix="consortium-demo-") if home is None else None
    home = Path(owned_tmp.name) if owned_tmp else Path(home)
    steps: list[dict] = []
    queries: list[dict] = []

    def step(title: str, action: Callable[[], Any]) -> Any:
        t0 = time.monotonic()
        with console.status(title):
            result = action()
        ms = (time.monotonic() - t0) * 1000
        console.print(f"[green]✓[/green] {title} [dim]({ms:.0f} ms)[/dim]")
        steps.append({"step": title, "ms": round(ms, 1)})
        return result

    ports = {name: free_port() for name in NODE_MEMBERS}
    endpoints = {name: node_url("127.0.0.1", port) for name, port in ports.items()}
    dev = step("Start a local anvil chain, create encrypted keys for 5 members, deploy the contracts",
               lambda: start_dev_consortium(home, endpoints=endpoints))
    nodes: dict[str, NodeProcess] = {}
    try:
        keys, chain_id = dev.keys, dev.gateway.chain_id
        world = step("Generate sample data: 3,000 people, two insurers' policies and claims, platform features",
                     lambda: generate())

        def import_all() -> dict[str, int]:
            counts = {}
            for name in NODE_MEMBERS:
                rows: dict[str, list[dict]] = {}
                if name in INSURERS:
                    data = world.insurers[INSURERS[name]]
                    rows = {"policies": data.policies, "claims": data.claims, "fraud_list": data.fraud_list}
                elif name == "shop-platform":
                    rows = {"user_features": world.user_features}
                engine = create_store_engine(f"sqlite:///{(home / 'nodes' / name / 'node.db').resolve()}")
                init_datasets(engine)
                for dataset, path in write_member_csvs(home / "nodes" / name / "import", rows).items():
                    counts[f"{name}/{dataset}"] = import_csv(engine, dataset, path)
                engine.dispose()
            return counts

        imported = step("Import each member's CSV files into its own SQLite store (all rows or none)", import_all)
        passphrase = dev_passphrase(home)

        def start_nodes() -> None:
            for name in NODE_MEMBERS:
                nodes[name] = spawn_node(home / "nodes" / name, name, home / "members" / name, dev.gateway.rpc_url,
                                         dev.deployment_path, passphrase, port=ports[name], log_flush_seconds=0.5)

        step("Start 4 member nodes as separate processes on loopback", start_nodes)

        def client(caller: str, target: str) -> NodeClient:
            return NodeClient(endpoints[target], keys[caller].account, keys[target].address, chain_id)

        def ask(caller: str, target: str, dataset: str, purpose: str, **query: Any) -> Any:
            r = client(caller, target).query(dataset, purpose, **query)
            queries.append({"from": caller, "to": target, "dataset": dataset, "purpose": purpose, "status": r.status_code,
                            "outcome": "served" if r.status_code == 200 else parse_problem(r.content, "?")[0]})
            return r

        now = dev.gateway.block_time()
        consent_records = [{"subject": p["person_id"], "app": "shop-platform", "scope": "claims statistics", "at": "2026-11"}
                           for p in world.insurers["insurer_a"].policies[:500]]
        scope = "claims: count, sum(amount) by age_band"
        # shop-platform collected the consents in its app: it attests their Merkle root for exactly this grant.
        consent = attest_batch(keys["shop-platform"].account, consent_records, owner=keys["insurer-east"].address,
                               grantee=keys["shop-platform"].address, dataset_id=dataset_id("claims"),
                               purpose=int(Purpose.STATISTICS), scope_hash_hex=scope_hash(scope), expires_at=now + 30 * 86400,
                               chain_id=chain_id, contract=dev.deployment.contracts["DataUseAuthorization"]).document()
        east = client("insurer-east", "insurer-east")
        grant = step("insurer-east grants shop-platform STATISTICS use of its claims (consent batch of 500 policyholders, "
                     "attested by shop-platform for exactly this grant)",
                     lambda: east.request("POST", "/grants", {"grantee": keys["shop-platform"].address, "dataset": "claims",
                                                              "purpose": "STATISTICS", "expires_at": now + 30 * 86400,
                                                              "scope": scope, "consent": consent}).json())
        step("insurer-east offers the same consent again, for another grant: refused (one consent, one grant)",
             lambda: parse_problem(east.request("POST", "/grants", {"grantee": keys["shop-platform"].address, "dataset": "claims",
                                                                    "purpose": "STATISTICS", "expires_at": now + 30 * 86400,
                                                                    "scope": scope, "consent": consent}).content, "not refused")[0])
        served = step("shop-platform asks insurer-east's node: claims and total amount per age band",
                      lambda: ask("shop-platform", "insurer-east", "claims", "STATISTICS", metric="sum", column="amount", group_by="age_band"))
        result_by_age = {row["group"]: (row["records"], round(row["value"], 2)) for row in served.json()["rows"]}
        plain_by_age = _plain_sum_by_age(world.insurers["insurer_a"].claims)
        step("shop-platform asks to use the same data for PRICING (never granted)",
             lambda: ask("shop-platform", "insurer-east", "claims", "PRICING"))
        step("insurer-west asks insurer-east's node for claims without any grant",
             lambda: ask("insurer-west", "insurer-east", "claims", "FRAUD"))
        step("insurer-east grants insurer-west FRAUD use of its fraud list",
             lambda: east.request("POST", "/grants", {"grantee": keys["insurer-west"].address, "dataset": "fraud_list",
                                                      "purpose": "FRAUD", "expires_at": now + 7 * 86400,
                                                      "consent_ref": "0x" + hashlib.sha256(b"legal basis: anti-fraud regulation").hexdigest()}))
        fraud = step("insurer-west counts insurer-east's fraud-list entries", lambda: ask("insurer-west", "insurer-east", "fraud_list", "FRAUD"))

        stats_jobs = _joint_statistics(step, client, keys, world, now)
        evidence = _claim_evidence(step, client, keys, chain_id, endpoints)
        settlement = _settlement(step, ask, dev, keys)
        pools = _pools(step, client, dev, keys, evidence, home)

        newcomer = create_member_keys(home / "members" / "risk-model-lab", passphrase)
        dev.gateway.fund(newcomer.address)
        proposal = step("insurer-east proposes a technology firm for admission (through its node)",
                        lambda: east.request("POST", "/governance/proposals", {"candidate": newcomer.address, "name": "risk-model-lab",
                                                                               "role": "TECH", "x25519_key": "0x" + newcomer.x25519_public.hex()}).json())
        admitted = False
        for voter in NODE_MEMBERS:
            if not admitted:
                vote = step(f"{voter} votes through its own node",
                            lambda v=voter: client(v, v).request("POST", f"/governance/proposals/{proposal['proposal_id']}/votes").json())
                admitted = vote.get("admitted", False)
        step("insurer-east revokes shop-platform's grant (mined before the call returns)",
             lambda: east.request("DELETE", f"/grants/{grant['grant_id']}"))
        after = step("shop-platform asks again: refused on the very next request",
                     lambda: ask("shop-platform", "insurer-east", "claims", "STATISTICS"))
        step("The regulator gives insurer-west a yellow card (through its node)",
             lambda: client("regulator", "regulator").request("POST", f"/governance/members/{keys['insurer-west'].address}/warn",
                                                               {"reason": "late breach report"}))

        def drained() -> dict:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                counts = [client(name, name).request("GET", "/ready").json().get("access_log", {"pending": 1})
                          for name in nodes]  # operator only; a node not ready yet counts as pending
                if all(c.get("pending", 0) == 0 and c.get("sent", 0) == 0 for c in counts):
                    return {"nodes": len(nodes)}
                time.sleep(0.2)
            return {"nodes": len(nodes), "timeout": True}

        step("Wait until every access and refusal is on chain", drained)
        regulator_view = step("The regulator's node indexes the chain: access log, denials, anomalies, index = chain",
                              lambda: _regulator_view(client, dev.gateway.block_number()))
        events = EventReader(dev.gateway).read(dev.deployment.deployment_block)
        by_type: dict[str, int] = {}
        for e in events:
            by_type[e.event] = by_type.get(e.event, 0) + 1
        summary = {
            "rpc_url": dev.gateway.rpc_url, "chain_id": chain_id, "nodes": {n: endpoints[n] for n in NODE_MEMBERS},
            "imported_rows": imported, "members": len(dev.ledgers["regulator"].members()), "newcomer_admitted": bool(admitted),
            "statistics_served": served.status_code == 200, "statistics_match_plaintext": result_by_age == plain_by_age,
            "fraud_list_entries": fraud.json()["records"] if fraud.status_code == 200 else None,
            "refused_after_revocation": after.status_code == 403 and parse_problem(after.content)[0] == "revoked",
            "queries": queries, "events_by_type": by_type, "events": len(events),
            "joint_statistics": {kind: {"state": job["state"], "matches_plaintext": match, "chain_job_id": job["chain_job_id"]}
                                 for kind, (job, _, match) in stats_jobs.items()},
            "evidence": evidence, "regulator": regulator_view, "settlement": settlement, "pools": pools,
            "seconds": round(time.monotonic() - started, 2), "steps": steps,
        }
        if as_json:
            print(json.dumps(summary))
        else:
            _print_statistics(console, stats_jobs)
            _print_tables(console, queries, result_by_age, plain_by_age, by_type, summary)
            _print_evidence_and_regulator(console, evidence, regulator_view)
            _print_settlement(console, settlement)
            _print_pools(console, pools)
        return summary
    finally:
        for node in nodes.values():
            node.stop()
        dev.stop()
        if owned_tmp is not None:
            owned_tmp.cleanup()


def _print_tables(console: Console, queries, result_by_age, plain_by_age, by_type, summary) -> None:
    q = Table(title="Requests between member nodes (each checked on chain by the data owner's node)")
    for col in ("from", "to", "dataset", "purpose", "status", "outcome"):
        q.add_column(col)
    for row in queries:
        q.add_row(*(str(row[c]) for c in ("from", "to", "dataset", "purpose", "status", "outcome")))
    console.print(q)
    r = Table(title="insurer-east claims by age band: served to shop-platform vs plaintext (demo holds both)")
    for col in ("age band", "claims (served)", "amount (served)", "claims (plain)", "amount (plain)"):
        r.add_column(col, justify="right")
    for band in sorted(set(result_by_age) | set(plain_by_age)):
        s, p = result_by_age.get(band, ("-", "-")), plain_by_age.get(band, ("-", "-"))
        r.add_row(band, str(s[0]), str(s[1]), str(p[0]), str(p[1]))
    console.print(r)
    e = Table(title="What the chain recorded")
    e.add_column("event")
    e.add_column("count", justify="right")
    for name, n in sorted(by_type.items()):
        e.add_row(name, str(n))
    console.print(e)
    s = Table(title="Demo summary")
    s.add_column("check")
    s.add_column("result", justify="right")
    for key in ("members", "newcomer_admitted", "statistics_served", "statistics_match_plaintext", "fraud_list_entries",
                "refused_after_revocation", "events", "seconds"):
        s.add_row(key, str(summary[key]))
    console.print(s)


# ------------------------------------------------------------------------------------------- joint statistics


def _run_job(client_for: Callable, requester: str, spec: dict, timeout: float = 120.0) -> dict:
    """Submit a job to the requester's own node and wait until it is published or failed."""
    c = client_for(requester, requester)
    deadline = time.monotonic() + timeout
    while True:  # the node's Paillier key may still be generating (first start only)
        r = c.request("POST", "/stats/jobs", spec)
        if r.status_code != 503 or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    job = r.json()
    if r.status_code != 202:
        raise RuntimeError(f"statistics job refused: {job}")
    while job["state"] not in ("PUBLISHED", "FAILED") and time.monotonic() < deadline:
        time.sleep(0.2)
        job = c.request("GET", f"/stats/jobs/{job['id']}").json()
    return job


def _joint_statistics(step: Callable, client: Callable, keys: dict, world: Any, now: int) -> dict:
    """One job of each kind; each result next to the plaintext answer from the demo's own data ``world``."""
    from node.sample_data import AGE_BANDS, CHANNELS

    def grant(owner: str, grantee: str, dataset: str, purpose: str) -> None:
        client(owner, owner).request("POST", "/grants", {"grantee": keys[grantee].address, "dataset": dataset,
                                                         "purpose": purpose, "expires_at": now + 86400,
                                                         "consent_ref": "0x" + hashlib.sha256(b"legal basis: statistics").hexdigest()})

    jobs: dict[str, tuple[dict, dict, bool]] = {}
    insurers = {"insurer-east": "insurer_a", "insurer-west": "insurer_b"}

    # horizontal: the regulator's market view of both insurers' claims
    for insurer in insurers:
        grant(insurer, "regulator", "claims", "STATISTICS")
    k = 10
    job = step("Horizontal job: the regulator asks both insurers for claims count, sum and mean by age band (k = 10)",
               lambda: _run_job(client, "regulator", {
                   "kind": "horizontal", "name": "claims by age band", "dataset": "claims", "value": "amount",
                   "statistics": ["count", "sum"], "participants": list(insurers), "min_cohort": k, "deadline_seconds": 60,
                   "group_by": [{"column": "age_band", "values": list(AGE_BANDS)}]}))
    plain: dict[str, list] = {}
    for data in insurers.values():
        for c in world.insurers[data].claims:
            e = plain.setdefault(c["age_band"], [0, 0])
            e[0] += 1
            e[1] += round(c["amount"] * 100)
    plain_h = {b: {"count": n, "sum": cents / 100, "mean": cents / 100 / n} for b, (n, cents) in plain.items() if n >= k}
    got = (job.get("result") or {}).get("buckets", {})
    match = job["state"] == "PUBLISHED" and set(got) == set(plain_h) and all(
        got[b]["count"] == p["count"] and round(got[b]["sum"] * 100) == round(p["sum"] * 100) for b, p in plain_h.items())
    jobs["horizontal"] = (job, plain_h, match)

    # vertical: insurer-east's claims joined with the platform's age band x channel, nobody sees the other's rows
    grant("shop-platform", "insurer-east", "user_features", "STATISTICS")
    job = step("Vertical job: insurer-east x shop-platform, claim rate and average claim per age band x channel",
               lambda: _run_job(client, "insurer-east", {
                   "kind": "vertical", "name": "claims by platform segment", "platform": "shop-platform", "min_cohort": k,
                   "deadline_seconds": 60, "group_by": [{"column": "age_band", "values": list(AGE_BANDS)},
                                                        {"column": "channel", "values": list(CHANNELS)}]}))
    data = world.insurers["insurer_a"]
    cents: dict[str, int] = {}
    for c in data.claims:
        cents[c["person_id"]] = cents.get(c["person_id"], 0) + round(c["amount"] * 100)
    persons = {p["person_id"] for p in data.policies} | set(cents)
    joined: dict[str, list] = {}
    for f in world.user_features:
        if f["person_id"] in persons:
            e = joined.setdefault(f"{f['age_band']}|{f['channel']}", [0, 0, 0])
            e[0] += 1
            e[1] += f["person_id"] in cents
            e[2] += cents.get(f["person_id"], 0)
    plain_v = {b: {"persons": n, "claimants": m, "claim_rate": m / n, "average_claim": a / 100 / m if m else None}
               for b, (n, m, a) in joined.items() if n >= k}
    got = (job.get("result") or {}).get("buckets", {})
    match = job["state"] == "PUBLISHED" and set(got) == set(plain_v) and all(
        (got[b]["persons"], got[b]["claimants"]) == (p["persons"], p["claimants"]) for b, p in plain_v.items())
    jobs["vertical"] = (job, plain_v, match)

    # fraud: insurer-west checks 8 persons against insurer-east's fraud list (FRAUD grant given above)
    listed = sorted(f["person_id"] for f in world.insurers["insurer_a"].fraud_list)
    others = [p for p in world.people if p not in set(listed)]
    asked = listed[:4] + others[:4]
    job = step("Fraud signals: insurer-west asks whether 8 persons are on another member's fraud list (counts only)",
               lambda: _run_job(client, "insurer-west", {"kind": "fraud", "check": "fraud_list", "participants": ["insurer-east"],
                                                         "persons": asked, "deadline_seconds": 60}))
    plain_f = {p: int(p in set(listed)) for p in asked}
    jobs["fraud"] = (job, plain_f, job["state"] == "PUBLISHED" and job["result"]["persons"] == plain_f)
    return jobs


def _print_statistics(console: Console, jobs: dict) -> None:
    job, plain, match = jobs["horizontal"]
    t = Table(title=f"Horizontal job {job['chain_job_id']} (secure aggregation) vs plaintext: claims by age band; match: {match}")
    for col in ("age band", "count", "count (plain)", "sum", "sum (plain)"):
        t.add_column(col, justify="right")
    got = (job.get("result") or {}).get("buckets", {})
    for b in sorted(set(got) | set(plain)):
        g, p = got.get(b, {}), plain.get(b, {})
        t.add_row(b, _fmt(g.get("count")), _fmt(p.get("count")), _fmt(g.get("sum")), _fmt(p.get("sum")))
    console.print(t)
    job, plain, match = jobs["vertical"]
    t = Table(title=f"Vertical job {job['chain_job_id']} (private join) vs plaintext join; match: {match}")
    for col in ("bucket", "persons", "(plain)", "claim rate", "(plain)", "avg claim", "(plain)"):
        t.add_column(col, justify="right")
    got = (job.get("result") or {}).get("buckets", {})
    for b in sorted(set(got) | set(plain)):
        g, p = got.get(b, {}), plain.get(b, {})
        t.add_row(b, *(_fmt(v.get(c)) for c in ("persons", "claim_rate", "average_claim") for v in (g, p)))
    console.print(t)
    job, plain, match = jobs["fraud"]
    t = Table(title=f"Fraud signals job {job['chain_job_id']} (private membership) vs plaintext; match: {match}")
    for col in ("person", "members listing (joint)", "members listing (plain)"):
        t.add_column(col, justify="right")
    got = (job.get("result") or {}).get("persons", {})
    for person in plain:
        t.add_row(person, _fmt(got.get(person)), _fmt(plain[person]))
    console.print(t)


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.4f}" if value < 1 else f"{value:,.2f}"
    return str(value)


# ------------------------------------------------------------------------------------------- claim evidence


def _claim_evidence(step: Callable, client: Callable, keys: dict, chain_id: int, endpoints: dict) -> dict:
    """A claim's documents hashed and anchored, its lifecycle on chain, and an auditor's check of one document."""
    import base64

    from node.access.auth import sign_request

    claim = "CLM-2026-11-0001"
    east = client("insurer-east", "insurer-east")
    invoice = b"%PDF-1.7 hospital invoice no. 88231, total 860.00 CNY, patient p000042"
    record_sha = hashlib.sha256(b"medical record p000042, outpatient, 2026-11-18").hexdigest()

    def submit() -> dict:
        east.request("POST", f"/evidence/claims/{claim}/steps", {"step": "reported"})
        path = f"/evidence/documents?claim_id={claim}&doc_type=invoice"
        headers = sign_request(keys["insurer-east"].account, chain_id, keys["insurer-east"].address, "POST", path, invoice)
        upload = east.http.post(path, content=invoice, headers=headers).json()
        hashed = east.request("POST", "/evidence/hashes", {"sha256": record_sha, "claim_id": claim,
                                                           "doc_type": "medical_record"}).json()
        return {"invoice_receipt": upload, "record_receipt": hashed}

    receipts = step("insurer-east reports a claim and submits its invoice (uploaded) and medical record (hash only)", submit)

    def lifecycle() -> list[dict]:
        for body in ({"step": "materials-complete"},
                     {"step": "assessed", "amount": 860.0, "express_threshold": 2000.0, "materials_complete": True,
                      "liability_clear": True},
                     {"step": "approved"}, {"step": "paid", "detail": {"payment_ref": "PAY-77120"}}):
            east.request("POST", f"/evidence/claims/{claim}/steps", body)
        return east.request("GET", f"/evidence/claims/{claim}/history").json()["steps"]

    history = step("The claim moves through materials complete, assessed (express), approved and paid, on chain", lifecycle)

    def anchored() -> list[dict]:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            proofs = east.request("GET", f"/evidence/proofs/{claim}").json().get("proofs", [])
            if proofs and all(p["state"] == "ANCHORED" for p in proofs):
                return proofs
            time.sleep(0.2)
        return []

    proofs = step("Wait for the evidence batch to be anchored (one transaction for the batch root)", anchored)
    invoice_proof = next((p for p in proofs if p["doc_type"] == "invoice"), None)
    auditor = client("auditor", "regulator")  # any node verifies: the answer comes from the chain alone

    def audit(document: bytes) -> dict:
        return auditor.request("POST", "/evidence/verify", {"proof": invoice_proof,
                                                            "document_base64": base64.b64encode(document).decode()}).json()

    valid = step("The auditor verifies the invoice against the chain with only the document and its proof",
                 lambda: audit(invoice)) if invoice_proof else {"valid": False, "reason": "not anchored"}
    tampered = step("The auditor checks a tampered copy of the invoice", lambda: audit(invoice.replace(b"860", b"960"))) \
        if invoice_proof else {"valid": False}
    return {"claim_id": claim, "documents": len(proofs), "anchored": bool(proofs),
            "anchor_block": (invoice_proof or {}).get("anchor", {}).get("block_number"),
            "auditor_valid": bool(valid.get("valid")), "tampered_rejected": tampered.get("valid") is False,
            "tampered_reason": tampered.get("reason"), "claim_steps": [h["step"] for h in history],
            "express": any(h["express"] for h in history), "receipts": receipts}


def _regulator_view(client: Callable, head: int) -> dict:
    regulator = client("regulator", "regulator")
    deadline = time.monotonic() + 30
    status = {}
    while time.monotonic() < deadline:
        status = regulator.request("GET", "/audit/status").json()
        if status.get("as_of_block", -1) >= head:
            break
        time.sleep(0.2)
    denials = regulator.request("GET", "/audit/logs", params={"outcome": "denial", "limit": 100}).json()
    anomalies = regulator.request("GET", "/audit/anomalies").json()
    check = regulator.request("GET", "/audit/verify", params={"from_block": 0}).json()
    return {"as_of_block": status.get("as_of_block"), "access_events": status.get("access_events"),
            "denial_events": status.get("denial_events"), "denials_listed": denials.get("count"),
            "anomalies": anomalies, "index_matches_chain": check}


def _print_evidence_and_regulator(console: Console, evidence: dict, regulator: dict) -> None:
    t = Table(title=f"Claim {evidence['claim_id']}: evidence and lifecycle")
    t.add_column("check")
    t.add_column("result", justify="right")
    for key in ("documents", "anchored", "anchor_block", "auditor_valid", "tampered_rejected", "tampered_reason", "express"):
        t.add_row(key, str(evidence[key]))
    t.add_row("steps on chain", " → ".join(evidence["claim_steps"]))
    console.print(t)
    r = Table(title="The regulator's indexed view")
    r.add_column("what")
    r.add_column("value", justify="right")
    for key in ("as_of_block", "access_events", "denial_events", "denials_listed"):
        r.add_row(key, str(regulator[key]))
    anomalies = regulator["anomalies"]
    items = anomalies.get("anomalies", anomalies.get("items", [])) if isinstance(anomalies, dict) else anomalies
    r.add_row("anomalies flagged", str(len(items)) if isinstance(items, list) else str(items))
    check = regulator["index_matches_chain"]
    r.add_row("index matches chain", str(check.get("ok", check.get("matches", check)) if isinstance(check, dict) else check))
    console.print(r)


# ------------------------------------------------------------------------------------------- settlement


def _settlement(step: Callable, ask: Callable, dev: Any, keys: dict) -> dict:
    """shop-platform sells a certificate for its user features; insurer-east buys and uses it; the period is settled.

    Every step is the project's own: DataMarket and Settlement through each member's Ledger, the statement
    computed from the chain by each party's SettlementBook (metered from the access records shop-platform's
    node logged), money off chain with only its reference on chain.
    """
    from node.settlement.book import SettlementBook
    from node.settlement.formula import Figure, Formula, Source

    seller, buyer = dev.ledgers["shop-platform"], dev.ledgers["insurer-east"]
    platform, east = keys["shop-platform"].address, keys["insurer-east"].address
    prices = {"period_fee": 50_000, "per_access_price": 1_000, "per_row_price": 1}  # fen
    offer_id = step("shop-platform publishes an offer: its user features for PRICING, 30 days, "
                    "500.00 a period + 10.00 an access + 0.01 a row",
                    lambda: seller.publish_offer(dataset_id("user_features"), Purpose.PRICING, term=30 * 86400, **prices,
                                                 consent_ref=hashlib.sha256(b"platform user terms 2026, pricing use").digest()))
    # a 3% commission on the premium the platform's channel brought, and 10% of it shared by traffic (one provider here)
    formula = Formula(300, 1000, 10_000, 0, 0, Source.ACCESSES)
    period_seconds = 3600
    start = dev.gateway.block_time()

    def agree() -> int:
        aid = buyer.propose_agreement(east, [platform], formula, period_start=start, period_seconds=period_seconds,
                                      dispute_window=3600)
        seller.accept_agreement(aid)
        return aid

    agreement_id = step("insurer-east (payer) proposes a revenue-share agreement with shop-platform (provider), "
                        "hourly periods; shop-platform accepts", agree)
    bought = step("insurer-east buys the offer: a certificate, and the grant it creates on chain",
                  lambda: buyer.buy_offer(offer_id))
    served = 0
    for i in range(3):
        r = step(f"insurer-east asks shop-platform's node for user counts by age band under the certificate ({i + 1}/3)",
                 lambda: ask("insurer-east", "shop-platform", "user_features", "PRICING", metric="count", group_by="age_band"))
        served += r.status_code == 200

    def metered() -> list[dict]:
        deadline = time.monotonic() + 30
        while True:
            records = [e for e in dev.gateway.events("DataUseAuthorization", "AccessRecorded",
                                                     from_block=dev.deployment.deployment_block)
                       if e["args"]["grantId"] == bought["grant_id"]]
            if len(records) >= served or time.monotonic() > deadline:
                return records
            time.sleep(0.2)

    records = step("Wait until shop-platform's node has logged each use on chain (no transaction of insurer-east's)", metered)
    premium = 2_000_000  # 20,000.00 of premium sold through the platform's channel this period
    step("insurer-east declares the premium sold through shop-platform's channel this period (20,000.00)",
         lambda: buyer.declare_figure(agreement_id, 0, platform, Figure.PREMIUM, premium,
                                      hashlib.sha256(b"channel premium report 2026-12, period 0").digest()))

    def end_period() -> None:  # the demo's chain is anvil: move its clock past the period's end
        dev.gateway.w3.provider.make_request("evm_increaseTime", [period_seconds])
        dev.gateway.w3.provider.make_request("evm_mine", [])

    step("One hour passes on the chain: period 0 ends", end_period)
    from_block = dev.deployment.deployment_block
    issued = step("shop-platform computes period 0's statement from the chain (metered accesses, declared figures) "
                  "and issues it", lambda: SettlementBook(seller, from_block=from_block).issue(agreement_id, 0))
    step("insurer-east and shop-platform each reproduce the statement and confirm it",
         lambda: [SettlementBook(ledger, from_block=from_block).confirm(agreement_id, 0) for ledger in (buyer, seller)])
    reference = "BANK-TRANSFER-20261203-0107"
    step("insurer-east pays off chain and records the payment's reference; shop-platform confirms receipt",
         lambda: (buyer.record_payment(agreement_id, 0, platform, hashlib.sha256(reference.encode()).digest()),
                  seller.confirm_payment(agreement_id, 0)))
    on_chain = buyer.get_statement(agreement_id, 0)
    usage = issued.inputs.certificates[0] if issued.inputs.certificates else None
    return {"offer_id": offer_id, "certificate_id": bought["certificate_id"], "grant_id": bought["grant_id"],
            "certificate_valid": buyer.certificate_valid(bought["certificate_id"]), "agreement_id": agreement_id,
            "prices": prices, "formula": {"base_commission_bps": formula.base_commission_bps,
                                          "data_value_share_bps": formula.data_value_share_bps},
            "premium": premium, "served": served, "access_records": len(records),
            "rows_recorded": sum(e["args"]["rows"] for e in records),
            "metered_accesses": usage.accesses if usage else 0, "metered_rows": usage.rows if usage else 0,
            "lines": issued.document()["lines"], "amount": sum(issued.amounts), "on_chain_total": on_chain["total"],
            "inputs_hash_matches": on_chain["inputs_hash"] == issued.inputs_hash, "state": on_chain["state"],
            "payment": ("none", "recorded", "received")[buyer.payment_state(agreement_id, 0, platform)]}


def _print_settlement(console: Console, s: dict) -> None:
    t = Table(title=f"Settlement: agreement {s['agreement_id']} period 0 (insurer-east pays shop-platform)")
    for col in ("certificate", "metered accesses", "metered rows", "amount (fen)", "state", "payment"):
        t.add_column(col, justify="right")
    t.add_row(str(s["certificate_id"]), str(s["metered_accesses"]), str(s["metered_rows"]), f"{s['amount']:,}", s["state"],
              s["payment"])
    console.print(t)


# ------------------------------------------------------------------------------------------- pools


def _pools(step: Callable, client: Callable, dev: Any, keys: dict, evidence: dict, home: Path) -> dict:
    """A risk pool between the insurers takes the demo claim's loss; a mutual-aid plan apportions its payout.

    Both contracts accept the claim only because the chain shows its evidence anchored and its lifecycle at
    APPROVED/PAID (the claim-evidence steps above). Shares come from the contract (risk pool) and from
    node.pools.mutual_aid (mutual aid), never from here.
    """
    import random

    from eth_account import Account

    from node.chain.errors import ContractRevert
    from node.evidence.leaf import claim_id_hash
    from node.pools.mutual_aid import (
        RULES,
        Participant,
        ShareVerificationError,
        build_apportionment,
        check_published_shares,
        verify_participant,
        write_apportionment,
    )
    from node.pools.refs import payment_ref, pool_id

    east, west = dev.ledgers["insurer-east"], dev.ledgers["insurer-west"]
    proofs = client("insurer-east", "insurer-east").request("GET", f"/evidence/proofs/{evidence['claim_id']}").json()
    anchored = [p for p in proofs.get("proofs", []) if p.get("state") == "ANCHORED"]
    if not evidence["anchored"] or not anchored:
        return {"skipped": "claim evidence not anchored"}
    root = bytes.fromhex(anchored[0]["proof"]["root"])  # the batch root the chain holds for insurer-east
    claim_hash = claim_id_hash(evidence["claim_id"])
    loss_amount = 86_000  # the claim's 860.00 payout, in fen
    pid = pool_id("demo-claims-pool-2026")
    weights = [70, 30]

    def open_pool() -> dict:
        east.open_pool(pid, [keys["insurer-east"].address, keys["insurer-west"].address], weights, 10_000_000, 30 * 86400)
        west.join_pool(pid)
        return east.get_pool(pid)

    pool = step("insurer-east opens a risk pool with insurer-west at 70:30 (cap 100,000.00 a month); insurer-west joins",
                open_pool)
    loss = step(f"insurer-east reports claim {evidence['claim_id']}'s loss (860.00): the contract checks the anchored evidence "
                "and the PAID step, and splits it", lambda: east.report_loss(pid, claim_hash, loss_amount, root))
    west_addr = keys["insurer-west"].address
    step("insurer-west pays its share off chain and records the reference; insurer-east confirms receipt",
         lambda: (west.record_contribution(loss["loss_id"], payment_ref("BANK-TRX-20261203-POOL-01")),
                  east.confirm_contribution(loss["loss_id"], west_addr)))
    shares = {name: east.loss_share(loss["loss_id"], keys[name].address) for name in ("insurer-east", "insurer-west")}

    rng = random.Random(2026)
    participants = [Participant(f"MA-{i:05d}", rng.randint(1, 5)) for i in range(1000)]
    claimant = Account.create().address  # the claimant is no member: the payout goes to its own account

    def anchor(claim: bytes, evidence_root: bytes, a) -> bytes:
        return east.anchor_apportionment(claim, evidence_root, a.payout, a.tree.size, RULES["pro_rata"], a.tree.root_hash,
                                         hashlib.sha256(a.share_list()).digest(), claimant)

    def paid_twice() -> str:
        try:
            anchor(claim_hash, root, build_apportionment(participants, loss_amount, "pro_rata"))
        except ContractRevert as exc:
            return exc.name
        return "accepted"

    double = step(f"insurer-east tries to have claim {evidence['claim_id']} paid again, by mutual aid: refused (one claim, "
                  "one payout scheme)", paid_twice)
    aid_claim, aid_root = step("insurer-east takes a second claim through its evidence and lifecycle to APPROVED, for the "
                               "mutual-aid plan", lambda: _approved_claim(client, "CLM-2026-11-0002", 1250.0))
    if aid_root is None:
        return {"skipped": "the second claim's evidence was not anchored"}
    payout = 125_000  # the second claim's 1,250.00 payout, in fen
    apportionment = step("Mutual aid: insurer-east apportions that claim's payout pro rata across 1,000 plan participants",
                         lambda: build_apportionment(participants, payout, "pro_rata"))
    key = step("insurer-east anchors the apportionment (share root, total, count, hash of the published share list)",
               lambda: anchor(claim_id_hash(aid_claim), aid_root, apportionment))
    folder = home / "nodes" / "insurer-east" / "mutual-aid" / aid_claim
    write_apportionment(folder, apportionment, key)
    on_chain = east.get_apportionment(key)
    published = step("Anyone checks the published share list against the chain (sum and root)",
                     lambda: check_published_shares(folder / "shares.csv", on_chain))
    index = 417
    member_id = participants[index].participant_id
    line = apportionment.proof_line(index)
    verified = step(f"Participant {member_id} verifies its share with its proof line against the chain",
                    lambda: verify_participant(line, member_id, on_chain))
    tampered_line = {**line, "proof": {**line["proof"], "share": str(int(line["proof"]["share"]) + 100)}}

    def tampered() -> str:
        try:
            verify_participant(tampered_line, member_id, on_chain)
        except ShareVerificationError as exc:
            return exc.reason
        return "accepted"

    refused = step(f"The same proof with {member_id}'s share raised by 1.00: refused", tampered)
    return {"pool": {"weights": weights, "members": ["insurer-east", "insurer-west"], "active": pool["active"],
                     "loss": loss_amount, "shared": loss["shared"], "period": loss["period"],
                     "shares": {n: a for n, (a, _) in shares.items()},
                     "payments": {n: ("NONE", "OWED", "RECORDED", "CONFIRMED")[s] for n, (_, s) in shares.items()}},
            "double_payout": double,
            "mutual_aid": {"claim_id": aid_claim, "participants": on_chain["participants"], "payout": on_chain["payout"],
                           "weights": [p.weight for p in participants], "shares_sum": sum(apportionment.shares),
                           "list_check": published, "participant": member_id, "participant_share": int(verified["share"]),
                           "participant_valid": verified["valid"], "tampered_refused": refused != "accepted",
                           "tampered_reason": refused}}


def _approved_claim(client: Callable, claim: str, amount: float) -> tuple[str, bytes | None]:
    """A claim reported, its record hashed and anchored, assessed and approved through insurer-east's node.

    Returns the claim id and the anchored batch root (None if the batch was not anchored in time).
    """
    east = client("insurer-east", "insurer-east")

    def post(path: str, body: dict) -> None:
        answer = east.request("POST", path, body)
        if answer.status_code != 200:
            raise ConsortiumError(f"claim {claim}: {path} refused ({answer.status_code}: {answer.text[:200]})",
                                  reason="demo_step_failed")

    post(f"/evidence/claims/{claim}/steps", {"step": "reported"})
    post("/evidence/hashes", {"sha256": hashlib.sha256(f"medical record of {claim}".encode()).hexdigest(), "claim_id": claim,
                              "doc_type": "medical_record"})
    for body in ({"step": "materials-complete"},
                 {"step": "assessed", "amount": amount, "express_threshold": 2000.0, "materials_complete": True,
                  "liability_clear": True}, {"step": "approved"}):
        post(f"/evidence/claims/{claim}/steps", body)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        proofs = east.request("GET", f"/evidence/proofs/{claim}").json().get("proofs", [])
        if proofs and all(p["state"] == "ANCHORED" for p in proofs):
            return claim, bytes.fromhex(proofs[0]["proof"]["root"])
        time.sleep(0.2)
    return claim, None


def _print_pools(console: Console, p: dict) -> None:
    if "skipped" in p:
        console.print(f"[yellow]pools skipped: {p['skipped']}[/yellow]")
        return
    pool, aid = p["pool"], p["mutual_aid"]
    t = Table(title=f"Risk pool 70:30: loss {pool['loss']:,} fen, {pool['shared']:,} shared in period {pool['period']}")
    for col in ("member", "weight", "share (fen)", "payment"):
        t.add_column(col, justify="right")
    for i, (name, weight) in enumerate(zip(pool["members"], pool["weights"])):  # the first is the insurer: its own share
        t.add_row(name, str(weight), f"{pool['shares'][name]:,}", "borne itself" if i == 0 else pool["payments"][name])
    console.print(t)
    console.print(f"The same claim paid again by mutual aid: {p['double_payout']}")
    m = Table(title=f"Mutual aid: claim {aid['claim_id']}'s payout apportioned")
    m.add_column("check")
    m.add_column("result", justify="right")
    for key in ("participants", "payout", "shares_sum", "participant", "participant_share", "participant_valid",
                "tampered_refused", "tampered_reason"):
        m.add_row(key, str(aid[key]))
    console.print(m)
