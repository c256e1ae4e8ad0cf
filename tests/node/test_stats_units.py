"""Statistics pieces without a network: the Paillier key at rest, spec parsing, local SQL aggregates."""
from __future__ import annotations

import json
from decimal import Decimal

import pytest

from node.errors import KeyStoreError
from node.paillier_store import FILE_NAME, load_or_create, load_private_key, save_private_key
from node.stats import local
from node.stats.spec import SpecError, complete, horizontal_spec, parse_request, spec_hash
from node.store.datasets import import_csv, init_datasets
from node.store.db import create_store_engine
from privacy.paillier import PrivateKey, generate_keypair

MEMBERS = {"a": "0x" + "aa" * 20, "b": "0x" + "bb" * 20, "c": "0x" + "cc" * 20, "me": "0x" + "ee" * 20}


def resolve(who: str) -> str:
    if who in MEMBERS:
        return MEMBERS[who]
    raise SpecError(f"unknown member {who!r}", reason="unknown_member")


@pytest.fixture(scope="module")
def keypair():
    return generate_keypair(2048)


# ------------------------------------------------------------------------------------------ key at rest


def test_paillier_key_round_trips_encrypted_and_is_reused(tmp_path, keypair):
    _, private = keypair
    save_private_key(tmp_path / FILE_NAME, private, "a long passphrase", scrypt_n=2**10)
    text = (tmp_path / FILE_NAME).read_text()
    assert str(private.p) not in text and str(private.q) not in text
    assert (tmp_path / FILE_NAME).stat().st_mode & 0o077 == 0
    loaded = load_or_create(tmp_path, "a long passphrase")
    assert (loaded.p, loaded.q) == (private.p, private.q)


@pytest.mark.parametrize("damage", ["passphrase", "modulus", "ciphertext", "format", "truncated"])
def test_paillier_key_file_refuses_wrong_passphrase_and_tampering(tmp_path, keypair, damage):
    _, private = keypair
    path = tmp_path / FILE_NAME
    save_private_key(path, private, "a long passphrase", scrypt_n=2**10)
    doc = json.loads(path.read_text())
    passphrase = "a long passphrase"
    if damage == "passphrase":
        passphrase = "another passphrase"
    elif damage == "modulus":  # a swapped public part is caught by the AEAD's associated data
        doc["public"]["n"] = str(generate_keypair(2048)[0].n)
    elif damage == "ciphertext":
        raw = bytearray(bytes.fromhex(doc["cipher"]["ciphertext"]))
        raw[5] ^= 1
        doc["cipher"]["ciphertext"] = raw.hex()
    elif damage == "format":
        doc["format"] = "something-else"
    if damage == "truncated":
        path.write_text(path.read_text()[:40])
    else:
        path.write_text(json.dumps(doc))
    with pytest.raises(KeyStoreError):
        load_private_key(path, passphrase)


def test_a_small_paillier_key_is_refused_at_load(tmp_path):
    import phe

    public, small = phe.generate_paillier_keypair(n_length=1024)
    path = tmp_path / FILE_NAME
    key = PrivateKey.__new__(PrivateKey)  # a 1024-bit key cannot be built through the checked constructor
    key.p, key.q = small.p, small.q
    key.public_key = type("P", (), {"n": public.n, "fingerprint": "x"})()
    save_private_key(path, key, "a long passphrase", scrypt_n=2**10)
    with pytest.raises(KeyStoreError, match="2048"):
        load_private_key(path, "a long passphrase")


# ------------------------------------------------------------------------------------------ specs

BASE = {"kind": "horizontal", "dataset": "claims", "value": "amount", "participants": ["a", "b"],
        "group_by": [{"column": "age_band", "values": ["18-29", "30-39"]}]}


