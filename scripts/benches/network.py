"""The consortium on a real 4-signer geth Clique network (1 s blocks, confirmations 2).

authorized_rps: authorized queries per second served by a real node process whose chain node is its
own geth, loaded as fast as it answers; onchain_p95_s: access accepted -> its log confirmed on chain (p95)
during that load, onchain_paced_p95_s the same at --paced-rps offered for --paced-seconds (the throughput
goal, 300); block_arrival_p95_s: how long after its timestamp the node's own geth has a block (the chain's
own lateness, which every confirmation waits for); partition_recovery_s: one
member's host cut off for --partition-seconds under load, heal -> its backlog confirmed; lost /
duplicated: accepted access records missing from / repeated on the canonical chain, over the whole run.
onchain_chain_floor_p95_s (and onchain_paced_chain_floor_p95_s): during the same load, plain transfers sent to
the same geth at random instants and watched every 10 ms, send -> seen with the confirmations: the chain's
own share of onchain_p95_s, with nothing of the node in it; chain_floor_idle_p95_s the same before any load, and
chain_floor_idle_every_signer_p95_s with each transaction also sent to every other signer's geth (no peer travel).

Evidence: ``anchor_hashes_per_s`` is the figure `bench.py anchor` gives on anvil, measured the same way
(--hashes accepted by two callers, batches of --batch leaves, done when every batch's anchor transaction
is in a block: anvil has no reorgs, so it waits for no confirmations either). The anchorer sends every
due batch before waiting for any, so batches closed meanwhile share a block, and what a 1 s block chain
adds over anvil's automine is about one block period for the last batch. ``anchor_confirmed_hashes_per_s``
is the same run again, done only when every batch has --confirmations blocks on top (what a Clique node
settles on). ``anchor_anvil_same_run_hashes_per_s`` is the anvil run itself, repeated here while the
network runs, so the two differ only in the chain. The intake (hashing and committing 1M leaves, one
core's work) is what sets all three: on a shared 2-core machine they fall with the load average.

Members run on their own hosts where the machine allows it (network namespaces, node/network/netns.py), else
behind loopback TCP proxies; ``partition_method`` says which.
"""
from __future__ import annotations

import os
import tempfile
import threading
import time
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

describe = "network: node on its own geth of a 4-signer Clique network: rps, on-chain p95, anchoring, partition recovery"


def add_arguments(parser) -> None:
    parser.add_argument("--requests", type=int, default=1500)
    parser.add_argument("--clients", type=int, default=4, help="client processes (4 connections each)")
    parser.add_argument("--paced-rps", type=float, default=300.0, help="offered load for onchain_paced_p95_s (the rps goal)")
    parser.add_argument("--paced-seconds", type=float, default=20.0)
    parser.add_argument("--idle-seconds", type=float, default=15.0, help="bare transactions alone, before any load")
    parser.add_argument("--hashes", type=int, default=1_000_000, help="evidence hashes to accept and anchor (as `anchor`)")
    parser.add_argument("--batch", type=int, default=100_000, help="max leaves per anchored batch (as `anchor`)")
    parser.add_argument("--partition-seconds", type=float, default=30.0)
    parser.add_argument("--confirmations", type=int, default=2)


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    return values[int(q * (len(values) - 1))]


def _p95(values: list[float]) -> float | None:
    return round(_percentile(values, 0.95), 3) if values else None


