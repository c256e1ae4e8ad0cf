"""Joint statistics end to end: real node processes on a real anvil, every member's endpoint behind a
recording proxy, so the tests see the very bytes exchanged between nodes.

Results are compared with the plaintext computation over the same generated data (only the test holds
every member's data); refusals, a killed participant and the re-run are checked on the job and on chain.
"""
from __future__ import annotations

import http.server
import re
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta
from decimal import Decimal

import httpx
import pytest
from nodes import TEST_PASSPHRASE, start_node

from node.chain.anvil import free_port
from node.chain.deployment import GenesisMember, Purpose, Role, deploy_consortium
from node.chain.gateway import ChainGateway
from node.chain.ledger import Ledger, dataset_id
from node.client import NodeClient
from node.keys import create_member_keys
from node.sample_data import AGE_BANDS, CHANNELS, generate, write_member_csvs
from node.stats.spec import spec_hash
from node.store.datasets import import_csv, init_datasets
from node.store.db import create_store_engine

ROLES = {"insurer_a": Role.INSURER, "insurer_b": Role.INSURER, "insurer_c": Role.INSURER, "platform": Role.PLATFORM,
         "regulator": Role.REGULATOR}
STATUSES = ("paid", "open", "rejected")


class RecordingProxy:
    """Forwards every request to one node and keeps (path, request body, response body)."""

    def __init__(self, target: str):
        self.target = target
        self.captured: list[tuple[str, bytes, bytes]] = []
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length", "connection")}
                try:
                    r = httpx.post(proxy.target + self.path, content=body, headers=headers, timeout=120)
                    status, content, ctype = r.status_code, r.content, r.headers.get("content-type", "application/json")
                except httpx.HTTPError:
                    status, content, ctype = 502, b'{"detail": {"reason": "unreachable", "message": "proxy"}}', "application/json"
                proxy.captured.append((self.path, body, content))
                self.send_response(status)
                self.send_header("content-type", ctype)
                self.send_header("content-length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()


class StatsNetwork:
    def __init__(self, anvil, artifacts, base):
        self.gateway = ChainGateway.connect(anvil.url, artifacts)
        # deadlines follow the chain's clock, which other tests of the session move ahead of this machine's
        self.gateway.w3.provider.make_request("evm_increaseTime", [6 * 3600])
        self.gateway.w3.provider.make_request("evm_mine", [])
        # every node keeps the default release floor k = 10 distinct persons per owner and bucket
        self.world = generate(seed=5, people=1500, insurers=("insurer_a", "insurer_b", "insurer_c"))
        self.keys = {n: create_member_keys(base / "keys" / n, TEST_PASSPHRASE, scrypt_n=2**10) for n in ROLES}
        ports = {n: free_port() for n in ROLES}
        self.proxies = {n: RecordingProxy(f"http://127.0.0.1:{ports[n]}") for n in ROLES}
        from eth_account import Account

        deployer = Account.create()
        for account in [deployer, *(k.account for k in self.keys.values())]:
            self.gateway.fund(account.address)
        deployment = deploy_consortium(self.gateway, deployer, [GenesisMember(self.keys[n].address, n, r, self.proxies[n].url)
                                                                for n, r in ROLES.items()])
        dep_path = deployment.save(base / "deployment.json")
        self.ledgers = {n: Ledger(self.gateway, k.account) for n, k in self.keys.items()}
        for name in ROLES:
            rows: dict = {}
            if name.startswith("insurer"):
                d = self.world.insurers[name]
                rows = {"policies": d.policies, "claims": d.claims, "fraud_list": d.fraud_list}
            elif name == "platform":
                rows = {"user_features": self.world.user_features}
            engine = create_store_engine(f"sqlite:///{(base / name / 'node.db').resolve()}")
            init_datasets(engine)
            for dataset, path in write_member_csvs(base / name / "import", rows).items():
                import_csv(engine, dataset, path)
            engine.dispose()

        def start(name):
            return name, start_node(base / name, name, base / "keys" / name, anvil.url, dep_path, port=ports[name],
                                    log_flush_seconds=0.2)

        self.start = start
        with ThreadPoolExecutor(len(ROLES)) as pool:
            self.nodes = dict(pool.map(start, ROLES))

    def address(self, name: str) -> str:
        return self.keys[name].address

    def operator(self, name: str) -> NodeClient:
        return NodeClient(self.nodes[name].url, self.keys[name].account, self.address(name), self.gateway.chain_id)

    def now(self) -> int:
        return self.gateway.w3.eth.get_block("latest")["timestamp"]

    def grant(self, owner: str, grantee: str, dataset: str, purpose: Purpose) -> int:
        return self.ledgers[owner].grant(self.address(grantee), dataset_id(dataset), purpose, expires_at=self.now() + 3600)

    def run(self, requester: str, spec: dict, timeout: float = 90.0) -> dict:
        client = self.operator(requester)
        deadline = time.monotonic() + 120
        while True:  # the node's Paillier key is generated in the background on first start
            r = client.request("POST", "/stats/jobs", spec)
            if r.status_code != 503 or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert r.status_code == 202, r.text
        return self.wait(requester, r.json()["id"], timeout)

    def wait(self, requester: str, job_id: str, timeout: float = 90.0) -> dict:
        client = self.operator(requester)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = client.request("GET", f"/stats/jobs/{job_id}").json()
            if job["state"] in ("PUBLISHED", "FAILED"):
                return job
            time.sleep(0.3)
        raise AssertionError(f"job {job_id} still {job['state']} after {timeout} s: {job['progress']}")

    def stop(self) -> None:
        for node in self.nodes.values():
            node.stop()
        for proxy in self.proxies.values():
            proxy.stop()


@pytest.fixture(scope="module")
def net(anvil, artifacts, tmp_path_factory):
    network = StatsNetwork(anvil, artifacts, tmp_path_factory.mktemp("stats"))
    yield network
    network.stop()


def wait_event(net, contract: str, event: str, predicate, timeout: float = 15.0) -> list:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [e for e in net.gateway.events(contract, event) if predicate(e["args"])]
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"no matching {event} on chain within {timeout} s")