@pytest.mark.parametrize("change, reason", [
    ({"kind": "diagonal"}, "bad_spec"),
    ({"participants": ["a"]}, "bad_spec"),
    ({"participants": ["a", "a"]}, "bad_spec"),
    ({"participants": ["a", "me"]}, "bad_spec"),
    ({"participants": ["a", "zz"]}, "unknown_member"),
    ({"dataset": "nope"}, "bad_spec"),
    ({"value": "status"}, "bad_spec"),
    ({"value": "nope"}, "unknown_column"),
    ({"purpose": "FRAUD"}, "bad_spec"),
    ({"group_by": [{"column": "age_band"}]}, "bad_spec"),
    ({"group_by": [{"column": "status", "edges": [0, 1]}]}, "bad_spec"),
    ({"group_by": [{"column": "amount", "edges": [5, 1]}]}, "bad_spec"),
    ({"group_by": [{"column": "amount", "edges": list(range(5000))}]}, "bad_spec"),
    ({"filters": {"claim_date": "yesterday"}}, "bad_spec"),
    ({"filters": {"amount": {"about": 3}}}, "bad_spec"),
    ({"filters": {"nope": 1}}, "unknown_column"),
    ({"min_cohort": 0}, "bad_spec"),
    ({"deadline_seconds": 1}, "bad_spec"),
    ({"epsilon": 0.5}, "bad_spec"),  # DP on sums needs a value bound
    ({"surprise": 1}, "bad_spec"),
    ({"group_by": [{"column": "person_id", "values": ["p1"]}]}, "identifier_column"),
    ({"group_by": [{"column": "claim_id", "values": ["c1"]}]}, "identifier_column"),
    ({"filters": {"person_id": "p1"}}, "identifier_column"),
    ({"filters": {"policy_id": ["x", "y"]}}, "identifier_column"),
    ({"filters": {"status": "payed"}}, "unknown_value"),
    ({"group_by": [{"column": "age_band", "values": ["18-30"]}]}, "unknown_value"),
    ({"value_range": [5, 1]}, "bad_spec"),
    ({"platform": "a"}, "key_not_for_kind"),
    ({"kind": "fraud", "persons": ["x"], "min_cohort": 10}, "key_not_for_kind"),
    ({"kind": "vertical", "platform": "a"}, "key_not_for_kind"),  # BASE names participants: not for vertical
])
def test_bad_specs_are_refused_with_a_reason(change, reason):
    with pytest.raises(SpecError) as info:
        parse_request(BASE | change, resolve, MEMBERS["me"])
    assert info.value.reason == reason


def test_spec_normalizes_members_and_buckets_and_hash_covers_everything(keypair):
    request = parse_request(BASE | {"group_by": [{"column": "age_band", "values": ["18-29", "30-39"]},
                                                 {"column": "amount", "edges": [0, 100, 250.5]}],
                                    "filters": {"claim_date": {"gte": "2026-03-01"}, "status": ["paid", "open"]}},
                            resolve, MEMBERS["me"])
    assert request.public["participants"] == sorted([MEMBERS["a"], MEMBERS["b"]])
    assert request.public["buckets"] == ["18-29|[0,100)", "18-29|[100,250.5)", "30-39|[0,100)", "30-39|[100,250.5)", "(other)"]
    public = complete(request, MEMBERS["me"], keypair[0], job_id="j1")
    assert horizontal_spec(public).buckets == tuple(request.public["buckets"])
    h = spec_hash(public)
    assert spec_hash(json.loads(json.dumps(public))) == h  # stable across serialization
    for key, value in [("min_cohort", 11), ("round", 1), ("job_id", "j2"), ("filters", {})]:
        assert spec_hash(public | {key: value}) != h


def test_fraud_persons_stay_out_of_the_public_spec():
    request = parse_request({"kind": "fraud", "participants": ["a"], "persons": ["p1", "p2", "p1"]}, resolve, MEMBERS["me"])
    assert request.private["persons"] == ["p1", "p2"] and request.public["persons"] == 2
    assert "p1" not in json.dumps(request.public)


# ------------------------------------------------------------------------------------------ local aggregates

CLAIMS = """claim_id,person_id,policy_id,amount,claim_date,status,age_band,region
c1,p1,,10.10,2026-01-05,paid,18-29,east
c2,p2,,99.99,2026-02-11,open,18-29,west
c3,p3,,100.00,2026-03-20,paid,30-39,east
c4,p4,,250.50,2026-04-01,paid,30-39,east
c5,p5,,0.01,2026-05-01,paid,40-49,east
c6,p1,,20.00,2026-06-01,rejected,18-29,east
"""


