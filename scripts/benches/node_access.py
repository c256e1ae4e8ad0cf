"""Authorized small queries against a real node process, each access logged on chain in batches."""
from __future__ import annotations

import statistics
import tempfile
import threading
import time
from pathlib import Path

describe = "node: authorization-check latency and authorized queries per second with on-chain access logs"


def add_arguments(parser) -> None:
    parser.add_argument("--requests", type=int, default=1500)
    parser.add_argument("--clients", type=int, default=8, help="concurrent client threads")


def run(args, progress) -> dict:
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))
    from nodes import TEST_PASSPHRASE, start_node

    from node.chain.anvil import AnvilNode
    from node.chain.deployment import GenesisMember, Purpose, Role, deploy_consortium
    from node.chain.gateway import ChainGateway
    from node.chain.ledger import Ledger, dataset_id
    from node.client import NodeClient
    from node.enforcement import Enforcer
    from node.keys import create_member_keys
    from eth_account import Account

    with tempfile.TemporaryDirectory() as tmp, AnvilNode() as anvil:
        base = Path(tmp)
        gw = ChainGateway.connect(anvil.url)
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

        # Authorization check latency, in process (what the node does per request).
        enforcer = Enforcer(Ledger(gw, owner.account))
        lat = []
        for _ in range(300):
            t0 = time.perf_counter()
            enforcer.decide(requester.address, "claims", Purpose.STATISTICS)
            lat.append((time.perf_counter() - t0) * 1000)
        lat.sort()

        home = base / "node"
        home.mkdir()
        node = start_node(home, "owner", base / "owner", anvil.url, dep_path)
        try:
            clients = [NodeClient(node.url, requester.account, owner.address, gw.chain_id) for _ in range(args.clients)]
            per = args.requests // args.clients
            statuses: list[int] = []
            task = progress.add_task("queries", total=per * args.clients)
            lock = threading.Lock()

            def work(c):
                for _ in range(per):
                    r = c.query("claims", "STATISTICS")
                    with lock:
                        statuses.append(r.status_code)
                    progress.advance(task)

            t0 = time.perf_counter()
            threads = [threading.Thread(target=work, args=(c,)) for c in clients]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            elapsed = time.perf_counter() - t0
            served = statuses.count(200)
            # Wait until every access is on chain; measure how long the last one took.
            deadline = time.monotonic() + 60
            on_chain = 0
            while time.monotonic() < deadline:
                on_chain = len(gw.events("DataUseAuthorization", "AccessRecorded"))
                if on_chain >= served:
                    break
                time.sleep(0.2)
            drained = time.perf_counter() - t0 - elapsed
        finally:
            node.stop()
        from sqlalchemy import create_engine, text

        eng = create_engine(f"sqlite:///{home / 'node.db'}")
        with eng.connect() as conn:
            lags = [r[0] for r in conn.execute(text("select mined_at - created_at from chain_log_outbox where state='mined'"))]
        lags.sort()
    return {
        "requests": len(statuses), "served": served, "requests_per_s": round(served / elapsed, 1),
        "accesses_on_chain": on_chain, "seconds_to_drain_after_load": round(max(drained, 0), 2),
        "log_lag_p95_s": round(lags[int(0.95 * (len(lags) - 1))], 3) if lags else None,
        "log_lag_max_s": round(lags[-1], 3) if lags else None,
        "auth_check_uncached_p50_ms": round(statistics.median(lat), 3),
        "auth_check_uncached_p95_ms": round(lat[int(0.95 * (len(lat) - 1))], 3),
    }