# --------------------------------------------------------------------------------------------- plaintext


def plain_horizontal(net, insurers, min_cohort) -> dict:
    out: dict[str, list] = defaultdict(lambda: [0, Decimal(0), Decimal(0)])
    for name in insurers:
        for c in net.world.insurers[name].claims:
            cents = Decimal(str(c["amount"]))
            entry = out[f"{c['age_band']}|{c['status']}"]
            entry[0] += 1
            entry[1] += cents
            entry[2] += cents * cents
    return dict(out)


def persons_per_owner(net, insurers) -> dict[str, dict[str, int]]:
    """Distinct persons per owner and bucket: what each owner's release gate counts against k."""
    out: dict[str, dict[str, set]] = {n: defaultdict(set) for n in insurers}
    for name in insurers:
        for c in net.world.insurers[name].claims:
            out[name][f"{c['age_band']}|{c['status']}"].add(c["person_id"])
    return {n: {b: len(p) for b, p in buckets.items()} for n, buckets in out.items()}


def releasable(net, insurers, k) -> set[str]:
    """Buckets every owner holds at least k distinct persons in (the only ones a horizontal job releases)."""
    per_owner = persons_per_owner(net, insurers)
    buckets = {b for o in per_owner.values() for b in o}
    return {b for b in buckets if all(per_owner[o].get(b, 0) >= k for o in insurers)}


HORIZONTAL = {"kind": "horizontal", "dataset": "claims", "purpose": "STATISTICS", "value": "amount", "min_cohort": 6,
              "group_by": [{"column": "age_band", "values": list(AGE_BANDS)}, {"column": "status", "values": list(STATUSES)}],
              "deadline_seconds": 60}


