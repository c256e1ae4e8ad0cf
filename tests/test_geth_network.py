"""The consortium on a real 4-signer geth v1.13.15 Clique network (1 s blocks), across hosts that fail.

Every member's code talks to its own geth. Peer links run through cuttable loopback TCP proxies
(node/chain/links.py): this machine's tests do not use network namespaces. Needs the geth that
scripts/setup.sh builds; a missing build fails with the command to run, it is never skipped.
"""
from __future__ import annotations

import os
import threading
import time

import pytest
from evidence_testing import audit_exactly_once
from web3 import Web3

from node.access_log import AccessLog, LogRecord
from node.audit import schema as s
from node.audit.indexer import AuditIndexer
from node.chain.compiler import PUSH0, compile_contracts, opcodes
from node.chain.deployment import Deployment, Purpose, Role, Status, attach
from node.chain.errors import ChainError
from node.chain.ledger import Ledger, dataset_id
from node.evidence.service import EvidenceService, EvidenceSettings
from node.evidence.store import create_store_engine as evidence_engine
from node.evidence.verify import RegistryEvidenceChain, verify_evidence
from node.network import DEFAULT_MEMBERS, CliqueNetwork, init_clique
from node.network_governance import SignerGovernor
from node.store.db import create_store_engine

print("partition method: loopback TCP proxies (no network namespaces)")
EAST, WEST, SHOP, REGULATOR, AUDITOR, NEWCOMER = ("insurer-east", "insurer-west", "shop-platform", "regulator",
                                                  "auditor", "newcomer")


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clique") / "net"
    # Test keys use a cheap scrypt cost; they are still encrypted keystores that geth unlocks.
    init_clique(folder, members=DEFAULT_MEMBERS, validators=4, candidates=((NEWCOMER, Role.INSURER),),
                confirmations=2, scrypt_n=2**12)
    network = CliqueNetwork.open(folder, proxied=True).start(timeout=240)
    try:
        network.deploy()
        network.ledgers = {}
        yield network
    finally:
        network.stop()


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


def test_consortium_scenario_on_the_clique_network(net, tmp_path):
    east = ledger(net, EAST)
    grant_id = grant_to_shop(net, EAST)
    assert ledger(net, SHOP).is_authorized(net.spec.member(EAST).address, net.spec.member(SHOP).address,
                                           dataset_id("claims"), Purpose.STATISTICS)
    log = AccessLog(create_store_engine(f"sqlite:///{tmp_path / 'east.db'}"), east, flush_seconds=0.2)
    served = access_records(net, grant_id, 30)
    refused = [LogRecord("denial", net.spec.member(SHOP).address, dataset_id("claims"), int(Purpose.PRICING),
                         os.urandom(32), reason_code=2) for _ in range(5)]
    for r in served + refused:
        log.append(r)
    wait_for(lambda: log.flush() >= 0 and log.counts() == {"mined": 35}, 90, "access and denial records confirmed")
    assert_exactly_once(net, EAST, served)

    evidence = EvidenceService(evidence_engine(tmp_path / "evidence.db"), east, EvidenceSettings())
    docs = [os.urandom(32) for _ in range(12)]
    evidence.accept_many([(d, "CLM-geth", "invoice") for d in docs])
    evidence.close_open_batch()
    wait_for(lambda: evidence.run_once() and evidence.store.counts()["anchored_leaves"] == 12, 90, "evidence anchored")
    auditor_chain = RegistryEvidenceChain(attach(net.gateway(AUDITOR), net.deployment))
    proofs = evidence.proofs("CLM-geth")
    for proof in proofs:  # the auditor needs only the document hash, the proof and its own chain node
        assert verify_evidence(bytes.fromhex(proof["doc_sha256"]), proof, auditor_chain).submitter == east.address
    assert sorted(bytes.fromhex(p["doc_sha256"]) for p in proofs) == sorted(docs)
    audit_exactly_once(tmp_path / "evidence.db", east.gateway, east.address, net.deployment.deployment_block)

    engine = create_store_engine(f"sqlite:///{tmp_path / 'regulator.db'}")
    indexer = AuditIndexer(engine, ledger(net, REGULATOR).gateway, net.deployment)
    indexer.sync()
    assert indexer.confirmations == 2
    index_matches_chain(net, engine, REGULATOR)


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