def _bare_transactions(urls: list[str], key: bytes, chain_id: int, confirmations: int, start_at: float, stop,
                       out) -> None:
    """The chain's own floor under onchain_p95_s, in a process of its own: plain transfers, each signed ahead and sent
    at a random instant (about 20 a second, from ``start_at`` until ``stop``) to the geth at ``urls[0]`` (then to
    the others, if any, so that no signer waits for it to travel between peers), and watched there every 10 ms until
    ``confirmations`` blocks are on top of the block holding it. Puts on ``out`` the seconds from each send to the
    first look that found it confirmed: what any client of this chain waits for, with nothing of the node in it."""
    import random
    from urllib.parse import urlsplit

    from eth_account import Account

    from node.chain.rpc_client import KeepAliveRpc

    account = Account.from_key(key)
    rpc, *others = [KeepAliveRpc(w.hostname, w.port, w.path or "/") for w in map(urlsplit, urls)]
    nonce = int(rpc.request("eth_getTransactionCount", [account.address, "pending"])["result"], 16)
    price = 2 * int(rpc.request("eth_gasPrice", [])["result"], 16)
    sent: dict[str, float] = {}  # hash -> when sent
    blocks: dict[str, int] = {}  # hash -> its block
    waits: list[float] = []
    next_send = start_at + random.uniform(0, 0.1)
    signed, last_head = None, None
    while not stop.is_set() or sent:
        if signed is None and not stop.is_set():
            signed = account.sign_transaction({"to": account.address, "value": 0, "gas": 21_000, "gasPrice": price,
                                               "nonce": nonce, "chainId": chain_id})
        if signed is not None and time.time() >= next_send:
            raw = "0x" + bytes(signed.raw_transaction).hex()
            answer = rpc.request("eth_sendRawTransaction", [raw])
            if "error" in answer:
                raise RuntimeError(f"bare transaction refused: {answer['error']}")
            sent[answer["result"]] = time.time()
            for other in others:  # after the first: a geth that has it from a peer already answers "already known"
                other.request("eth_sendRawTransaction", [raw])
            nonce, signed, next_send = nonce + 1, None, time.time() + random.uniform(0, 0.1)
        seen, head = time.time(), int(rpc.request("eth_blockNumber", [])["result"], 16)
        if head != last_head:  # a transaction gets a block only with a new head: receipts once a block, not every look
            waiting = [h for h in sent if h not in blocks]
            for h, answer in zip(waiting, rpc.batch([("eth_getTransactionReceipt", [h]) for h in waiting])):
                if answer.get("result"):
                    blocks[h] = int(answer["result"]["blockNumber"], 16)
            last_head = head
        for h in [h for h, b in blocks.items() if head >= b + confirmations]:
            waits.append(seen - sent.pop(h))
            del blocks[h]
        time.sleep(0.01)
    out.put(waits)