def check_horizontal(net, job, insurers):
    assert job["state"] == "PUBLISHED", job["error"]
    result, k = job["result"], job["result"]["min_cohort"]
    assert k == max(10, HORIZONTAL["min_cohort"]) and result["min_cohort_raised"]  # the owners' floor raised the job's 6
    plain = plain_horizontal(net, insurers, k)
    released = result["buckets"]
    allowed = releasable(net, insurers, k)
    assert released, "every bucket suppressed: the test data is too small"
    assert allowed != {b for b in plain}, "no bucket under k to suppress: the test proves nothing"
    for bucket in (f"{a}|{s}" for a in AGE_BANDS for s in STATUSES):
        count, total, squares = plain.get(bucket, [0, Decimal(0), Decimal(0)])
        if bucket not in allowed:  # some owner had fewer than k distinct persons: it zeroed and listed the bucket
            assert bucket not in released and bucket in result["suppressed"]
            continue
        got = released[bucket]
        assert got["count"] == count
        assert Decimal(str(got["sum"])).quantize(Decimal("0.01")) == total  # exact in cents
        assert got["mean"] == pytest.approx(float(total / count), rel=1e-12)
        assert got["variance"] == pytest.approx(float(squares / count - (total / count) ** 2), rel=1e-9)
    return plain


# --------------------------------------------------------------------------------------------- tests


def test_horizontal_job_equals_plaintext_suppresses_small_buckets_and_is_on_chain(net):
    for insurer in ("insurer_a", "insurer_b"):
        net.grant(insurer, "regulator", "claims", Purpose.STATISTICS)
    job = net.run("regulator", HORIZONTAL | {"participants": ["insurer_a", "insurer_b"]})
    check_horizontal(net, job, ("insurer_a", "insurer_b"))
    on_chain = net.ledgers["regulator"].get_job(job["chain_job_id"])
    assert on_chain["state"] == 2 and on_chain["result_hash"].hex() == job["result_hash"]
    assert on_chain["spec_hash"].hex() == job["spec_hash"]
    # each participant logged its access on chain with the spec hash as query hash and the records it released
    # (a suppressed bucket's size must not leak through the public access log)
    per_owner = persons_per_owner(net, ("insurer_a", "insurer_b"))
    for insurer in ("insurer_a", "insurer_b"):
        events = wait_event(net, "DataUseAuthorization", "AccessRecorded",
                            lambda a, i=insurer: a["owner"] == net.address(i) and a["queryHash"].hex() == job["spec_hash"])
        released = sum(n for n in per_owner[insurer].values() if n >= 10)  # one claim per person per insurer here
        assert events[0]["args"]["rows"] == released < len(net.world.insurers[insurer].claims)
    csv = net.operator("regulator").request("GET", f"/stats/jobs/{job['id']}/result.csv")
    assert csv.status_code == 200 and csv.text.splitlines()[0] == "bucket,count,sum,mean,variance,stddev"


def test_noisy_release_is_noised_and_charged_by_each_owner(net):
    for insurer in ("insurer_a", "insurer_b"):
        net.grant(insurer, "regulator", "claims", Purpose.STATISTICS)
    spec = HORIZONTAL | {"participants": ["insurer_a", "insurer_b"], "epsilon": 0.8, "value_bound": 20000,
                         "statistics": ["count", "sum"], "dataset": "claims"}
    job = net.run("regulator", spec)
    assert job["state"] == "PUBLISHED" and job["result"]["epsilon"] == 0.8, job["error"]
    assert job["result"]["noise"] == "laplace, added by each data owner"
    plain = plain_horizontal(net, ("insurer_a", "insurer_b"), 6)
    released = job["result"]["buckets"]
    allowed = releasable(net, ("insurer_a", "insurer_b"), 10)
    assert set(released) - {"(other)"} == allowed  # suppression decided by each owner on exact counts
    assert any(released[b]["count"] != plain[b][0] for b in allowed)  # noise was added
    # the budget is the owners' (1.0 per requester and dataset by default): 0.8 + 0.5 is refused by them
    again = net.run("regulator", spec | {"epsilon": 0.5})
    assert again["state"] == "FAILED" and again["error"]["reason"] == "budget_exhausted", again["error"]


def test_participant_without_grant_refuses_and_the_job_fails_with_that_reason(net):
    net.grant("insurer_a", "regulator", "claims", Purpose.STATISTICS)
    job = net.run("regulator", HORIZONTAL | {"participants": ["insurer_a", "insurer_c"]})
    assert job["state"] == "FAILED"
    assert job["error"]["reason"] == "no_grant" and job["error"]["missing"] == [net.address("insurer_c")]
    assert "insurer_c" in job["error"]["message"]
    wait_event(net, "DataUseAuthorization", "DenialRecorded",
               lambda a: a["owner"] == net.address("insurer_c") and a["requester"] == net.address("regulator"))


