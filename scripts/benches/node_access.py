"""Authorized small queries against a real node process, each access logged on chain in batches."""
from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path

describe = "node: authorization-check latency and authorized queries per second with on-chain access logs"


def add_arguments(parser) -> None:
    parser.add_argument("--requests", type=int, default=1500)
    parser.add_argument("--clients", type=int, default=4, help="client processes (4 connections each)")
    parser.add_argument("--claims-people", type=int, default=0,
                        help="load the sample world's claims of one insurer for this many people (0: an empty dataset, as "
                             "the issue measured) and rotate the clients over four query shapes, so the release gate "
                             "suppresses, records footprints and checks history on every request")
    parser.add_argument("--profile", action="store_true",
                        help="sample the node with py-spy during the load and print CPU per request by stage")
    parser.add_argument("--profile-rate", type=int, default=250, help="py-spy samples per second")
    parser.add_argument("--profile-mode", choices=("gil", "running"), default="gil",
                        help="gil: the thread holding the interpreter lock; running: every thread on a core")
    parser.add_argument("--profile-out", type=Path, default=None, help="keep py-spy's raw samples here (collapsed stacks)")


def _load(job) -> tuple[list[int], float, float, float]:
    """One client process: sign and send ``count`` authorized queries; returns the status codes, when the load
    started and ended, and the CPU seconds this process spent on it (the clients share the node's two cores).

    Each request is signed with the member key exactly as ``node.client.NodeClient`` signs it, and sent over a
    keep-alive connection with the standard library's HTTP client: httpx cost the load generator about twice the
    CPU per request, taken from the two cores the node runs on (the issue measures the node, not the client)."""
    url, key, audience, chain_id, count, start_at, shapes, *paced = job
    import http.client
    import json
    import random
    import threading
    from urllib.parse import urlsplit

    from eth_account import Account

    from node.access.auth import sign_request

    account = Account.from_key(key)
    where = urlsplit(url)
    bodies = [json.dumps({"dataset": "claims", "purpose": "STATISTICS", **shape}).encode() for shape in shapes]
    threads_per_process = 4
    statuses: list[int] = []
    lock = threading.Lock()

    def query(conn: http.client.HTTPConnection, body: bytes) -> int:
        headers = sign_request(account, chain_id, audience, "POST", "/data/query", body)
        headers["content-type"] = "application/json"
        conn.request("POST", "/data/query", body=body, headers=headers)
        answer = conn.getresponse()
        answer.read()
        return answer.status

    connections = [http.client.HTTPConnection(where.hostname, where.port, timeout=60) for _ in range(threads_per_process)]

    # paced: this process's requests per second (an offered load), else as fast as the node answers
    interval = threads_per_process / paced[0] if paced and paced[0] else 0.0

    def work(conn, n):
        phase = random.random()  # each connection's schedule starts at its own point of the interval
        got = []
        for i in range(n):
            if interval:
                time.sleep(max(0.0, t0 + (i + phase) * interval - time.time()))
            got.append(query(conn, bodies[i % len(bodies)]))
        with lock:
            statuses.extend(got)

    try:
        for conn in connections:
            assert query(conn, bodies[0]) == 200  # warm up the imports and the signing key
            conn.close()  # the node closes idle connections before the start: reconnect then (http.client would not)
        time.sleep(max(0.0, start_at - time.time()))  # all clients start together
        t0 = time.time()
        cpu0 = time.process_time()
        threads = [threading.Thread(target=work, args=(c, count // threads_per_process)) for c in connections]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return statuses, t0, time.time(), time.process_time() - cpu0
    finally:
        for conn in connections:
            conn.close()


def _cpu_times(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of a process (Linux /proc): the node's cost per request, whatever else runs.
    System time is the kernel working for the node: socket sends on loopback (which also deliver to the
    receiver), fsync of the access log, thread wake-ups."""
    import os

    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def _load_claims(home: Path, base: Path, people: int) -> int:
    """The first insurer's claims of the sample world, imported into the running node's store by the CLI."""
    import json
    import subprocess
    import sys

    from node.sample_data import generate, write_member_csvs

    world = generate(people=people)
    paths = write_member_csvs(base / "claims-csv", {"claims": world.insurers["insurer_a"].claims})
    done = subprocess.run([sys.executable, "-m", "node.cli", "data", "import", "claims", str(paths["claims"]),
                           "--config", str(home / "node.toml"), "--json"], capture_output=True, text=True, check=True)
    return json.loads(done.stdout)["rows"]


def run(args, progress) -> dict:
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))
    from eth_account import Account
    from nodes import TEST_PASSPHRASE, start_node

    from benches.machine import core_speed_ms
    from benches.stage_profile import print_table, stage_table, start_recording, stop_recording
    from node.access.enforcement import Enforcer
    from node.chain.anvil import AnvilNode
    from node.chain.compiler import compile_contracts
    from node.chain.deployment import GenesisMember, Purpose, Role, deploy_consortium
    from node.chain.gateway import ChainGateway
    from node.chain.ledger import Ledger, dataset_id
    from node.keys import create_member_keys

    with tempfile.TemporaryDirectory() as tmp, AnvilNode() as anvil:
        base = Path(tmp)
        gw = ChainGateway.connect(anvil.url, compile_contracts())  # a benchmark deploys: it compiles (cached)
        owner = create_member_keys(base / "owner", TEST_PASSPHRASE, scrypt_n=2**10)
        requester = create_member_keys(base / "req", TEST_PASSPHRASE, scrypt_n=2**10)
        deployer = Account.create()
        for a in (deployer, owner.account, requester.account):
            gw.fund(a.address)
        dep = deploy_consortium(gw, deployer, [GenesisMember(owner.address, "owner", Role.INSURER),
                                               GenesisMember(requester.address, "req", Role.PLATFORM)])
        dep_path = dep.save(base / "deployment.json")
        ledger = Ledger(gw, owner.account)
        now = gw.w3.eth.get_block("latest")["timestamp"]
        ledger.grant(requester.address, dataset_id("claims"), Purpose.STATISTICS, expires_at=now + 86400)

        # Authorization check latency, in process (what the node does per request), without and with the cache.
        def check_latency(enforcer) -> list[float]:
            lat = []
            for _ in range(300):
                t0 = time.perf_counter()
                assert enforcer.decide(requester.address, "claims", Purpose.STATISTICS).allowed
                lat.append((time.perf_counter() - t0) * 1000)
            return sorted(lat)

        from node.access.authz_cache import AuthorizationCache

        lat = check_latency(Enforcer(Ledger(gw, owner.account)))
        cached = check_latency(Enforcer(Ledger(gw, owner.account), AuthorizationCache(Ledger(gw, owner.account))))

        home = base / "node"
        home.mkdir()
        node = start_node(home, "owner", base / "owner", anvil.url, dep_path)
        shapes: list[dict] = [{}]
        claim_rows = 0
        try:  # from here on the node is stopped whatever fails, the claims import included
            if args.claims_people:
                claim_rows = _load_claims(home, base, args.claims_people)
                shapes = [{}, {"group_by": "age_band"}, {"metric": "sum", "column": "amount", "group_by": "region"},
                          {"metric": "mean", "column": "amount", "filters": {"status": "paid"}}]
            # Load comes from separate processes, so the clients' own signing does not share the
            # benchmark process's interpreter lock with anything else.
            import multiprocessing as mp

            per = args.requests // args.clients
            start_at = time.time() + 10  # after every client process has started and warmed up
            jobs = [(node.url, bytes(requester.account.key), owner.address, gw.chain_id, per, start_at, shapes)] * args.clients
            task = progress.add_task("queries", total=None)
            with mp.get_context("spawn").Pool(args.clients) as pool:
                pending = pool.map_async(_load, jobs)
                time.sleep(max(0.0, start_at - 2 - time.time()))  # the clients have started and warmed up by now
                speed_before = core_speed_ms()
                # CPU and samples from when the clients start together (after their warm-up), not before
                time.sleep(max(0.0, start_at - time.time()))
                cpu_before = _cpu_times(node.process.pid)
                spy = (start_recording(node.process.pid, base / "spy.txt", args.profile_rate, gil=args.profile_mode == "gil")
                       if args.profile else None)
                results = pending.get()
                cpu_after = _cpu_times(node.process.pid)
                user, system = cpu_after[0] - cpu_before[0], cpu_after[1] - cpu_before[1]
                cpu_used = user + system
                load_average = [round(x, 2) for x in os.getloadavg()]  # at the end of the load: the machine's state
                if spy is not None:
                    stop_recording(spy)
            progress.update(task, completed=1)
            load_end = max(r[2] for r in results)
            elapsed = load_end - min(r[1] for r in results)
            statuses = [s for r in results for s in r[0]]
            served = statuses.count(200)
            # Wait until every access is on chain; measure how long the last one took.
            deadline = time.monotonic() + 60
            on_chain = 0
            while time.monotonic() < deadline:
                on_chain = len(gw.events("DataUseAuthorization", "AccessRecorded"))
                if on_chain >= served:
                    break
                time.sleep(0.2)
        finally:
            node.stop()
        from sqlalchemy import create_engine, text

        eng = create_engine(f"sqlite:///{home / 'node.db'}")
        with eng.connect() as conn:
            lags = [r[0] for r in conn.execute(text("select mined_at - created_at from chain_log_outbox where state='mined'"))]
            last_mined = conn.execute(text("select max(mined_at) from chain_log_outbox where state='mined'")).scalar()
        lags.sort()
        cpu_ms = cpu_used * 1000 / max(len(statuses), 1)
        stages = stage_table((base / "spy.txt").read_text(), len(statuses), args.profile_rate, cpu_ms) if args.profile else None
        if args.profile and args.profile_out:
            args.profile_out.write_text((base / "spy.txt").read_text())
    if stages:
        print_table(stages)
    return {
        "load_average": load_average,
        "core_speed_ms": speed_before,  # lower is faster: a fixed Python loop timed just before the load
        "requests": len(statuses), "served": served, "claims_rows": claim_rows, "query_shapes": len(shapes), "requests_per_s": round(served / elapsed, 1),
        "node_cpu_ms_per_request": round(cpu_ms, 3),
        "node_cpu_system_share": round(system / cpu_used, 3) if cpu_used else 0.0,
        # the load generator's own cost (signing, HTTP): on two shared cores it bounds requests_per_s too
        "client_cpu_ms_per_request": round(sum(r[3] for r in results) * 1000 / max(len(statuses), 1), 3),
        "accesses_on_chain": on_chain, "last_access_on_chain_after_load_s": round(last_mined - load_end, 2),
        "log_lag_p95_s": round(lags[int(0.95 * (len(lags) - 1))], 3) if lags else None,
        "log_lag_max_s": round(lags[-1], 3) if lags else None,
        "auth_check_uncached_p50_ms": round(statistics.median(lat), 3),
        "auth_check_uncached_p95_ms": round(lat[int(0.95 * (len(lat) - 1))], 3),
        "auth_check_cached_p50_ms": round(statistics.median(cached), 3),
        "auth_check_cached_p95_ms": round(cached[int(0.95 * (len(cached) - 1))], 3),
        **({"profile_stages": {r["stage"]: r["cpu_ms_per_request"] for r in stages}} if stages else {}),
    }