def run(args, progress) -> dict:
    import multiprocessing as mp

    from eth_account import Account
    from sqlalchemy import create_engine, text

    from benches.machine import core_speed_ms
    from benches.node_access import _cpu_times, _load
    from node.access.log import AccessLog, LogRecord
    from node.chain.anvil import AnvilNode
    from node.chain.deployment import GenesisMember, Purpose, Role, attach, deploy_consortium
    from node.chain.gateway import ChainGateway
    from node.chain.ledger import Ledger, dataset_id
    from node.evidence.service import EvidenceService, EvidenceSettings
    from node.evidence.store import create_store_engine as evidence_engine
    from node.network.clique import CliqueNetwork, init_clique
    from node.store.db import create_store_engine

    result: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        task = progress.add_task("4-signer Clique network", total=None)
        init_clique(base / "net", validators=4, confirmations=args.confirmations, scrypt_n=2**12)
        net = CliqueNetwork.open(base / "net", hosts="auto").start(timeout=240)
        try:
            deployment = net.deploy()
            ledgers = {n: Ledger(attach(net.gateway(n), deployment), net.keys(n).account)
                       for n in ("insurer-east", "insurer-west", "regulator")}
            shop = net.spec.member("shop-platform").address
            grants = {n: ledgers[n].grant(shop, dataset_id("claims"), Purpose.STATISTICS, expires_at=int(time.time()) + 86400)
                      for n in ("insurer-east", "insurer-west")}
            progress.update(task, description="node process on its own geth: authorized queries")

            # 1. A real node process (insurer-east) on its own geth, loaded by separate client processes.
            home = base / "node-east"
            node = net.spawn_node("insurer-east", home, confirmations=args.confirmations)
            try:
                key = bytes(net.keys("shop-platform").account.key)
                eng = create_engine(f"sqlite:///{home / 'node.db'}")
                gw_east = ledgers["insurer-east"].gateway
                bare_key = bytes(net.keys("regulator").account.key)  # idle until step 4, which only reads
                floors: list[list[float]] = []  # per load: the bare transactions' send -> seen confirmed

                @contextmanager
                def bare_transactions(start_at: float, every_signer: bool = False):
                    """Plain transfers sent and watched in a process of their own while the body runs."""
                    urls = [net.url("insurer-east")] + ([net.url(n) for n in net.nodes if n != "insurer-east"]
                                                        if every_signer else [])
                    spawn = mp.get_context("spawn")
                    stop, out = spawn.Event(), spawn.Queue()
                    probe = spawn.Process(target=_bare_transactions, args=(
                        urls, bare_key, net.spec.chain_id, args.confirmations, start_at, stop, out))
                    probe.start()
                    waits: list[float] = []
                    try:
                        yield waits
                    finally:
                        stop.set()
                        try:
                            waits.extend(out.get(timeout=120))
                        finally:
                            probe.join(timeout=10)
                            if probe.is_alive():
                                probe.terminate()

                # 0. The chain's floor with nothing else running: what the load adds to it shows in 1a and 1b.
                progress.update(task, description="bare transactions on the idle network")
                with bare_transactions(time.time()) as idle_floor:
                    time.sleep(args.idle_seconds)
                result["chain_floor_idle_p95_s"] = _p95(idle_floor)
                result["chain_floor_idle_samples"] = len(idle_floor)
                # The same, each transaction also sent straight to every other geth: what travelling between peers
                # adds (geth sends a transaction whole to the square root of its peers and announces it to the rest).
                with bare_transactions(time.time(), every_signer=True) as idle_floor:
                    time.sleep(args.idle_seconds)
                result["chain_floor_idle_every_signer_p95_s"] = _p95(idle_floor)

                def load(requests: int, paced_rps: float | None) -> tuple[list, float]:
                    """Clients in their own processes; returns their results and when the load began (wall clock)."""
                    start_at = time.time() + 10
                    job = (node.url, key, net.spec.member("insurer-east").address, net.spec.chain_id,
                           requests // args.clients, start_at, [{}], paced_rps / args.clients if paced_rps else None)
                    with bare_transactions(start_at) as floor:
                        with mp.get_context("spawn").Pool(args.clients) as pool:
                            results = pool.map(_load, [job] * args.clients)
                    floors.append(floor)
                    return results, start_at

                def settled_since(since: float) -> dict:
                    """Accepted -> confirmed on chain for the records accepted since ``since``, once all are settled."""
                    deadline = time.monotonic() + 180
                    while time.monotonic() < deadline:
                        with eng.connect() as conn:
                            if not conn.execute(text("select count(*) from chain_log_outbox where state != 'mined'")).scalar():
                                break
                        time.sleep(0.5)
                    with eng.connect() as conn:
                        mined = list(conn.execute(text("select created_at, mined_at, block_number, sent_at from chain_log_outbox "
                                                       "where state='mined' and created_at >= :since"), {"since": since}))
                    heights = {b for _, _, b, _ in mined}
                    stamps = {b: gw_east.block_time(b) for b in heights | {b + args.confirmations for b in heights}}

                    # Where the time goes: accepted -> the timestamp of the block holding it (a signer fills its block
                    # as the previous one arrives, so 1-2 block periods), then the confirmations. The node's own
                    # share: accepted -> sent, and the confirming block's time -> the node marked it settled.
                    return {"p95": _p95([m - c for c, m, _, _ in mined]),
                            "in_block_p95": _p95([stamps[b] - c for c, _, b, _ in mined]),
                            "send_p95": _p95([s - c for c, _, _, s in mined]),
                            "settle_p95": _p95([m - stamps[b + args.confirmations] for _, m, b, _ in mined]),
                            "records": len(mined)}

                # 1a. As fast as the node answers: the throughput, and the latency at that load.
                cpu_before = sum(_cpu_times(node.process.pid))  # `ip netns exec` execs: the pid is the node's
                results, began = load(args.requests, None)
                cpu_used = sum(_cpu_times(node.process.pid)) - cpu_before
                elapsed = max(r[2] for r in results) - min(r[1] for r in results)
                served = sum(r[0].count(200) for r in results)
                result["authorized_rps"] = round(served / elapsed, 1)
                at_max = settled_since(began)
                result["served"] = served
                # the node's own cost, which machine sharing does not change (compare `bench.py node-access`)
                result["node_cpu_ms_per_request"] = round(cpu_used * 1000 / max(sum(len(r[0]) for r in results), 1), 3)
                result["not_served"] = sum(len(r[0]) for r in results) - served
                result["status_codes"] = dict(Counter(str(code) for r in results for code in r[0]))

                # 1b. The latency at the load the consortium is sized for (--paced-rps, the throughput goal), offered
                # at that rate for --paced-seconds: at 1a's load the machine's two cores are saturated (node, client
                # processes and four geths), so every process there, the signers too, runs late.
                progress.update(task, description=f"node process on its own geth: {args.paced_rps:.0f} requests/s offered")
                arrivals: dict[int, float] = {}  # block -> when insurer-east's geth first had it (the chain's own lateness)
                watching = threading.Event()

                def watch_heads() -> None:
                    while not watching.is_set():
                        head = gw_east.raw_request("eth_blockNumber", []).get("result")
                        if head is not None:
                            arrivals.setdefault(int(head, 16), time.time())
                        time.sleep(0.01)

                watcher = threading.Thread(target=watch_heads, daemon=True)
                watcher.start()
                paced_results, began = load(int(args.paced_rps * args.paced_seconds), args.paced_rps)
                watching.set()
                watcher.join()
                paced = settled_since(began)
                lateness = [seen - gw_east.block_time(b) for b, seen in sorted(arrivals.items())[1:]]  # the first: seen late
                result["block_arrival_p95_s"] = _p95(lateness)
                paced_elapsed = max(r[2] for r in paced_results) - min(r[1] for r in paced_results)
                result["paced_rps"] = round(sum(r[0].count(200) for r in paced_results) / paced_elapsed, 1)
                at_max["chain_floor_p95"], paced["chain_floor_p95"] = _p95(floors[0]), _p95(floors[1])
                at_max["chain_floor_samples"], paced["chain_floor_samples"] = len(floors[0]), len(floors[1])
                for prefix, figures in (("onchain_", at_max), ("onchain_paced_", paced)):
                    for name, value in figures.items():
                        result[prefix + name + ("_s" if not name.endswith(("records", "samples")) else "")] = value
                with eng.connect() as conn:
                    east_hashes = [bytes(r[0]) for r in conn.execute(text("select query_hash from chain_log_outbox"))]
                result["not_served"] += sum(len(r[0]) - r[0].count(200) for r in paced_results)
            finally:
                node.stop()

            # 2. Evidence anchoring through insurer-east's own geth: in a block (as on anvil), then settled.
            def anchoring(member: Ledger, db: str, what: str) -> tuple[float, float]:
                progress.update(task, description=f"evidence anchoring: {what}")
                evidence = EvidenceService(evidence_engine(base / db), member,
                                           EvidenceSettings(max_batch_size=args.batch, max_hashes_per_request=50_000))
                items = [(os.urandom(32), f"CLM-{i // 4:010d}", "invoice") for i in range(args.hashes)]
                chunks = [items[i:i + 50_000] for i in range(0, len(items), 50_000)]
                evidence.start()
                t0 = time.perf_counter()

                def intake(k: int) -> None:
                    for chunk in chunks[k::2]:
                        evidence.accept_bulk(chunk)

                callers = [threading.Thread(target=intake, args=(k,)) for k in range(2)]
                for t in callers:
                    t.start()
                for t in callers:
                    t.join()
                accepted_s = time.perf_counter() - t0
                evidence.close_open_batch()
                evidence.wake()
                if not evidence.wait_until_anchored(timeout=900):
                    raise RuntimeError("evidence not anchored within 900 s")
                elapsed = time.perf_counter() - t0
                evidence.stop()
                return accepted_s, elapsed

            def east_on_geth(confirmations: int) -> Ledger:
                return Ledger(attach(net.gateway("insurer-east", confirmations=confirmations), deployment),
                              net.keys("insurer-east").account)

            result["anchor_core_speed_ms"] = core_speed_ms()  # the VM's core speed just before (lower is faster)
            accepted_s, elapsed = anchoring(east_on_geth(0), "evidence-mined.db", "geth, in a block")
            result["anchor_hashes_per_s"] = round(args.hashes / elapsed)
            result["anchor_intake_only_hashes_per_s"] = round(args.hashes / accepted_s)
            result["anchor_elapsed_s"] = round(elapsed, 2)
            _, elapsed = anchoring(east_on_geth(args.confirmations), "evidence-confirmed.db",
                                   f"geth, {args.confirmations} confirmations")
            result["anchor_confirmed_hashes_per_s"] = round(args.hashes / elapsed)
            result["anchor_confirmed_elapsed_s"] = round(elapsed, 2)
            # Baseline in the same run, under the same machine load (the geth network keeps running):
            # `bench.py anchor`'s set-up, an automining anvil, so only the chain differs.
            with AnvilNode() as anvil:
                gw = ChainGateway.connect(anvil.url)
                member, deployer = Account.create(), Account.create()
                for acct in (member, deployer):
                    gw.fund(acct.address)
                deploy_consortium(gw, deployer, [GenesisMember(member.address, "insurer_bench", Role.INSURER)])
                accepted_s, elapsed = anchoring(Ledger(gw, member), "evidence-anvil.db", "anvil baseline")
            result["anchor_anvil_same_run_hashes_per_s"] = round(args.hashes / elapsed)
            result["anchor_anvil_same_run_intake_only_hashes_per_s"] = round(args.hashes / accepted_s)
            result["anchor_hashes"] = args.hashes
            result["anchor_batch"] = args.batch

            # 3. insurer-west's host partitioned under load; its backlog after the heal.
            progress.update(task, description=f"partition insurer-west for {args.partition_seconds:.0f} s")
            west_log = AccessLog(create_store_engine(f"sqlite:///{base / 'west.db'}"), ledgers["insurer-west"],
                                 flush_seconds=0.3).start()
            west_records = [LogRecord("access", shop, dataset_id("claims"), int(Purpose.STATISTICS), os.urandom(32),
                                      grant_id=grants["insurer-west"], rows=1) for _ in range(300)]
            stop = threading.Event()

            def load() -> None:
                pause = (args.partition_seconds + 4) / len(west_records)
                for r in west_records:
                    if stop.is_set():
                        return
                    west_log.append(r)
                    time.sleep(pause)

            loader = threading.Thread(target=load)
            loader.start()
            time.sleep(2)
            net.isolate("insurer-west")
            time.sleep(args.partition_seconds)
            net.heal()
            healed = time.monotonic()
            loader.join()
            deadline = time.monotonic() + 300
            while west_log.counts() != {"mined": len(west_records)} and time.monotonic() < deadline:
                time.sleep(0.2)
            result["partition_recovery_s"] = round(time.monotonic() - healed, 1)
            stop.set()
            west_log.stop()

            # 4. Lost and duplicated, against the canonical chain as the regulator's own geth sees it.
            gw = ledgers["regulator"].gateway
            # Identical queries have identical query hashes: compare counts per hash, not membership.
            onchain = Counter(bytes(e["args"]["queryHash"]) for e in gw.events(
                "DataUseAuthorization", "AccessRecorded", from_block=deployment.deployment_block))
            accepted = Counter(east_hashes + [r.query_hash for r in west_records])
            result["lost"] = sum(max(0, n - onchain[h]) for h, n in accepted.items())
            result["duplicated"] = sum(max(0, onchain[h] - n) for h, n in accepted.items())
            result["unknown_on_chain"] = sum(n for h, n in onchain.items() if h not in accepted)
            result["accepted_records"] = sum(accepted.values())
            result["confirmations"] = args.confirmations
            result["block_period_s"] = net.spec.period
            result["signers"] = 4
            result["partition_method"] = net.partition_method
            result["load_average"] = [round(x, 2) for x in os.getloadavg()]
            result["gateway_rebroadcasts"] = sum(led.gateway.resends for led in ledgers.values())
        finally:
            net.stop()
            progress.remove_task(task)
    return result
