"""API fuzzing of real node processes: schemathesis on each node's OpenAPI, signed as every kind of
caller with the project's own signing code, plus a raw-body fuzzer for the routes that read their
body themselves. Counts 5xx answers and hangs (goal: none) and checks the stores afterwards.

The same engine runs in CI as a bounded profile (tests/system/test_fuzz_api.py) and here as a longer one.
"""
from __future__ import annotations

import json
import os
import random
import sqlite3
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx

describe = "API fuzzing: schemathesis (signed as unsigned/non-member/member/operator/regulator) + raw bodies; 5xx, hangs, integrity"

CALLERS = ("unsigned", "outsider", "member", "operator", "regulator")
# Routes that parse their own body (not described by the OpenAPI schema): the raw-body fuzzer's targets.
RAW_BODY_ROUTES = ("/stats/contribute", "/stats/fraud", "/stats/vertical/start", "/stats/vertical/double?job=1",
                   "/stats/vertical/labels?job=1", "/stats/jobs", "/evidence/hashes", "/evidence/verify",
                   "/evidence/documents?claim_id=CLM-F&doc_type=invoice")
CLAIMS_CSV_HEADER = "claim_id,person_id,policy_id,amount,claim_date,status,age_band,region\n"


def add_arguments(parser) -> None:
    parser.add_argument("--examples", type=int, default=60, help="schemathesis examples per operation and caller")
    parser.add_argument("--raw", type=int, default=400, help="raw bodies per route")
    parser.add_argument("--seed", type=int, default=2026)


@dataclass
class Network:
    """A local consortium (anvil, deployed contracts) with a member node and the regulator's node."""

    dev: object
    nodes: dict
    outsider: object
    home: Path

    @classmethod
    def start(cls, home: Path, node_names=("insurer-east", "regulator"), **node_settings) -> "Network":
        from eth_account import Account

        from node.network.devnet import dev_passphrase, spawn_node, start_dev_consortium

        dev = start_dev_consortium(home)
        nodes = {}
        try:
            for name in node_names:
                nodes[name] = spawn_node(home / "nodes" / name, name, home / "members" / name, dev.anvil.url,
                                         dev.deployment_path, dev_passphrase(home), log_flush_seconds=0.2,
                                         **node_settings)
        except BaseException:
            for node in nodes.values():
                node.stop()
            dev.stop()
            raise
        return cls(dev, nodes, Account.create(), home)

    def account(self, who: str, node: str):
        """The signing account for a caller kind against ``node``."""
        if who == "outsider":
            return self.outsider
        if who == "operator":
            return self.dev.keys[node].account
        if who == "regulator":
            return self.dev.keys["regulator"].account
        if who == "member":  # another member in good standing, not this node's own account
            return self.dev.keys["insurer-west" if node != "insurer-west" else "insurer-east"].account
        raise ValueError(who)

    def client(self, who: str, node: str):
        from node.client import NodeClient

        return NodeClient(self.nodes[node].url, self.account(who, node), self.dev.keys[node].address,
                          self.dev.gateway.chain_id)

    def import_claims(self, node: str, rows: int = 200) -> None:
        import subprocess
        import sys

        from node.paths import PROJECT_ROOT

        path = self.home / f"{node}-claims.csv"
        lines = [f"c{i},p{i % 97},pol{i},{100 + i % 900}.50,2026-0{1 + i % 9}-1{i % 9},{'paid' if i % 3 else 'open'},"
                 f"{['18-29', '30-39', '40-49'][i % 3]},{['east', 'west'][i % 2]}" for i in range(rows)]
        path.write_text(CLAIMS_CSV_HEADER + "\n".join(lines) + "\n")
        subprocess.run([sys.executable, "-m", "node.cli", "data", "import", "claims", str(path), "--config",
                        str(self.nodes[node].config)], cwd=PROJECT_ROOT, check=True, capture_output=True)

    def stop(self) -> None:
        for node in self.nodes.values():
            node.stop()
        self.dev.stop()


