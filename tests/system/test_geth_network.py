"""The consortium on a real 4-signer geth v1.13.15 Clique network (1 s blocks), across hosts that fail.

Every member's code talks to its own geth. Where the machine allows it (root and iproute2) each member's
geth and node run in a network namespace of their own, joined by veth to a bridge, and a partition is a
link taken down (node/network/netns.py); otherwise peer links run through cuttable loopback TCP proxies
(node/chain/links.py). Every test id names which ran: ``[hosts=namespaces]`` or ``[hosts=proxies]``
(CONSORTIUM_TEST_HOSTS=proxies forces the fallback).
Needs the geth that scripts/setup.sh builds; a missing build fails with the command to run, never skipped.
"""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from evidence_testing import audit_exactly_once
from web3 import Web3

from node.access.log import AccessLog, LogRecord
from node.audit import schema as s
from node.audit.indexer import AuditIndexer
from node.audit.verify import verify_index
from node.chain.compiler import PUSH0, compile_contracts, opcodes
from node.chain.deployment import Deployment, Purpose, Role, Status, attach
from node.chain.errors import ChainError
from node.chain.ledger import Ledger, dataset_id
from node.client import NodeClient
from node.network.clique import DEFAULT_MEMBERS, CliqueNetwork, init_clique
from node.network.netns import namespaces_available
from node.store.db import create_store_engine

# CONSORTIUM_TEST_HOSTS=proxies runs the fallback on a machine that has namespaces too.
HOSTS = os.environ.get("CONSORTIUM_TEST_HOSTS") or ("namespaces" if namespaces_available()[0] else "proxies")
EAST, WEST, SHOP, REGULATOR, AUDITOR, NEWCOMER = ("insurer-east", "insurer-west", "shop-platform", "regulator",
                                                  "auditor", "newcomer")
NODE_MEMBERS = (EAST, WEST, SHOP, REGULATOR)  # each runs a node process besides its geth


