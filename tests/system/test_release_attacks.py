"""Every known attack on what leaves a data owner's node, one row each, against real node processes.

Issue 10's reproductions (and variants) run against three insurer nodes, a platform node and a
regulator node on a real anvil, with crafted data so every expected outcome is exact. Two members
have no node: ``mallory``, a malicious requester that opens jobs on StatsLedger itself and talks to
the participants directly with its own registered Paillier key; and ``evil``, a malicious participant
whose registered endpoint is a server in this test answering with forged contributions.

Each row asserts the attack is refused (with its reason, logged on chain as a denial) or suppressed
(listed as such), and every horizontal contribution the participants sent is unmasked here with the
test's copy of every key, to show no participant's answer carried a bucket under k distinct persons.
"""
from __future__ import annotations

import http.server
import json
import threading
import time
from collections import defaultdict
from pathlib import Path

import httpx
import pytest
from eth_account import Account
from nodes import TEST_PASSPHRASE, start_node
from test_stats_e2e import RecordingProxy

from node.chain.anvil import free_port
from node.chain.deployment import GenesisMember, Role, deploy_consortium
from node.chain.gateway import ChainGateway
from node.chain.ledger import Ledger
from node.chain.reasons import DenialReason
from node.client import NodeClient
from node.keys import create_member_keys
from node.paillier_store import load_or_create
from node.sample_data import write_member_csvs
from node.stats.spec import OVERFLOW, complete, horizontal_spec, parse_request, spec_hash
from node.store.datasets import import_csv, init_datasets
from node.store.db import create_store_engine
from privacy.aggregation import contribute
from privacy.masking import zero_sum_mask

NODES = {"insurer_a": Role.INSURER, "insurer_b": Role.INSURER, "insurer_c": Role.INSURER, "insurer_d": Role.INSURER,
         "platform": Role.PLATFORM, "regulator": Role.REGULATOR}
NODELESS = {"mallory": Role.INSURER, "evil": Role.INSURER}
K = 10  # every node runs with the default floor: release_min_cohort = 10


def crafted_claims(prefix: str) -> tuple[list[dict], list[dict]]:
    """Claims designed for the attacks: 60 single-claim persons aged 30-39 (amounts 100.01 .. 100.60, one per
    fine bin), 5 persons aged 60+ with 11 claims between them, 37 claims >= 5000, one claim on 2026-12-31."""
    claims, persons = [], []

    def claim(person: str, amount: float, day: str, band: str) -> None:
        claims.append({"claim_id": f"{prefix}-c{len(claims):04d}", "person_id": person, "policy_id": None, "amount": amount,
                       "claim_date": day, "status": "paid", "age_band": band, "region": "east"})
        persons.append(person)

    for i in range(60):
        claim(f"{prefix}-p{i:03d}", 100.01 + i / 100, f"2026-{1 + i % 11:02d}-{1 + i % 27:02d}", "30-39")
    for i in range(11):
        claim(f"{prefix}-h{i % 5}", 200.0, "2026-05-05", "60+")
    for i in range(37):
        claim(f"{prefix}-x{i:03d}", 5000.0 + 250 * i, "2026-06-06", "40-49")
    claim(f"{prefix}-last", 363.20, "2026-12-31", "50-59")
    policies = [{"policy_id": f"{prefix}-pol{i:04d}", "person_id": p, "product": "flight-delay", "premium": 20.0,
                 "start_date": "2026-01-01", "region": "east"} for i, p in enumerate(dict.fromkeys(persons))]
    return claims, policies