def test_a_non_operator_cannot_open_jobs_and_bad_specs_get_a_reason(net):
    r = NodeClient(net.nodes["regulator"].url, net.keys["insurer_a"].account, net.address("regulator"),
                   net.gateway.chain_id).request("POST", "/stats/jobs", HORIZONTAL | {"participants": ["insurer_a", "insurer_b"]})
    assert r.status_code == 403 and r.json()["detail"]["reason"] == "not_operator"
    client = net.operator("regulator")
    for spec, reason in [(HORIZONTAL | {"participants": ["insurer_a"]}, "bad_spec"),
                         (HORIZONTAL | {"participants": ["insurer_a", "nobody"]}, "unknown_member"),
                         (HORIZONTAL | {"participants": ["insurer_a", "insurer_b"], "dataset": "nope"}, "bad_spec"),
                         (HORIZONTAL | {"participants": ["insurer_a", "insurer_b"], "value": "status"}, "bad_spec")]:
        r = client.request("POST", "/stats/jobs", spec)
        assert r.status_code == 422 and r.json()["detail"]["reason"] == reason, r.text


def test_a_replayed_job_spec_from_another_member_is_refused_by_the_participant(net):
    # insurer_b replays the regulator's job (spec and chain id) to insurer_a: the chain names another requester
    job = next(j for j in net.operator("regulator").request("GET", "/stats/jobs").json()
               if j["kind"] == "horizontal" and j["state"] == "PUBLISHED")
    forged = NodeClient(net.nodes["insurer_a"].url, net.keys["insurer_b"].account, net.address("insurer_a"), net.gateway.chain_id)
    r = forged.request("POST", "/stats/contribute", {"chain_job_id": job["chain_job_id"], "spec": job["spec"]})
    assert r.status_code == 403 and r.json()["detail"]["reason"] == "not_requester"
    r = forged.request("POST", "/stats/contribute", {"chain_job_id": job["chain_job_id"], "spec": job["spec"] | {"dataset": "nope"}})
    assert r.status_code == 422
    r = forged.request("POST", "/stats/contribute", {"chain_job_id": 10_000, "spec": job["spec"]})
    assert r.status_code == 404 and r.json()["detail"]["reason"] == "UnknownJob"


def test_a_retried_contribution_request_gets_the_stored_answer_and_one_commitment(net):
    import json
    import sqlite3


    # act as the regulator's node: reuse the public spec of one of its jobs (with its registered key) for a new job
    conn = sqlite3.connect(net.nodes["regulator"].home / "node.db")
    (raw,) = conn.execute("SELECT public_spec FROM stats_jobs WHERE kind = 'horizontal' AND state = 'PUBLISHED' LIMIT 1").fetchone()
    conn.close()
    public = json.loads(raw) | {"job_id": "retried-request-test", "round": 0}
    for insurer in ("insurer_a", "insurer_b"):
        net.grant(insurer, "regulator", "claims", Purpose.STATISTICS)
    chain_job_id = net.ledgers["regulator"].open_job(bytes.fromhex(spec_hash(public)), public["participants"],
                                                     bytes.fromhex(public["public_key"]["fingerprint"]), public["min_cohort"],
                                                     net.now() + 120)
    client = NodeClient(net.nodes["insurer_a"].url, net.keys["regulator"].account, net.address("insurer_a"), net.gateway.chain_id)
    first = client.request("POST", "/stats/contribute", {"chain_job_id": chain_job_id, "spec": public})
    second = client.request("POST", "/stats/contribute", {"chain_job_id": chain_job_id, "spec": public})
    assert first.status_code == second.status_code == 200, first.text
    assert first.json() == second.json()
    commits = net.gateway.events("StatsLedger", "ContributionCommitted", filters={"jobId": chain_job_id})
    assert [e["args"]["ciphertextHash"].hex() for e in commits] == [first.json()["commitment"]]
    tampered = public | {"min_cohort": public["min_cohort"] + 1}
    r = client.request("POST", "/stats/contribute", {"chain_job_id": chain_job_id, "spec": tampered})
    assert r.status_code == 409 and r.json()["detail"]["reason"] == "spec_mismatch"