@pytest.fixture(scope="module", params=[HOSTS], ids=[f"hosts={HOSTS}"])
def net(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp("clique") / "net"
    # Test keys use a cheap scrypt cost; they are still encrypted keystores that geth unlocks.
    init_clique(folder, members=DEFAULT_MEMBERS, validators=4, candidates=((NEWCOMER, Role.INSURER),),
                confirmations=2, scrypt_n=2**12)
    network = CliqueNetwork.open(folder, hosts=request.param)
    print(f"partition method: {network.partition_method}")
    network.start(timeout=240)
    try:
        assert network.hosts == request.param
        network.deploy(endpoints={n: network.endpoint(n) for n in NODE_MEMBERS})
        network.ledgers = {}
        yield network
    finally:
        leftovers = network.netns
        network.stop()
        if leftovers is not None:  # nothing of this run may outlive it
            assert leftovers.leftovers() == []
            assert leftovers.run_id not in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout


@pytest.fixture(scope="module")
def nodes(net, tmp_path_factory):
    """A node process per member, on its host, each on its own geth; the signers' nodes vote the validator set."""
    from node.sample_data import generate, write_member_csvs
    from node.store.datasets import import_csv, init_datasets

    base = tmp_path_factory.mktemp("nodes")
    world = generate()
    rows = {EAST: world.insurers["insurer_a"], WEST: world.insurers["insurer_b"]}
    for name in (EAST, WEST, SHOP):
        data = {"user_features": world.user_features} if name == SHOP else \
            {"policies": rows[name].policies, "claims": rows[name].claims, "fraud_list": rows[name].fraud_list}
        engine = create_store_engine(f"sqlite:///{(base / name / 'node.db').resolve()}")
        init_datasets(engine)
        for dataset, path in write_member_csvs(base / name / "import", data).items():
            import_csv(engine, dataset, path)
        engine.dispose()
    validators = net.spec.validator_accounts()
    procs = {}

    def spawn(name: str) -> None:
        procs[name] = net.spawn_node(name, base / name, timeout=240, log_flush_seconds=0.5, runs_validator=True,
                                     validator_accounts=validators)

    try:
        with ThreadPoolExecutor(len(NODE_MEMBERS)) as pool:  # start together: each start-up is mostly waiting
            list(pool.map(spawn, NODE_MEMBERS))
        net.world = world
        yield procs
    finally:
        for proc in procs.values():
            proc.stop()


def ledger(net, name: str) -> Ledger:
    """The member's ledger on its own chain node, settling after the network's confirmations."""
    if name not in net.ledgers:
        gateway = attach(net.gateway(name), net.deployment)
        net.ledgers[name] = Ledger(gateway, net.keys(name).account)
    return net.ledgers[name]


def wait_for(predicate, timeout: float, what: str, step: float = 0.3):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def grant_to_shop(net, owner: str) -> int:
    owner_ledger = ledger(net, owner)
    return owner_ledger.grant(net.spec.member(SHOP).address, dataset_id("claims"), Purpose.STATISTICS,
                              expires_at=int(time.time()) + 86_400)


def access_records(net, grant_id: int, n: int) -> list[LogRecord]:
    shop = net.spec.member(SHOP).address
    return [LogRecord("access", shop, dataset_id("claims"), int(Purpose.STATISTICS), os.urandom(32),
                      grant_id=grant_id, rows=i) for i in range(n)]


def onchain_query_hashes(net, name: str, owner: str) -> list[bytes]:
    gw = ledger(net, name).gateway
    return [bytes(e["args"]["queryHash"]) for e in gw.events("DataUseAuthorization", "AccessRecorded",
                                                             from_block=net.deployment.deployment_block)
            if e["args"]["owner"] == net.spec.member(owner).address]


def assert_exactly_once(net, owner: str, sent: list[LogRecord]) -> None:
    onchain = onchain_query_hashes(net, REGULATOR, owner)
    mine = {r.query_hash for r in sent}
    found = [h for h in onchain if h in mine]
    assert len(found) == len(set(found)), "an access record reached the chain twice"
    assert set(found) == mine, f"{len(mine - set(found))} accepted access records never reached the chain"


def index_matches_chain(net, engine, name: str) -> None:
    """The audit index holds exactly the canonical chain's access and denial logs."""
    gw = ledger(net, name).gateway
    expected = set()
    for event in ("AccessRecorded", "DenialRecorded"):
        for e in gw.events("DataUseAuthorization", event, from_block=net.deployment.deployment_block):
            expected.add((s.pos_of(e["blockNumber"], e["logIndex"]), bytes(e["args"]["queryHash"])))
    with engine.connect() as conn:
        indexed = {(pos, bytes(q)) for pos, q in conn.execute(s.log.select().with_only_columns(s.log.c.pos, s.log.c.query_hash))}
    head = gw.block_number()
    expected = {e for e in expected if s.block_of(e[0]) <= head}
    assert indexed == expected


_SERVE = "import socket,sys; s=socket.socket(); s.bind(('0.0.0.0', 7000)); s.listen(); print('up', flush=True); " \
         "[c.close() for c in iter(lambda: s.accept()[0], None)]"
_DIAL = "import socket,sys; socket.create_connection((sys.argv[1], 7000), timeout=2).close()"


def test_member_hosts_have_their_own_addresses_a_cut_link_partitions_and_nothing_is_left_behind(tmp_path):
    from node.network.netns import NamespaceHosts, sweep_stale

    if not namespaces_available()[0]:  # the fallback: this machine gives no namespaces, so the network uses proxies
        init_clique(tmp_path / "n", validators=1, members=DEFAULT_MEMBERS[:1], scrypt_n=2**12)
        assert CliqueNetwork.open(tmp_path / "n", hosts="auto").hosts == "proxies"
        return
    hosts = NamespaceHosts(["a", "b"]).create()
    server = None
    try:
        a, b = hosts.hosts["a"], hosts.hosts["b"]
        assert len({a.wan_ip, b.wan_ip, a.lan_ip, b.lan_ip}) == 4
        server = subprocess.Popen([*hosts.prefix("a"), sys.executable, "-c", _SERVE], stdout=subprocess.PIPE, text=True)
        assert server.stdout.readline().strip() == "up"

        def dial(src: list[str], ip: str) -> bool:
            return subprocess.run([*src, sys.executable, "-c", _DIAL, ip], capture_output=True, timeout=20).returncode == 0

        assert dial(hosts.prefix("b"), a.wan_ip)  # member to member over the bridge
        assert dial([], a.lan_ip)  # the member's own side
        hosts.cut("a")
        assert not dial(hosts.prefix("b"), a.wan_ip)
        assert dial([], a.lan_ip)  # a partition cuts the member off from the others, not from its own side
        hosts.heal()
        assert dial(hosts.prefix("b"), a.wan_ip)
        hosts.partition(["a"], ["b"])
        assert not dial(hosts.prefix("b"), a.wan_ip)
        hosts.heal()
        assert dial(hosts.prefix("b"), a.wan_ip)
    finally:
        hosts.remove()  # also ends the server still inside a's namespace
        if server is not None:
            server.wait(10)
    assert hosts.leftovers() == []
    assert hosts.run_id not in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    # A run killed before its clean-up (SIGKILL) is swept by the next one.
    crashed = subprocess.Popen([sys.executable, "-c", "import time; from node.network.netns import NamespaceHosts; "
                                "print(NamespaceHosts(['a']).create().run_id, flush=True); time.sleep(120)"],
                               stdout=subprocess.PIPE, text=True)
    run_id = crashed.stdout.readline().strip()
    crashed.kill()
    crashed.wait(10)
    assert run_id in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert run_id in sweep_stale()
    assert NamespaceHosts(["a"], run_id=run_id).leftovers() == []


def test_a_node_config_names_validator_accounts_as_addresses(tmp_path):
    from node.errors import ConfigError
    from node.runtime.settings import load_settings

    path = tmp_path / "node.toml"
    base = 'name = "m"\nhome = "."\nkeys = "k"\nrpc_url = "http://127.0.0.1:8545"\ndeployment = "d.json"\n'
    path.write_text(base + 'runs_validator = true\nvalidator_accounts = ["0x' + "ab" * 20 + '"]\n')
    settings = load_settings(path)
    assert settings.runs_validator and settings.validator_accounts == [Web3.to_checksum_address("0x" + "ab" * 20)]
    path.write_text(base + 'runs_validator = true\nvalidator_accounts = ["insurer-east"]\n')
    with pytest.raises(ConfigError, match="validator_accounts"):
        load_settings(path)


def test_contracts_are_compiled_for_the_networks_evm_version(net):
    assert net.deployment.evm_version == "paris"
    assert Deployment.load(net.spec.folder / "deployment.json").evm_version == "paris"
    paris, prague = compile_contracts(evm_version="paris"), compile_contracts(evm_version="prague")
    for name in net.deployment.contracts:
        assert PUSH0 not in opcodes(paris[name].bytecode), name
    assert any(PUSH0 in opcodes(prague[n].bytecode) for n in net.deployment.contracts)
    # The same sources compiled for anvil's prague do not run on this chain (no PUSH0 before Shanghai).
    gw = net.gateway(WEST, artifacts=prague)
    with pytest.raises(ChainError):
        gw.deploy_contract(net.keys(WEST).account, "DataUseAuthorization", net.deployment.contracts["ConsortiumRegistry"])


def test_consortium_scenario_through_member_nodes_each_on_its_own_geth(net, nodes):
    from node.demo import _claim_evidence, _joint_statistics, _regulator_view

    keys = {m.name: net.keys(m.name) for m in net.spec.members}
    chain_id = net.spec.chain_id
    for name, proc in nodes.items():  # each node's chain is its own geth, on its own host
        assert proc.url == net.local_url(name)
        assert f"rpc_url = \"{net.own_rpc_url(name)}\"" in proc.config.read_text()

    def client(caller: str, target: str) -> NodeClient:
        return NodeClient(net.local_url(target), keys[caller].account, keys[target].address, chain_id, timeout=120)

    def step(_title, action):
        return action()

    now = ledger(net, EAST).gateway.block_time()
    east = client(EAST, EAST)
    wait_for(lambda: all(client(n, n).request("GET", "/ready").status_code == 200 for n in nodes), 120,
             "every node ready (statistics key registered on chain)")
    grant = east.request("POST", "/grants", {"grantee": keys[SHOP].address, "dataset": "claims", "purpose": "STATISTICS",
                                             "expires_at": now + 86400, "consent_ref": "0x" + "ab" * 32})
    assert grant.status_code == 201, grant.text
    served = client(SHOP, EAST).query("claims", "STATISTICS", metric="count")
    refused = client(SHOP, EAST).query("claims", "PRICING", metric="count")
    assert served.status_code == 200 and refused.status_code == 403, (served.text, refused.text)

    jobs = _joint_statistics(step, client, keys, net.world, now)
    for kind in ("horizontal", "vertical"):  # the private answer equals the plaintext one computed here
        job, plain, match = jobs[kind]
        assert job["state"] == "PUBLISHED", job
        assert plain and match, f"{kind} job differs from plaintext: {job.get('result')} vs {plain}"
    evidence = _claim_evidence(step, client, keys, chain_id, {n: net.local_url(n) for n in nodes})
    assert evidence["anchored"] and evidence["auditor_valid"] and evidence["tampered_rejected"], evidence

    def drained() -> bool:
        counts = [client(n, n).request("GET", "/ready").json().get("access_log", {"pending": 1}) for n in nodes]
        return all(c.get("pending", 0) == 0 and c.get("sent", 0) == 0 for c in counts)

    wait_for(drained, 120, "every access and refusal confirmed on chain")
    events = {name: [e["args"] for e in ledger(net, AUDITOR).gateway.events("DataUseAuthorization", name,
                                                                          from_block=net.deployment.deployment_block)]
              for name in ("AccessRecorded", "DenialRecorded")}
    shop, owner = keys[SHOP].address, keys[EAST].address
    assert any(e["requester"] == shop and e["owner"] == owner and e["purpose"] == int(Purpose.STATISTICS)
               for e in events["AccessRecorded"])
    assert any(e["requester"] == shop and e["owner"] == owner and e["purpose"] == int(Purpose.PRICING)
               for e in events["DenialRecorded"])
    view = _regulator_view(client, ledger(net, REGULATOR).gateway.block_number())
    check = view["index_matches_chain"]
    assert check["matches"] and check["chain_events"] == check["index_events"] > 0, check
    assert view["denial_events"] >= 1


def test_the_validator_set_follows_governance_voted_by_the_member_nodes(net, nodes):
    """Admission and expulsion on the registry; the signers' own node processes (runs_validator) do the voting."""
    newcomer = net.spec.member(NEWCOMER).address
    signers = lambda: [a.lower() for a in net.nodes[EAST].signers()]  # noqa: E731
    assert newcomer.lower() not in signers()
    assert newcomer in net.spec.validator_accounts()
    for name in NODE_MEMBERS:  # the harness runs no governor: only the nodes can propose
        assert "runs_validator = true" in nodes[name].config.read_text()
    proposal = ledger(net, EAST).propose_member(newcomer, NEWCOMER, Role.INSURER)
    # Four of the five founders (more than two thirds) vote, each from its own chain node, in parallel;
    # a fixed gas budget, since an estimate made before the others are mined misses the admitting vote's cost.
    votes = [ledger(net, v).gateway.submit(net.keys(v).account, ledger(net, v).registry.functions.vote(proposal),
                                           gas=1_000_000) for v in (EAST, WEST, SHOP, REGULATOR)]
    for sent in votes:
        sent.wait(120)
    assert ledger(net, EAST).member(newcomer).status == Status.ACTIVE
    wait_for(lambda: newcomer.lower() in signers(), 90, "the newcomer voted in by the nodes")
    start = net.nodes[EAST].head()
    wait_for(lambda: any(net.nodes[EAST].block_signer(b).lower() == newcomer.lower()
                         for b in range(start + 1, net.nodes[EAST].head() + 1)), 60, "a block sealed by the newcomer")
    # expulsion is a proposal passed by the same supermajority: 5 of the 6 members not expelled
    expulsion = ledger(net, REGULATOR).propose_expulsion(newcomer)
    votes = [ledger(net, v).gateway.submit(net.keys(v).account, ledger(net, v).registry.functions.vote(expulsion),
                                           gas=1_000_000) for v in (EAST, WEST, SHOP, REGULATOR, AUDITOR)]
    for sent in votes:
        sent.wait(120)
    assert ledger(net, EAST).member(newcomer).status == Status.EXPELLED
    wait_for(lambda: newcomer.lower() not in signers(), 90, "the expelled member voted out by the nodes")
    after = net.nodes[EAST].head()
    net.wait_blocks(6, timeout=60, node=EAST)
    sealers = {net.nodes[EAST].block_signer(b).lower() for b in range(after + 1, after + 7)}
    assert newcomer.lower() not in sealers
    assert net.spec.member(AUDITOR).address.lower() not in signers()  # runs no validator: never proposed


def _load(log: AccessLog, records: list[LogRecord], seconds: float, stop: threading.Event) -> None:
    pause = seconds / len(records)
    for r in records:
        if stop.is_set():
            return
        log.append(r)
        time.sleep(pause)


def test_a_signer_killed_mid_load_blocks_continue_and_nothing_is_lost(net, tmp_path):
    grant_id = grant_to_shop(net, EAST)
    log = AccessLog(create_store_engine(f"sqlite:///{tmp_path / 'east-kill.db'}"), ledger(net, EAST),
                    flush_seconds=0.3).start()
    records = access_records(net, grant_id, 120)
    stop = threading.Event()
    loader = threading.Thread(target=_load, args=(log, records, 8.0, stop))
    loader.start()
    try:
        time.sleep(3)
        net.kill(SHOP)  # a signer's host dies without shutting down
        head = net.wait_blocks(4, timeout=60, node=EAST)
        assert head > 0
        loader.join(60)
        wait_for(lambda: log.counts() == {"mined": 120}, 120, "every record confirmed with a signer down")
    finally:
        stop.set()
        log.stop()
        net.restart(SHOP)
    assert_exactly_once(net, EAST, records)
    net.wait_connected(timeout=120)


def test_a_member_partitioned_for_30_s_under_load_catches_up_exactly_once(net, nodes):
    """insurer-west's host is cut off from the other members for 30 s while its node serves queries and takes
    evidence (from its own side); after the heal its queued access records and evidence reach the chain once."""
    from collections import Counter

    from sqlalchemy import create_engine, text

    keys = {m.name: net.keys(m.name) for m in net.spec.members}
    chain_id, west = net.spec.chain_id, keys[WEST].address
    operator = NodeClient(net.local_url(WEST), keys[WEST].account, west, chain_id, timeout=120)
    grant = operator.request("POST", "/grants", {"grantee": keys[SHOP].address, "dataset": "claims", "purpose": "STATISTICS",
                                                 "expires_at": ledger(net, WEST).gateway.block_time() + 86400,
                                                 "consent_ref": "0x" + "cd" * 32})
    assert grant.status_code == 201, grant.text
    # this test's records only: the node logged its part in the scenario's jobs before (all confirmed then)
    start_block, started = ledger(net, REGULATOR).gateway.block_number(), time.time()
    statuses: list[int] = []
    stop = threading.Event()

    def load() -> None:  # shop-platform's authorized queries, 150 over 34 s
        shop = NodeClient(net.local_url(WEST), keys[SHOP].account, west, chain_id, timeout=120)
        for _ in range(150):
            if stop.is_set():
                return
            statuses.append(shop.query("claims", "STATISTICS", metric="count").status_code)
            time.sleep(34 / 150)

    loader = threading.Thread(target=load)
    claims = [f"CLM-part-{os.urandom(4).hex()}-{i}" for i in range(20)]
    try:
        loader.start()
        time.sleep(2)
        net.isolate(WEST)
        for claim in claims:
            r = operator.request("POST", "/evidence/hashes", {"sha256": os.urandom(32).hex(), "claim_id": claim,
                                                              "doc_type": "invoice"})
            assert r.status_code == 200, r.text
            time.sleep(1.0)
        time.sleep(10)
        net.heal()
        healed = time.monotonic()
        loader.join(120)

        def caught_up() -> bool:
            log = operator.request("GET", "/ready").json().get("access_log", {"pending": 1})
            evidence = operator.request("GET", "/evidence/status").json()
            return log.get("pending", 0) == 0 and log.get("sent", 0) == 0 and \
                evidence["anchored_leaves"] == evidence["leaves"]

        wait_for(caught_up, 240, "the partitioned member's access records and evidence confirmed")
        print(f"partition ({net.hosts}) recovery: {time.monotonic() - healed:.1f} s (heal -> backlog confirmed)")
    finally:
        stop.set()
        loader.join(60)
    assert statuses.count(200) == 150, Counter(statuses)  # served all along: its own chain node stayed reachable
    db = nodes[WEST].home / "node.db"
    with create_engine(f"sqlite:///{db}").connect() as conn:
        accepted = Counter(bytes(r[0]) for r in conn.execute(
            text("select query_hash from chain_log_outbox where created_at >= :t"), {"t": started}))
    onchain = Counter(bytes(e["args"]["queryHash"]) for e in ledger(net, REGULATOR).gateway.events(
        "DataUseAuthorization", "AccessRecorded", from_block=start_block) if e["args"]["owner"] == west)
    assert sum(accepted.values()) >= 150
    assert onchain == accepted, "an access record was lost or reached the chain twice"
    found = audit_exactly_once(db, ledger(net, REGULATOR).gateway, west, net.deployment.deployment_block)
    assert found, found
    for claim in claims:
        proofs = operator.request("GET", f"/evidence/proofs/{claim}").json()["proofs"]
        assert [p["state"] for p in proofs] == ["ANCHORED"], proofs
    net.wait_same_head(timeout=120)


def test_forced_fork_and_reorg_index_follows_the_canonical_chain(net, tmp_path):
    # Two signers a side, never two that seal one after the other (in-turn order is the sorted signer list):
    # Clique lets none of 4 signers seal twice within 3 blocks, so a side holding the last two sealers could
    # seal nothing, and whether it did depended on the moment of the cut.
    by_address = {m.address.lower(): m.name for m in net.spec.members}
    order = [by_address[a.lower()] for a in net.nodes[EAST].signers()]
    side_a = [order[0], order[2]]
    side_b = [n for n in net.nodes if n not in side_a]
    watch = (side_a[0], order[1])  # one indexer and one head on each side
    grant_east, grant_west = grant_to_shop(net, EAST), grant_to_shop(net, WEST)
    engines = {name: create_store_engine(f"sqlite:///{tmp_path / f'index-{name}.db'}") for name in watch}
    # Indexers without confirmations, one on each side, so that one of them indexes blocks that get orphaned.
    indexers = {name: AuditIndexer(engines[name], ledger(net, name).gateway, net.deployment, confirmations=0)
                for name in engines}
    logs = {name: AccessLog(create_store_engine(f"sqlite:///{tmp_path / f'fork-{name}.db'}"), ledger(net, name),
                            flush_seconds=0.2) for name in (EAST, WEST)}
    sent: dict[str, list[LogRecord]] = {EAST: [], WEST: []}
    forked = False
    for _attempt in range(4):  # an out-of-turn block can still leave one side unable to seal: partition again
        fork_head = net.nodes[watch[0]].head()
        net.partition(side_a, side_b)
        for name, grant in ((EAST, grant_east), (WEST, grant_west)):
            batch = access_records(net, grant, 5)
            sent[name] += batch
            for r in batch:
                logs[name].append(r)
            threading.Thread(target=_quiet_flush, args=(logs[name],), daemon=True).start()
        try:
            wait_for(lambda: all(net.nodes[n].head() > fork_head for n in watch), 15, "both sides sealing")
            forked = True
            time.sleep(2)
        except AssertionError:
            pass
        for ix in indexers.values():
            ix.sync()
        net.heal()
        net.wait_same_head(timeout=120)
        for ix in indexers.values():
            ix.sync()
        # Done once an indexer has indexed blocks that the heal orphaned; otherwise (the side it followed won,
        # or it synced before its side sealed) partition again.
        if forked and sum(ix.rollbacks for ix in indexers.values()) >= 1:
            break
    assert forked, "the partition never let both sides seal"
    for name, log in logs.items():
        wait_for(lambda lg=log: _quiet_flush(lg) >= 0 and set(lg.counts()) == {"mined"}, 120,
                 f"{name}'s records confirmed on the canonical chain")
    net.wait_blocks(3, timeout=60, node=watch[1])
    for name, ix in indexers.items():
        ix.sync()
        index_matches_chain(net, engines[name], name)
        # what `consortium audit verify` reports: the index re-read against this member's own chain node
        report = verify_index(engines[name], ledger(net, name).gateway, net.deployment.deployment_block)
        assert report.matches and report.chain_events == report.index_events > 0, report.to_json()
    assert sum(ix.rollbacks for ix in indexers.values()) >= 1, "no indexer saw the reorg"
    for name in (EAST, WEST):
        assert_exactly_once(net, name, sent[name])
    resends = sum(ledger(net, n).gateway.resends for n in (EAST, WEST))
    print(f"reorg: indexer rollbacks {[ix.rollbacks for ix in indexers.values()]}, gateway re-broadcasts {resends}")


def _quiet_flush(log: AccessLog) -> int:
    try:
        return log.flush()
    except ChainError:
        return 0