@pytest.fixture
def engine(tmp_path):
    engine = create_store_engine(f"sqlite:///{tmp_path / 'node.db'}")
    init_datasets(engine)
    import_csv(engine, "claims", CLAIMS)
    yield engine
    engine.dispose()


def test_horizontal_vector_is_exact_with_bins_filters_and_undeclared_values(engine, keypair):
    request = parse_request(BASE | {"group_by": [{"column": "age_band", "values": ["18-29", "30-39"]},
                                                 {"column": "amount", "edges": [0, 100, 250.5]}],
                                    "filters": {"status": ["paid", "open"]}}, resolve, MEMBERS["me"])
    public = complete(request, MEMBERS["me"], keypair[0], job_id="j")
    totals, persons = local.horizontal_buckets(engine, public)
    vector = local.horizontal_vector(totals, public["buckets"])
    # 40-49 is undeclared and 250.50 falls on the open upper edge: both counted in the overflow bucket, never summed
    cents = {"18-29|[0,100)": [1010, 9999], "18-29|[100,250.5)": [], "30-39|[0,100)": [], "30-39|[100,250.5)": [10000]}
    expected = []
    for bucket in public["buckets"][:-1]:
        values = cents[bucket]
        expected += [len(values), sum(values), sum(v * v for v in values)]
    assert vector == expected + [2, 0, 0]
    assert {b: sorted(p) for b, p in persons.items()} == {"18-29|[0,100)": ["p1", "p2"], "18-29|[100,250.5)": [],
                                                           "30-39|[0,100)": [], "30-39|[100,250.5)": ["p3"],
                                                           "(other)": ["p4", "p5"]}


def test_value_range_sends_rows_outside_it_to_the_overflow_bucket(engine, keypair):
    request = parse_request(BASE | {"value_range": [0, 100], "group_by": [{"column": "age_band", "values": ["18-29"]}]},
                            resolve, MEMBERS["me"])
    public = complete(request, MEMBERS["me"], keypair[0], job_id="j")
    totals, persons = local.horizontal_buckets(engine, public)
    assert totals == {"18-29": [3, 1010 + 9999 + 2000, 1010**2 + 9999**2 + 2000**2], "(other)": [3, 0, 0]}
    assert sorted(set(persons["18-29"])) == ["p1", "p2"]  # p1 has two claims: one person


def test_insurer_rows_total_claims_per_person(engine):
    rows = {p: (claimed, amount) for p, claimed, amount in local.insurer_rows(engine, {"claim_filters": {"status": "paid"}})}
    assert rows["p1"] == (1, Decimal("10.10")) and rows["p4"] == (1, Decimal("250.50"))
    assert "p2" not in rows  # no policy here and no claim passing the filter: outside the population


@pytest.mark.parametrize("change", [
    {"dataset": "policies"},                       # grant checked on one dataset, data read from another
    {"purpose": "UNDERWRITING"},
    {"buckets": ["all"]},
    {"filters": {"nope": 1}},
    {"value": "status"},
    {"statistics": ["sum"]},
    {"group_by": "age_band"},
])
def test_participant_side_check_refuses_specs_a_requester_could_not_have_built(keypair, change):
    from node.stats.spec import check_public

    public = complete(parse_request(BASE, resolve, MEMBERS["me"]), MEMBERS["me"], keypair[0], job_id="j")
    check_public(public)
    with pytest.raises(SpecError):
        check_public(public | change)


def test_participant_side_check_ties_vertical_and_fraud_specs_to_their_dataset(keypair):
    from node.stats.spec import check_public

    vertical = complete(parse_request({"kind": "vertical", "platform": "a", "group_by": [{"column": "channel", "values": ["app"]}]},
                                      resolve, MEMBERS["me"]), MEMBERS["me"], keypair[0], job_id="v")
    check_public(vertical)
    with pytest.raises(SpecError):
        check_public(vertical | {"dataset": "claims"})
    fraud = complete(parse_request({"kind": "fraud", "participants": ["a"], "persons": ["x"]}, resolve, MEMBERS["me"]),
                     MEMBERS["me"], keypair[0], job_id="f")
    check_public(fraud)
    for change in ({"dataset": "claims"}, {"purpose": "STATISTICS"}, {"check": "recent_claims"}):
        with pytest.raises(SpecError):
            check_public(fraud | change)