def test_vertical_job_equals_plaintext_join(net):
    net.grant("platform", "insurer_a", "user_features", Purpose.STATISTICS)
    spec = {"kind": "vertical", "platform": "platform", "purpose": "STATISTICS", "min_cohort": 5, "deadline_seconds": 60,
            "group_by": [{"column": "age_band", "values": list(AGE_BANDS)}, {"column": "channel", "values": list(CHANNELS)}]}
    job = net.run("insurer_a", spec)
    assert job["state"] == "PUBLISHED", job["error"]
    data = net.world.insurers["insurer_a"]
    totals: dict[str, Decimal] = defaultdict(Decimal)
    for c in data.claims:
        totals[c["person_id"]] += Decimal(str(c["amount"]))
    persons = {p["person_id"] for p in data.policies} | set(totals)
    plain: dict[str, list] = defaultdict(lambda: [0, 0, Decimal(0)])
    for f in net.world.user_features:
        if f["person_id"] in persons:
            e = plain[f"{f['age_band']}|{f['channel']}"]
            e[0] += 1
            e[1] += f["person_id"] in totals
            e[2] += totals.get(f["person_id"], Decimal(0))
    result = job["result"]
    assert result["buckets"] and result["min_cohort"] == 10 and result["min_cohort_raised"]
    assert result["semantics"]["claim_rate"] == "claimants / persons"
    for bucket in (f"{a}|{c}" for a in AGE_BANDS for c in CHANNELS):
        count, claimants, amount = plain.get(bucket, [0, 0, Decimal(0)])
        if count < result["min_cohort"]:
            assert bucket not in result["buckets"]
            continue
        got = result["buckets"][bucket]
        assert (got["persons"], got["claimants"]) == (count, claimants)
        assert Decimal(str(got["claim_amount"])).quantize(Decimal("0.01")) == amount
        assert got["claim_rate"] == pytest.approx(claimants / count)
    # the platform committed the hash of its bucket sums and logged the access on chain
    wait_event(net, "DataUseAuthorization", "AccessRecorded",
               lambda a: a["owner"] == net.address("platform") and a["queryHash"].hex() == job["spec_hash"])
    assert net.ledgers["insurer_a"].get_job(job["chain_job_id"])["state"] == 2


def test_vertical_with_epsilon_gets_the_platforms_encrypted_noise_and_charges_the_budget(net):
    net.grant("platform", "insurer_a", "user_features", Purpose.STATISTICS)
    spec = {"kind": "vertical", "platform": "platform", "min_cohort": 5, "deadline_seconds": 60, "epsilon": 1.0,
            "value_bound": 10000, "group_by": [{"column": "age_band", "values": list(AGE_BANDS)}]}
    job = net.run("insurer_a", spec)
    assert job["state"] == "PUBLISHED", job["error"]
    assert job["result"]["epsilon"] == 1.0
    assert job["spec"]["epsilon"] == 1.0  # on chain (in the spec hash): the platform knows it must add noise
    data = net.world.insurers["insurer_a"]
    persons = {p["person_id"] for p in data.policies} | {c["person_id"] for c in data.claims}
    exact = defaultdict(int)
    for f in net.world.user_features:
        exact[f["age_band"]] += f["person_id"] in persons
    released = job["result"]["buckets"]
    assert released and any(released[b]["persons"] != exact[b] for b in released)  # all 5 unchanged: p ~ 1e-4
    again = net.run("insurer_a", spec | {"epsilon": 0.5})  # the platform keeps the budget: 1.0 + 0.5 > 1.0
    assert again["state"] == "FAILED" and again["error"]["reason"] == "budget_exhausted", again["error"]


def test_vertical_without_the_platforms_grant_fails_with_its_reason(net):
    spec = {"kind": "vertical", "platform": "platform", "min_cohort": 5, "deadline_seconds": 30,
            "group_by": [{"column": "age_band", "values": list(AGE_BANDS)}]}
    job = net.run("insurer_b", spec)
    assert job["state"] == "FAILED" and job["error"]["reason"] == "no_grant"