def test_a_member_partitioned_for_30_s_under_load_catches_up_exactly_once(net, tmp_path):
    grant_id = grant_to_shop(net, WEST)
    west = ledger(net, WEST)
    log = AccessLog(create_store_engine(f"sqlite:///{tmp_path / 'west.db'}"), west, flush_seconds=0.3).start()
    evidence = EvidenceService(evidence_engine(tmp_path / "west-evidence.db"), west,
                               EvidenceSettings(max_batch_age=1.0)).start()
    records = access_records(net, grant_id, 150)
    stop = threading.Event()
    loader = threading.Thread(target=_load, args=(log, records, 25.0, stop))
    try:
        loader.start()
        time.sleep(2)
        net.isolate(WEST)
        for i in range(20):
            evidence.accept(os.urandom(32).hex(), f"CLM-part-{i}", "invoice")
            time.sleep(1.0)
        time.sleep(max(0.0, 30 - 20))
        net.heal()
        healed = time.monotonic()
        loader.join(60)
        wait_for(lambda: log.counts() == {"mined": 150}, 180, "the partitioned member's access records confirmed")
        assert evidence.wait_until_anchored(timeout=120)
        recovery = time.monotonic() - healed
        print(f"partition recovery: {recovery:.1f} s (heal -> backlog confirmed)")
    finally:
        stop.set()
        log.stop()
        evidence.stop()
    assert_exactly_once(net, WEST, records)
    audit_exactly_once(tmp_path / "west-evidence.db", west.gateway, west.address, net.deployment.deployment_block)
    net.wait_same_head(timeout=120)


def test_forced_fork_and_reorg_index_follows_the_canonical_chain(net, tmp_path):
    side_a, side_b = [EAST, WEST], [SHOP, REGULATOR, AUDITOR, NEWCOMER]
    grant_east, grant_west = grant_to_shop(net, EAST), grant_to_shop(net, WEST)
    engines = {name: create_store_engine(f"sqlite:///{tmp_path / f'index-{name}.db'}") for name in (WEST, REGULATOR)}
    # Indexers without confirmations, one on each side, so that one of them indexes blocks that get orphaned.
    indexers = {name: AuditIndexer(engines[name], ledger(net, name).gateway, net.deployment, confirmations=0)
                for name in engines}
    logs = {name: AccessLog(create_store_engine(f"sqlite:///{tmp_path / f'fork-{name}.db'}"), ledger(net, name),
                            flush_seconds=0.2) for name in (EAST, WEST)}
    sent: dict[str, list[LogRecord]] = {EAST: [], WEST: []}
    forked = False
    for _attempt in range(4):  # Clique's recency rule can leave one side unable to seal: partition again
        fork_head = net.nodes[EAST].head()
        net.partition(side_a, side_b)
        for name, grant in ((EAST, grant_east), (WEST, grant_west)):
            batch = access_records(net, grant, 5)
            sent[name] += batch
            for r in batch:
                logs[name].append(r)
            threading.Thread(target=_quiet_flush, args=(logs[name],), daemon=True).start()
        try:
            wait_for(lambda: net.nodes[EAST].head() > fork_head and net.nodes[REGULATOR].head() > fork_head,
                     15, "both sides sealing")
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
    net.wait_blocks(3, timeout=60, node=REGULATOR)
    for name, ix in indexers.items():
        ix.sync()
        index_matches_chain(net, engines[name], name)
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


def test_signer_set_follows_governance_admission_and_expulsion(net):
    newcomer = net.spec.member(NEWCOMER).address
    assert newcomer.lower() not in [a.lower() for a in net.nodes[EAST].signers()]
    proposal = ledger(net, EAST).propose_member(newcomer, NEWCOMER, Role.INSURER)
    # Four of the five founders (more than two thirds) vote, each from its own chain node, in parallel;
    # a fixed gas budget, since an estimate made before the others are mined misses the admitting vote's cost.
    votes = [ledger(net, v).gateway.submit(net.keys(v).account, ledger(net, v).registry.functions.vote(proposal),
                                           gas=1_000_000) for v in (EAST, WEST, SHOP, REGULATOR)]
    for sent in votes:
        sent.wait(120)
    assert ledger(net, EAST).member(newcomer).status == Status.ACTIVE
    validators = {m.address for m in net.spec.members}
    governors = [SignerGovernor(ledger(net, n), net.url(n), validators, poll_seconds=0.5).start()
                 for n in (EAST, WEST, SHOP, REGULATOR)]
    try:
        wait_for(lambda: newcomer.lower() in [a.lower() for a in net.nodes[EAST].signers()], 90, "the newcomer voted in")
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
        wait_for(lambda: newcomer.lower() not in [a.lower() for a in net.nodes[EAST].signers()], 90,
                 "the expelled member voted out")
        after = net.nodes[EAST].head()
        net.wait_blocks(6, timeout=60, node=EAST)
        sealers = {net.nodes[EAST].block_signer(b).lower() for b in range(after + 1, after + 7)}
        assert newcomer.lower() not in sealers
    finally:
        for g in governors:
            g.stop()
    assert Web3.is_checksum_address(newcomer)