@dataclass
class FuzzReport:
    requests: int = 0
    statuses: Counter = field(default_factory=Counter)
    server_errors: list = field(default_factory=list)  # (caller, method, path, status, body excerpt)
    hangs: list = field(default_factory=list)

    def add(self, caller: str, method: str, target: str, response: httpx.Response | None, error: str | None = None):
        self.requests += 1
        if response is None:
            self.statuses["no_answer"] += 1
            self.hangs.append((caller, method, target[:200], error))
            return
        self.statuses[str(response.status_code)] += 1
        if response.status_code >= 500:
            self.server_errors.append((caller, method, target[:200], response.status_code, response.text[:200]))

    def to_json(self) -> dict:
        return {"requests": self.requests, "server_errors": len(self.server_errors), "hangs": len(self.hangs),
                "statuses": dict(sorted(self.statuses.items())), "first_server_errors": self.server_errors[:5],
                "first_hangs": self.hangs[:5]}


def send_signed(http: httpx.Client, account, audience: str, chain_id: int, method: str, url: str, *,
                content: bytes = b"", headers: dict | None = None, params=None) -> httpx.Response:
    """One request signed with the project's own code (node/access/auth.py via node/client.py), or unsigned."""
    from node.access.auth import sign_request
    from node.client import signed_target

    request = http.build_request(method, url, content=content, headers=headers or {}, params=params)
    if account is not None:
        request.headers.update(sign_request(account, chain_id, audience, method,
                                            signed_target(http.base_url, request.url), content))
    return http.send(request)


def _case_request(case, base_url: str) -> tuple[str, str, bytes, dict, dict | None]:
    kwargs = case.as_transport_kwargs(base_url=base_url)
    headers = {k: str(v) for k, v in (kwargs.get("headers") or {}).items()}
    if "json" in kwargs and kwargs["json"] is not None:
        content = json.dumps(kwargs["json"]).encode()
        headers.setdefault("content-type", "application/json")
    elif kwargs.get("data") is not None:
        data = kwargs["data"]
        content = data if isinstance(data, bytes) else str(data).encode() if not isinstance(data, dict) else \
            httpx.QueryParams(data).__str__().encode()
    else:
        content = b""
    return kwargs["method"], kwargs["url"], content, headers, kwargs.get("params")


def schema_fuzz(net: Network, node: str, callers=CALLERS, examples: int = 20, seed: int = 0,
                report: FuzzReport | None = None, progress=None) -> FuzzReport:
    """schemathesis cases for every operation of ``node``'s OpenAPI, sent as each kind of caller."""
    import schemathesis
    from hypothesis import HealthCheck, Phase, given
    from hypothesis import settings as hsettings

    report = report or FuzzReport()
    url = net.nodes[node].url
    schema = schemathesis.openapi.from_url(url + "/openapi.json")
    audience, chain_id = net.dev.keys[node].address, net.dev.gateway.chain_id
    operations = [result.ok() for result in schema.get_all_operations()]
    with httpx.Client(base_url=url, timeout=30) as http:
        for caller in callers:
            account = None if caller == "unsigned" else net.account(caller, node)
            for op in operations:
                if caller == "operator" and (op.path.endswith("/{action}") or op.path in ("/governance/keys",
                                                                                          "/governance/endpoint")):
                    # The operator's cards and key/endpoint rotation would change the consortium under the
                    # fuzzer (suspend the member it signs as, replace the node's keys): validated, not fuzzed.
                    continue

                @hsettings(max_examples=examples, deadline=None, database=None, derandomize=True, phases=[Phase.generate],
                           suppress_health_check=list(HealthCheck))
                @given(case=op.as_strategy())
                def one(case):
                    method, target, content, headers, params = _case_request(case, url)
                    try:
                        response = send_signed(http, account, audience, chain_id, method, target, content=content,
                                               headers=headers, params=params)
                    except httpx.TimeoutException as exc:
                        report.add(caller, method, target, None, type(exc).__name__)
                        return
                    except (httpx.InvalidURL, httpx.LocalProtocolError, UnicodeEncodeError):
                        return  # the client itself cannot send it: nothing reached the node
                    report.add(caller, method, target, response)

                one()
                if progress is not None:
                    progress()
    return report