def test_fraud_signals_count_members_and_need_a_fraud_grant(net):
    a, c = net.world.insurers["insurer_a"], net.world.insurers["insurer_c"]
    listed_a = {f["person_id"] for f in a.fraud_list}
    listed_c = {f["person_id"] for f in c.fraud_list}
    persons = sorted(listed_a)[:3] + sorted(listed_c)[:3] + ["p999999", sorted(set(net.world.people) - listed_a - listed_c)[0]]
    net.grant("insurer_a", "insurer_b", "fraud_list", Purpose.FRAUD)
    spec = {"kind": "fraud", "check": "fraud_list", "participants": ["insurer_a", "insurer_c"], "persons": persons,
            "deadline_seconds": 30}
    refused = net.run("insurer_b", spec)  # insurer_c has granted nothing yet
    assert refused["state"] == "FAILED" and refused["error"]["reason"] == "no_grant"
    net.grant("insurer_c", "insurer_b", "fraud_list", Purpose.FRAUD)
    job = net.run("insurer_b", spec)
    assert job["state"] == "PUBLISHED", job["error"]
    expected = {p: (p in listed_a) + (p in listed_c) for p in persons}
    assert job["result"]["persons"] == expected

    # "claims at other insurers in the last N days", as of a fixed date
    as_of, days = date(2026, 8, 1), 60
    for owner in ("insurer_a", "insurer_c"):
        net.grant(owner, "insurer_b", "claims", Purpose.FRAUD)
    recent = {name: {cl["person_id"] for cl in net.world.insurers[name].claims
                     if as_of - timedelta(days=days) < date.fromisoformat(cl["claim_date"]) <= as_of}
              for name in ("insurer_a", "insurer_c")}
    persons = sorted(recent["insurer_a"])[:4] + sorted(recent["insurer_c"])[:4] + ["p000001", "p000002"]
    job = net.run("insurer_b", {"kind": "fraud", "check": "recent_claims", "days": days, "as_of": as_of.isoformat(),
                                "participants": ["insurer_a", "insurer_c"], "persons": persons, "deadline_seconds": 30})
    assert job["state"] == "PUBLISHED", job["error"]
    assert job["result"]["persons"] == {p: sum(p in recent[n] for n in recent) for p in dict.fromkeys(persons)}


def test_bytes_between_nodes_hold_no_person_id_or_raw_value(net):
    captured = [item for proxy in net.proxies.values() for item in proxy.captured]
    assert any(path.startswith("/stats/vertical/labels") for path, _, _ in captured), "no vertical exchange captured"
    assert any(path.startswith("/stats/contribute") for path, _, _ in captured)
    assert any(path.startswith("/stats/fraud") for path, _, _ in captured)
    ids = re.compile(rb"p\d{6}")
    amounts = {f"{c['amount']:.2f}".encode() for d in net.world.insurers.values() for c in d.claims if c["amount"] >= 100}
    amounts |= {repr(c["amount"]).encode() for d in net.world.insurers.values() for c in d.claims if c["amount"] >= 100}
    for path, request, response in captured:
        for body in (request, response):
            assert not ids.search(body), f"a person id crossed the wire on {path}"
            found = [a for a in amounts if a in body]
            assert not found, f"raw claim amounts {found[:3]} crossed the wire on {path}"


def test_a_job_survives_a_requester_restart(net):
    for insurer in ("insurer_a", "insurer_b"):
        net.grant(insurer, "regulator", "claims", Purpose.STATISTICS)
    net.nodes["insurer_b"].stop()  # insurer_b is away: the job waits for it
    client = net.operator("regulator")
    r = client.request("POST", "/stats/jobs", HORIZONTAL | {"participants": ["insurer_a", "insurer_b"], "deadline_seconds": 90})
    assert r.status_code == 202, r.text
    job_id = r.json()["id"]
    deadline = time.monotonic() + 30
    while client.request("GET", f"/stats/jobs/{job_id}").json()["progress"]["participants"].get(net.address("insurer_a")) != "contributed":
        assert time.monotonic() < deadline, "insurer_a never contributed"
        time.sleep(0.3)
    net.nodes["regulator"].stop()
    _, net.nodes["insurer_b"] = net.start("insurer_b")
    _, net.nodes["regulator"] = net.start("regulator")  # resumes the COLLECTING job from its store
    job = net.wait("regulator", job_id, timeout=60)
    check_horizontal(net, job, ("insurer_a", "insurer_b"))
    # insurer_a answered once: one commitment, one access logged for this job
    commits = [e for e in net.gateway.events("StatsLedger", "ContributionCommitted", filters={"jobId": job["chain_job_id"]})]
    assert sorted(e["args"]["participant"] for e in commits) == sorted([net.address("insurer_a"), net.address("insurer_b")])