def test_vertical_spec_names_the_requester_as_label_owner_and_states_its_semantics():
    request = parse_request({"kind": "vertical", "platform": "a", "group_by": [{"column": "channel", "values": ["app"]}]},
                            resolve, MEMBERS["me"])
    assert request.public["label_owner"] == MEMBERS["me"] and "policyholders" in request.public["semantics"]["persons"]
    with pytest.raises(SpecError) as info:
        parse_request({"kind": "vertical", "platform": "a", "label_owner": "b"}, resolve, MEMBERS["me"])
    assert info.value.reason == "not_label_owner"


# ------------------------------------------------------------------------------------------ peer answer size


@pytest.fixture
def oversized_peer():
    """A peer answering every POST with 20 MB of JSON-looking bytes, declared or streamed without a length."""
    import http.server
    import threading

    sent = {"bytes": 0}

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):  # noqa: N802 - http.server's naming
            self.rfile.read(int(self.headers.get("content-length") or 0))
            chunk = b" " * 65536
            self.send_response(200)
            self.send_header("content-type", "application/json")
            if self.path == "/declared":
                self.send_header("content-length", str(20 * 1024 * 1024))
                self.end_headers()
            else:
                self.send_header("transfer-encoding", "chunked")
                self.end_headers()
            try:
                for _ in range(320):
                    data = chunk if self.path == "/declared" else b"%x\r\n%s\r\n" % (len(chunk), chunk)
                    self.wfile.write(data)
                    sent["bytes"] += len(chunk)
                if self.path != "/declared":
                    self.wfile.write(b"0\r\n\r\n")
            except (BrokenPipeError, ConnectionResetError):
                pass

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", sent
    server.shutdown()


@pytest.mark.parametrize("path", ["/declared", "/streamed"])
def test_peer_answers_past_the_size_limit_are_cut_off_and_fail_the_job(oversized_peer, path):
    from eth_account import Account

    from node.stats.peer import PeerClient, PeerError

    url, sent = oversized_peer
    with PeerClient(url, Account.create(), "0x" + "11" * 20, 31337, timeout=30, max_bytes=1024 * 1024) as client:
        with pytest.raises(PeerError) as info:
            client.post_json(path, {"chain_job_id": 1})
    assert info.value.reason == "answer_too_large" and info.value.definitive  # the job fails instead of retrying
    if path == "/streamed":  # the reader stopped near the limit instead of holding 20 MB
        assert sent["bytes"] < 20 * 1024 * 1024


def test_peer_answer_limit_scales_with_the_job_and_never_goes_under_the_setting(keypair):
    from node.stats.peer import answer_limit

    floor = 1_000_000  # the peer_answer_max_bytes setting
    public = complete(parse_request(BASE, resolve, MEMBERS["me"]), MEMBERS["me"], keypair[0], job_id="j")
    assert answer_limit(floor, {"public_spec": public}, "contribute") == 1_000_000
    fraud = complete(parse_request({"kind": "fraud", "participants": ["a"], "persons": [f"p{i}" for i in range(10_000)]},
                                   resolve, MEMBERS["me"]), MEMBERS["me"], keypair[0], job_id="f")
    assert answer_limit(floor, {"public_spec": fraud}, "fraud") > 2 * 10_000 * 2 * 64
    vertical = complete(parse_request({"kind": "vertical", "platform": "a", "group_by": [{"column": "channel", "values": ["app"]}]},
                                      resolve, MEMBERS["me"]), MEMBERS["me"], keypair[0], job_id="v")
    assert answer_limit(floor, {"public_spec": vertical}, "vertical/start", own_rows=500_000) >= 70 * 5_000_000