def _raw_bodies(rng: random.Random, n: int) -> list[bytes]:
    """Bodies that a JSON-reading route must refuse cleanly: not JSON, JSON of every shape, huge numbers."""
    shapes: list = [[], [1, 2], "x", 1, 1.5, None, True, {}, {"chain_job_id": -1}, {"chain_job_id": 2**80},
                    {"chain_job_id": "1", "spec": []}, {"chain_job_id": 1, "spec": {"kind": ["horizontal"]}},
                    {"items": [[1, 2, 3]]}, {"items": {"a": 1}}, {"proof": [], "document_sha256": 5},
                    {"proof": {"root": "zz", "leaf_index": -1}, "document_base64": "AA=="}, {"dataset": ["claims"]},
                    {"kind": "horizontal", "dataset": {"a": 1}, "participants": "all"}, {"kind": None},
                    {"sha256": "00" * 32, "claim_id": "a/b", "doc_type": "invoice"}, {"buckets": 1e308}, [[[[[]]]]]]
    bodies = [json.dumps(s).encode() for s in shapes]
    bodies += [b"", b"{", b"\xff\xfe", b"null", b"1e999999", b'{"a":' * 50 + b"1" + b"}" * 50, b"[" * 5000]
    while len(bodies) < n:
        kind = rng.random()
        if kind < 0.4:
            bodies.append(rng.randbytes(rng.randint(1, 300)))
        elif kind < 0.8:
            value = rng.choice(shapes)
            bodies.append(json.dumps({"chain_job_id": rng.choice([0, 1, -5, 2**63, "x", None]), "spec": value,
                                      rng.choice(["dataset", "kind", "items", "proof"]): value}).encode())
        else:
            base = bytearray(rng.choice(bodies[:len(shapes)]))
            if base:
                base[rng.randrange(len(base))] = rng.randrange(256)
            bodies.append(bytes(base))
    return bodies[:n]


def raw_body_fuzz(net: Network, node: str, per_route: int = 100, seed: int = 0, callers=("member", "operator"),
                  report: FuzzReport | None = None) -> FuzzReport:
    report = report or FuzzReport()
    rng = random.Random(seed)
    audience, chain_id = net.dev.keys[node].address, net.dev.gateway.chain_id
    with httpx.Client(base_url=net.nodes[node].url, timeout=30) as http:
        for route in RAW_BODY_ROUTES:
            for i, body in enumerate(_raw_bodies(rng, per_route)):
                caller = callers[i % len(callers)]
                ctype = rng.choice(["application/json", "application/octet-stream", "text/plain"])
                try:
                    response = send_signed(http, net.account(caller, node), audience, chain_id, "POST", route,
                                           content=body, headers={"content-type": ctype})
                except httpx.TimeoutException as exc:
                    report.add(caller, "POST", route, None, type(exc).__name__)
                    continue
                report.add(caller, "POST", route, response)
    return report


def store_integrity(net: Network) -> dict:
    """Every node's SQLite store passes PRAGMA integrity_check and its audit index matches the chain."""
    out = {}
    for name, node in net.nodes.items():
        with sqlite3.connect(f"file:{node.home / 'node.db'}?mode=ro", uri=True) as conn:
            out[name] = conn.execute("PRAGMA integrity_check").fetchone()[0]
    regulator = net.client("operator", "regulator") if "regulator" in net.nodes else None
    if regulator is not None:
        r = regulator.request("GET", "/audit/verify", params={"from_block": net.dev.deployment.deployment_block})
        out["audit_index_matches_chain"] = r.status_code == 200 and r.json().get("matches") is True
    return out


def fuzz_network(net: Network, *, examples: int, raw: int, seed: int, progress=None) -> dict:
    report = FuzzReport()
    t0 = time.monotonic()
    for node in net.nodes:
        schema_fuzz(net, node, examples=examples, seed=seed, report=report, progress=progress)
        raw_body_fuzz(net, node, per_route=raw, seed=seed, report=report)
    health = {name: httpx.get(node.url + "/health", timeout=10).status_code for name, node in net.nodes.items()}
    return {**report.to_json(), "seconds": round(time.monotonic() - t0, 1), "nodes_alive_after": health,
            "integrity": store_integrity(net)}


def run(args, progress) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-fuzz-") as tmp:
        net = Network.start(Path(tmp))
        try:
            net.import_claims("insurer-east")
            task = progress.add_task("fuzzing", total=None)
            result = fuzz_network(net, examples=args.examples, raw=args.raw, seed=args.seed,
                                  progress=lambda: progress.advance(task))
        finally:
            net.stop()
    result["load_average"] = [round(x, 2) for x in os.getloadavg()]
    return result