def test_killed_participant_fails_the_job_at_the_deadline_and_a_rerun_without_it_succeeds(net):
    for insurer in ("insurer_a", "insurer_b", "insurer_c"):
        net.grant(insurer, "regulator", "claims", Purpose.STATISTICS)
    net.nodes["insurer_c"].kill9()
    started = time.monotonic()
    job = net.run("regulator", HORIZONTAL | {"participants": ["insurer_a", "insurer_b", "insurer_c"], "deadline_seconds": 15},
                  timeout=60)
    assert job["state"] == "FAILED" and job["error"]["reason"] == "deadline_missed"
    assert job["error"]["missing"] == [net.address("insurer_c")]
    assert time.monotonic() - started >= 12
    rerun = net.operator("regulator").request("POST", f"/stats/jobs/{job['id']}/rerun")
    assert rerun.status_code == 202, rerun.text
    assert rerun.json()["participants"] == sorted([net.address("insurer_a"), net.address("insurer_b")])
    done = net.wait("regulator", rerun.json()["id"])
    check_horizontal(net, done, ("insurer_a", "insurer_b"))
    assert done["rerun_of"] == job["id"] and done["spec"]["round"] == 1
    # the failed job is aborted on chain once its deadline has passed
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and net.ledgers["regulator"].get_job(job["chain_job_id"])["state"] != 3:
        time.sleep(0.5)
    assert net.ledgers["regulator"].get_job(job["chain_job_id"])["state"] == 3


def test_cli_runs_a_spec_file_and_shows_the_job(net, tmp_path):
    import json
    import os
    import subprocess
    import sys

    from nodes import ROOT

    spec = tmp_path / "claims.toml"
    spec.write_text('kind = "horizontal"\nname = "paid claims by age band"\ndataset = "claims"\nvalue = "amount"\n'
                    'participants = ["insurer_a", "insurer_b"]\nmin_cohort = 3\ndeadline_seconds = 60\n'
                    '[filters]\nstatus = "paid"\n[[group_by]]\ncolumn = "age_band"\nvalues = ["18-29", "30-39", "40-49", "50-59", "60+"]\n')
    for insurer in ("insurer_a", "insurer_b"):
        net.grant(insurer, "regulator", "claims", Purpose.STATISTICS)
    env = {**os.environ, "CONSORTIUM_PASSPHRASE": TEST_PASSPHRASE}
    config = str(net.nodes["regulator"].config)
    run = subprocess.run([sys.executable, "-m", "node.cli", "stats", "run", str(spec), "--config", config, "--json",
                          "--csv", str(tmp_path / "out.csv")], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    job = json.loads(run.stdout.strip().splitlines()[-1])
    assert job["state"] == "PUBLISHED"
    paid = [c for n in ("insurer_a", "insurer_b") for c in net.world.insurers[n].claims if c["status"] == "paid"]
    for band, stats in job["result"]["buckets"].items():
        if band == "(other)":  # the claims the filter keeps outside the declared bands: none here
            continue
        assert stats["count"] == sum(1 for c in paid if c["age_band"] == band)
    assert (tmp_path / "out.csv").read_text().startswith("bucket,count,sum,mean")
    show = subprocess.run([sys.executable, "-m", "node.cli", "stats", "show", job["id"], "--config", config], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=60)
    assert show.returncode == 0 and "PUBLISHED" in show.stdout and "18-29" in show.stdout, show.stdout + show.stderr
    bad = subprocess.run([sys.executable, "-m", "node.cli", "stats", "show", "nope", "--config", config], cwd=ROOT,
                         env=env, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1 and "no statistics job nope" in bad.stderr