class AttackNetwork:
    def __init__(self, anvil, artifacts, base: Path):
        self.base = base
        self.gateway = ChainGateway.connect(anvil.url, artifacts)
        self.gateway.w3.provider.make_request("evm_increaseTime", [6 * 3600])
        self.gateway.w3.provider.make_request("evm_mine", [])
        names = {**NODES, **NODELESS}
        self.keys = {n: create_member_keys(base / "keys" / n, TEST_PASSPHRASE, scrypt_n=2**10) for n in names}
        ports = {n: free_port() for n in NODES}
        self.proxies = {n: RecordingProxy(f"http://127.0.0.1:{ports[n]}") for n in NODES}
        self.mallory_key = load_or_create(base / "mallory", TEST_PASSPHRASE)
        self.evil = EvilParticipant(self)
        deployer = Account.create()
        for account in [deployer, *(k.account for k in self.keys.values())]:
            self.gateway.fund(account.address)
        genesis = [GenesisMember(self.keys[n].address, n, r, self.proxies[n].url) for n, r in NODES.items()]
        genesis.append(GenesisMember(self.keys["mallory"].address, "mallory", Role.INSURER, "http://127.0.0.1:9",
                                     self.keys["mallory"].x25519_public, bytes.fromhex(self.mallory_key.public_key.fingerprint)))
        genesis.append(GenesisMember(self.keys["evil"].address, "evil", Role.INSURER, self.evil.url,
                                     self.keys["evil"].x25519_public, b"\x01" * 32))
        dep_path = deploy_consortium(self.gateway, deployer, genesis).save(base / "deployment.json")
        self.ledgers = {n: Ledger(self.gateway, self.keys[n].account) for n in NODELESS}
        self.claims: dict[str, list[dict]] = {}
        for name in NODES:
            rows: dict = {}
            if name.startswith("insurer"):
                claims, policies = crafted_claims(name)
                self.claims[name] = claims
                rows = {"claims": claims, "policies": [] if name == "insurer_d" else policies}
            elif name == "platform":
                persons = [c["person_id"] for n in ("insurer_a", "insurer_b") for c in crafted_claims(n)[0]]
                rows = {"user_features": [{"person_id": p, "age_band": "30-39", "channel": "app", "activity_segment": "mid"}
                                          for p in dict.fromkeys(persons)]}
            engine = create_store_engine(f"sqlite:///{(base / name / 'node.db').resolve()}")
            init_datasets(engine)
            for dataset, path in write_member_csvs(base / name / "import", rows).items():
                # insurer_d holds claims but no policies on purpose (the vertical job's empty_population row)
                import_csv(engine, dataset, path, allow_empty=True)
            engine.dispose()
        self.nodes = {}
        threads = [threading.Thread(target=self._start, args=(n, ports[n], dep_path, anvil.url)) for n in NODES]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert set(self.nodes) == set(NODES), "a node did not start"

    def _start(self, name, port, dep_path, rpc_url):
        self.nodes[name] = start_node(self.base / name, name, self.base / "keys" / name, rpc_url, dep_path, port=port,
                                      log_flush_seconds=0.2, timeout=240)

    def address(self, name: str) -> str:
        return self.keys[name].address

    def client(self, caller: str, target: str) -> NodeClient:
        return NodeClient(self.nodes[target].url, self.keys[caller].account, self.address(target), self.gateway.chain_id)

    def now(self) -> int:
        return self.gateway.w3.eth.get_block("latest")["timestamp"]

    def grant(self, owner: str, grantee: str, dataset: str, purpose: str) -> None:
        r = self.client(owner, owner).request("POST", "/grants", {"grantee": self.address(grantee), "dataset": dataset,
                                                                   "purpose": purpose, "expires_at": self.now() + 7200,
                                                                   "consent_ref": "0x" + "ab" * 32})
        assert r.status_code in (200, 201), r.text

    def run(self, requester: str, spec: dict, timeout: float = 90.0) -> dict:
        client = self.client(requester, requester)
        deadline = time.monotonic() + 120
        while True:
            r = client.request("POST", "/stats/jobs", spec)
            if r.status_code != 503 or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        if r.status_code != 202:
            return {"state": "REFUSED", "status": r.status_code, "error": r.json()["detail"]}
        job_id, end = r.json()["id"], time.monotonic() + timeout
        while time.monotonic() < end:
            job = client.request("GET", f"/stats/jobs/{job_id}").json()
            if job["state"] in ("PUBLISHED", "FAILED"):
                return job
            time.sleep(0.3)
        raise AssertionError(f"job {job_id} still running: {job['progress']}")

    def resolve(self, who: str) -> str:
        return self.address(who) if who in self.keys else who

    def mallory_job(self, spec: dict, participants: list[str], min_cohort: int = K) -> tuple[int, dict]:
        """Mallory opens a job on chain itself, naming whom it likes (its own node would refuse some of these)."""
        request = parse_request(spec | {"participants": ["insurer_a", "insurer_b"]}, self.resolve, self.address("mallory"))
        public = complete(request, self.address("mallory"), self.mallory_key.public_key)
        public |= {"participants": sorted(self.resolve(p) for p in participants), "min_cohort": min_cohort}
        chain_id = self.ledgers["mallory"].open_job(bytes.fromhex(spec_hash(public)), public["participants"],
                                                    bytes.fromhex(public["public_key"]["fingerprint"]), min_cohort,
                                                    self.now() + 600)
        return chain_id, public

    def mallory_asks(self, target: str, path: str, body: dict) -> httpx.Response:
        return self.client("mallory", target).request("POST", path, body)

    def denial(self, owner: str, requester: str, code: DenialReason, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(e["args"]["owner"] == self.address(owner) and e["args"]["requester"] == self.address(requester)
                   and e["args"]["reasonCode"] == int(code) for e in self.gateway.events("DataUseAuthorization", "DenialRecorded")):
                return
            time.sleep(0.3)
        raise AssertionError(f"no {code.name} denial by {owner} for {requester} on chain")

    def stop(self) -> None:
        for node in self.nodes.values():
            node.stop()
        for proxy in self.proxies.values():
            proxy.stop()
        self.evil.stop()


class EvilParticipant:
    """A member that answers horizontal jobs with a forged vector (committed on chain, so it passes the checks)."""

    def __init__(self, net: AttackNetwork):
        self.net = net
        self.forge = lambda vector: vector
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's naming
                body = json.loads(self.rfile.read(int(self.headers.get("content-length") or 0)))
                payload = json.dumps(outer.answer(body)).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def answer(self, body: dict) -> dict:
        from privacy.paillier import PublicKey

        net, public = self.net, body["spec"]
        spec = horizontal_spec(public)
        me = net.address("evil")
        peers = {p: net.ledgers["evil"].member(p).x25519_key for p in spec.participants if p != me}
        vector = self.forge([0] * (len(spec.buckets) * len(spec.statistics)))
        c = contribute(spec, me, net.keys["evil"].x25519, peers, PublicKey.from_dict(public["public_key"]), vector=vector)
        net.ledgers["evil"].commit_contribution(body["chain_job_id"], bytes.fromhex(c.commitment))
        return {"contribution": c.to_dict(), "commitment": c.commitment,
                "release": {"min_cohort": K, "suppressed": [], "records": 100}}

    def stop(self) -> None:
        self.server.shutdown()


@pytest.fixture(scope="module")
def net(anvil, artifacts, tmp_path_factory):
    network = AttackNetwork(anvil, artifacts, tmp_path_factory.mktemp("attacks"))
    for owner in ("insurer_a", "insurer_b", "insurer_c", "insurer_d"):
        for grantee in ("regulator", "mallory", "platform"):
            network.grant(owner, grantee, "claims", "STATISTICS")
    network.grant("platform", "insurer_d", "user_features", "STATISTICS")
    network.grant("platform", "insurer_a", "user_features", "STATISTICS")
    network.grant("platform", "mallory", "user_features", "STATISTICS")
    yield network
    network.stop()


def refusal(r: httpx.Response) -> tuple[int, str]:
    return r.status_code, r.json().get("detail", {}).get("reason")


FINE_EDGES = [round(100.005 + i / 100, 3) for i in range(61)]  # one 30-39 claim per bin
CLAIMS_ALL = {"kind": "horizontal", "dataset": "claims", "value": "amount", "statistics": ["count", "sum"],
              "deadline_seconds": 60}

# ------------------------------------------------------------------------------------------ 1. direct query

QUERY_ATTACKS = [
    # (what, query, expected status, expected reason)
    ("group by person id", {"metric": "sum", "column": "amount", "group_by": "person_id"}, 403, "identifier_column"),
    ("group by claim id", {"metric": "sum", "column": "amount", "group_by": "claim_id"}, 403, "identifier_column"),
    ("filter to one person", {"metric": "sum", "column": "amount", "filters": {"person_id": "insurer_a-p001"}}, 403,
     "identifier_column"),
    ("filter to one policy", {"filters": {"policy_id": "insurer_a-pol0001"}}, 403, "identifier_column"),
    ("filter value typo", {"filters": {"status": "payed"}}, 422, "unknown_value"),
]


@pytest.mark.parametrize("what,query,status,reason", QUERY_ATTACKS, ids=[row[0] for row in QUERY_ATTACKS])
def test_direct_query_attack_is_refused_and_logged(net, what, query, status, reason):
    r = net.client("platform", "insurer_a").query("claims", "STATISTICS", **query)
    assert refusal(r) == (status, reason), r.text
    net.denial("insurer_a", "platform", DenialReason.SCOPE_EXCEEDED)


def test_direct_query_suppresses_groups_under_k_distinct_persons(net):
    r = net.client("platform", "insurer_a").query("claims", "STATISTICS", metric="sum", column="amount", group_by="age_band")
    assert r.status_code == 200, r.text
    body = r.json()
    # 60+ holds 11 claims from 5 persons, 50-59 one claim: both suppressed although 11 >= k claims
    assert body["min_cohort"] == K and set(body["suppressed"]) == {"60+", "50-59"}
    got = {row["group"]: (row["records"], row["value"]) for row in body["rows"]}
    plain = defaultdict(lambda: [0, 0.0])
    for c in net.claims["insurer_a"]:
        plain[c["age_band"]][0] += 1
        plain[c["age_band"]][1] += c["amount"]
    assert set(got) == {"30-39", "40-49"}
    for band, (records, value) in got.items():
        assert records == plain[band][0] and value == pytest.approx(plain[band][1])
    assert body["records"] == 60 + 37  # what the access log says: released records only


# ------------------------------------------------------------------------------------------ 2. who contributes


def test_requester_listing_itself_is_refused_by_the_other_participant(net):
    chain_id, public = net.mallory_job(CLAIMS_ALL | {"group_by": [{"column": "amount", "edges": FINE_EDGES}]},
                                       ["mallory", "insurer_a"])
    r = net.mallory_asks("insurer_a", "/stats/contribute", {"chain_job_id": chain_id, "spec": public})
    assert refusal(r) == (403, "requester_is_participant"), r.text
    net.denial("insurer_a", "mallory", DenialReason.TOO_FEW_CONTRIBUTORS)


@pytest.mark.parametrize("participants", [["insurer_a"], ["insurer_a", "mallory", "insurer_b"]])
def test_fewer_than_two_other_contributors_or_self_listed_is_refused(net, participants):
    chain_id, public = net.mallory_job(CLAIMS_ALL, participants)
    r = net.mallory_asks("insurer_a", "/stats/contribute", {"chain_job_id": chain_id, "spec": public})
    expected = "requester_is_participant" if "mallory" in participants else "too_few_contributors"
    assert refusal(r) == (403, expected), r.text


def test_fine_buckets_with_two_honest_contributors_release_nothing_under_k(net):
    """Mallory's fine histogram (one claim per bin) with two real contributors: every bin is suppressed by each
    owner before encryption, so even unmasked (below) the answers hold zeros only."""
    chain_id, public = net.mallory_job(CLAIMS_ALL | {"group_by": [{"column": "amount", "edges": FINE_EDGES}]},
                                       ["insurer_a", "insurer_b"], min_cohort=2)
    for owner in ("insurer_a", "insurer_b"):
        r = net.mallory_asks(owner, "/stats/contribute", {"chain_job_id": chain_id, "spec": public})
        assert r.status_code == 200, r.text
        release = r.json()["release"]
        assert release["min_cohort"] == K and release["min_cohort_raised"]  # the job's k = 2 was raised to the floor
        fine = [b for b in public["buckets"] if b != OVERFLOW]
        assert set(fine) <= set(release["suppressed"])
        assert unmasked(net, public, r.json()["contribution"], owner)[: len(fine) * 2] == [0] * (len(fine) * 2)


# ------------------------------------------------------------------------------------------ 3. differencing

DIFFERENCING = [
    ("N vs N-1: all of 2026, then without its last day",
     {"filters": {"claim_date": {"gte": "2026-01-01", "lt": "2027-01-01"}}},
     {"filters": {"claim_date": {"gte": "2026-01-01", "lt": "2026-12-31"}}}),
    ("adjacent windows", {"filters": {"claim_date": {"gte": "2026-06-01", "lt": "2026-12-31"}}},
     {"filters": {"claim_date": {"gte": "2026-06-01", "lte": "2026-12-31"}}}),
    ("moved bin edge", {"group_by": [{"column": "amount", "edges": [0, 100.305, 20000]}]},
     {"group_by": [{"column": "amount", "edges": [0, 100.315, 20000]}]}),
]


@pytest.mark.parametrize("what,first,second", DIFFERENCING, ids=[row[0] for row in DIFFERENCING])
def test_differencing_a_released_job_is_refused_by_the_owners(net, what, first, second):
    participants = {"participants": ["insurer_b", "insurer_c"]}
    job = net.run("regulator", CLAIMS_ALL | participants | first)
    assert job["state"] == "PUBLISHED", job["error"]
    again = net.run("regulator", CLAIMS_ALL | participants | second)
    assert again["state"] == "FAILED" and again["error"]["reason"] == "differencing", again["error"]
    net.denial("insurer_b", "regulator", DenialReason.DIFFERENCING)
    # the very same job again reveals nothing new: it is answered
    assert net.run("regulator", CLAIMS_ALL | participants | first)["state"] == "PUBLISHED"


def test_differencing_between_a_job_and_a_direct_query_is_refused(net):
    """The owner's history is per requester and dataset, whatever the route: a job without the last day, then a
    direct query over everything, would give the last day's claim exactly."""
    job = net.run("platform", CLAIMS_ALL | {"participants": ["insurer_b", "insurer_c"],
                                            "filters": {"claim_date": {"gte": "2026-01-01", "lt": "2026-12-31"}}})
    assert job["state"] == "PUBLISHED", job["error"]
    c = net.client("platform", "insurer_b")
    assert refusal(c.query("claims", "STATISTICS", metric="sum", column="amount")) == (403, "differencing")
    net.denial("insurer_b", "platform", DenialReason.DIFFERENCING)
    # a query far (>= k persons) from every earlier release is answered
    r = c.query("claims", "STATISTICS", metric="count", filters={"status": "paid", "age_band": "30-39"})
    assert r.status_code == 200, r.text


# ------------------------------------------------------------------------------------------ 5. vertical semantics

VERTICAL = {"kind": "vertical", "platform": "platform", "deadline_seconds": 60,
            "group_by": [{"column": "age_band", "values": ["30-39"]}]}


@pytest.mark.parametrize("extra,reason", [({"participants": ["insurer_a"]}, "key_not_for_kind"),
                                          ({"label_owner": "insurer_a"}, "not_label_owner")])
def test_vertical_naming_another_members_labels_is_refused(net, extra, reason):
    job = net.run("insurer_d", VERTICAL | extra)
    assert job["state"] == "REFUSED" and job["error"]["reason"] == reason, job


def test_vertical_without_policyholders_is_refused_not_rate_one(net):
    job = net.run("insurer_d", VERTICAL)
    assert job["state"] == "REFUSED" and job["error"]["reason"] == "empty_population", job


def test_platform_refuses_a_vertical_spec_naming_another_label_owner(net):
    request = parse_request(VERTICAL, net.resolve, net.address("mallory"))
    public = complete(request, net.address("mallory"), net.mallory_key.public_key) | {"label_owner": net.address("insurer_a")}
    chain_id = net.ledgers["mallory"].open_job(bytes.fromhex(spec_hash(public)), public["participants"],
                                               bytes.fromhex(public["public_key"]["fingerprint"]), public["min_cohort"],
                                               net.now() + 600)
    r = net.mallory_asks("platform", "/stats/vertical/start", {"chain_job_id": chain_id, "spec": public})
    assert refusal(r) == (403, "not_label_owner"), r.text
    net.denial("platform", "mallory", DenialReason.NOT_LABEL_OWNER)


def test_vertical_result_states_its_semantics_and_the_raised_k(net):
    job = net.run("insurer_a", VERTICAL | {"min_cohort": 3})
    assert job["state"] == "PUBLISHED", job["error"]
    result = job["result"]
    assert result["min_cohort"] == K and result["min_cohort_raised"]
    assert "policyholders" in result["semantics"]["persons"] and result["semantics"]["filters"] == "platform user_features"
    # insurer_a's 103 persons, all on the platform in 30-39: 61 single claimants... every person claimed once or more
    assert result["buckets"]["30-39"]["persons"] == len({c["person_id"] for c in net.claims["insurer_a"]})


# ------------------------------------------------------------------------------------------ 6. k on persons


def test_k_counts_distinct_persons_in_horizontal_jobs(net):
    job = net.run("regulator", CLAIMS_ALL | {"participants": ["insurer_a", "insurer_b"], "min_cohort": K,
                                             "group_by": [{"column": "age_band", "values": ["30-39", "60+"]}]})
    assert job["state"] == "PUBLISHED", job["error"]
    # 60+: 22 claims from 10 persons in total, but 5 per owner: each owner suppresses it
    assert "60+" in job["result"]["suppressed"] and "60+" not in job["result"]["buckets"]
    assert job["result"]["buckets"]["30-39"]["count"] == 120


def test_fraud_spec_with_min_cohort_is_refused_not_silently_lowered(net):
    job = net.run("insurer_b", {"kind": "fraud", "participants": ["insurer_a"], "persons": ["insurer_a-p001"], "min_cohort": 10})
    assert job["state"] == "REFUSED" and job["error"]["reason"] == "key_not_for_kind", job


# ------------------------------------------------------------------------------------------ 7. say what happened


def test_values_outside_the_bins_are_counted_in_the_overflow_bucket(net):
    # insurer_a answered the regulator 30-39 (60 persons) above: [0,1000) would add 6 persons to it, and insurer_a
    # would refuse that as differencing. Two owners without that history:
    job = net.run("regulator", CLAIMS_ALL | {"participants": ["insurer_c", "insurer_d"],
                                             "group_by": [{"column": "amount", "edges": [0, 1000, 5000]}]})
    assert job["state"] == "PUBLISHED", job["error"]
    other = job["result"]["buckets"][OVERFLOW]
    assert other["count"] == 2 * 37 and other["sum"] == 0  # counted, never summed
    assert job["result"]["buckets"]["[0,1000)"]["count"] == 2 * (60 + 11 + 1)


@pytest.mark.parametrize("spec,reason", [({"filters": {"status": "payed"}}, "unknown_value"),
                                         ({"group_by": [{"column": "age_band", "values": ["30-40"]}]}, "unknown_value"),
                                         ({"group_by": [{"column": "person_id", "values": ["a"]}]}, "identifier_column")])
def test_spec_errors_are_refused_with_a_reason(net, spec, reason):
    job = net.run("regulator", CLAIMS_ALL | {"participants": ["insurer_a", "insurer_b"]} | spec)
    assert job["state"] == "REFUSED" and job["error"]["reason"] == reason, job


# ------------------------------------------------------------------------------------------ 8. plausibility


@pytest.mark.parametrize("what,forge", [
    ("count of 1,000,000,036", lambda v: [1_000_000_036] + v[1:]),
    ("negative count", lambda v: [-500] + v[1:]),
    ("sum beyond the value range", lambda v: [0, 10**13] + v[2:]),
])
def test_a_malicious_participants_implausible_input_fails_the_job(net, what, forge):
    net.evil.forge = forge
    # the same buckets as the k test above: insurer_a answers it again (identical persons, no differencing)
    job = net.run("regulator", CLAIMS_ALL | {"participants": ["insurer_a", "evil"], "min_cohort": K,
                                             "group_by": [{"column": "age_band", "values": ["30-39", "60+"]}]})
    assert job["state"] == "FAILED" and job["error"]["reason"] == "implausible_result", job["error"]
    assert job["result"] is None


# ------------------------------------------------------------------------------------------ on the wire


def unmasked(net: AttackNetwork, public: dict, contribution: dict, owner: str) -> list[int]:
    """A participant's own vector, recovered with the test's copy of every key (no real party holds them all)."""
    from privacy.aggregation import Contribution

    spec = horizontal_spec(public)
    key = net.mallory_key if public["requester"] == net.address("mallory") else None
    if key is None:
        key = load_or_create(net.base / "regulator", TEST_PASSPHRASE)
    c = Contribution.from_dict(contribution, spec, key.public_key)
    masked = c.vector.decrypt(key, modular=True)
    me = net.address(owner)
    peers = {p: Ledger(net.gateway, net.keys[owner].account).member(p).x25519_key for p in spec.participants if p != me}
    mask = zero_sum_mask(net.keys[owner].x25519, me, peers, spec.round_id, spec.layout.widths)
    out = []
    for value, m, w in zip(masked, mask, spec.layout.widths):
        v = (value - m) % (1 << w)
        out.append(v - (1 << w) if v >= 1 << (w - 1) else v)
    return out


def test_no_contribution_on_the_wire_carries_a_bucket_under_k_persons(net):
    seen = 0
    persons = {n: defaultdict(set) for n in net.claims}
    for owner, claims in net.claims.items():
        for c in claims:
            persons[owner][c["age_band"]].add(c["person_id"])
    for owner, proxy in net.proxies.items():
        for path, request, response in proxy.captured:
            if not path.startswith("/stats/contribute") or not response.startswith(b'{"contribution"'):
                continue
            body, answer = json.loads(request), json.loads(response)
            public = body["spec"]
            if public["requester"] not in (net.address("regulator"), net.address("mallory")):
                continue
            vector = unmasked(net, public, answer["contribution"], owner)
            width = len(public["statistics"])
            for i, bucket in enumerate(public["buckets"]):
                count = vector[i * width]
                if bucket in answer["release"]["suppressed"]:
                    assert vector[i * width:(i + 1) * width] == [0] * width, (owner, bucket)
                if count and public["group_by"] and public["group_by"][0]["column"] == "age_band" and bucket != OVERFLOW:
                    assert len(persons[owner][bucket.split("|")[0]]) >= K, (owner, bucket)
            seen += 1
    assert seen >= 4, "too few contributions captured"
