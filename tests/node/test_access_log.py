"""The access log's durable queue: nothing accepted is lost and nothing is logged twice, across crashes."""
from __future__ import annotations

import threading
import time

import pytest
from nodes import TEST_PASSPHRASE, start_node

from node.access.log import AccessLog, LogRecord
from node.chain.deployment import Purpose
from node.chain.errors import ChainError
from node.chain.gateway import ChainGateway
from node.chain.ledger import dataset_id
from node.client import NodeClient
from node.store.db import create_store_engine, write_lock


def records(c, n, grant_id):
    return [LogRecord("access", c.accounts["platform"].address, dataset_id("claims"), int(Purpose.STATISTICS),
                      bytes([i % 256]) * 32, grant_id=grant_id, rows=i) for i in range(n)]


def on_chain_rows(c) -> list[int]:
    return sorted(e["args"]["rows"] for e in c.gateway.events("DataUseAuthorization", "AccessRecorded"))


@pytest.fixture
def setup(consortium, tmp_path):
    c = consortium
    gid = c["insurer_a"].grant(c.accounts["platform"].address, dataset_id("claims"), Purpose.STATISTICS,
                               expires_at=c.now() + 3600)
    engine = create_store_engine(f"sqlite:///{tmp_path / 'node.db'}")
    return c, gid, engine


def test_records_are_flushed_in_batches_exactly_once(setup):
    c, gid, engine = setup
    log = AccessLog(engine, c["insurer_a"], batch_max=40)
    for r in records(c, 100, gid):
        log.append(r)
    assert log.flush() == 100
    assert log.flush() == 0
    assert on_chain_rows(c) == list(range(100))
    assert log.counts() == {"mined": 100}


def test_crash_after_recording_the_hash_but_before_sending_resends_once(setup, monkeypatch):
    c, gid, engine = setup
    log = AccessLog(engine, c["insurer_a"], lost_after_seconds=0.5)
    for r in records(c, 10, gid):
        log.append(r)
    gateway = c["insurer_a"].gateway

    def crash(*args, **kwargs):  # the process dies between writing the hash and sending the transaction
        raise SystemExit("killed")

    monkeypatch.setattr(gateway, "_send_raw", crash)
    with pytest.raises(SystemExit):
        log.flush()
    monkeypatch.undo()
    assert log.counts() == {"sent": 10}
    # "Restart": a fresh AccessLog on the same store; the recorded transaction never reached the chain.
    restarted = AccessLog(engine, c["insurer_a"], lost_after_seconds=0.5)
    gateway._nonce.clear()
    assert restarted.flush() == 0  # not yet considered lost
    time.sleep(0.6)
    restarted.flush()  # now it is: queued again ...
    restarted.flush()  # ... and sent
    assert on_chain_rows(c) == list(range(10))


def test_crash_after_sending_settles_without_resending(setup, monkeypatch):
    c, gid, engine = setup
    log = AccessLog(engine, c["insurer_a"])
    for r in records(c, 10, gid):
        log.append(r)

    def die_before_settling(*args, **kwargs):
        raise SystemExit("killed")

    monkeypatch.setattr(log, "_settle", die_before_settling)
    with pytest.raises(SystemExit):
        log.flush()
    assert log.counts() == {"sent": 10}
    restarted = AccessLog(engine, c["insurer_a"])
    time.sleep(0.2)
    assert restarted.flush() == 10  # found mined: marked, not sent again
    assert on_chain_rows(c) == list(range(10))


def test_chain_refusal_keeps_records_pending(setup, monkeypatch):
    c, gid, engine = setup
    log = AccessLog(engine, c["insurer_a"])
    log.append(records(c, 1, gid)[0])

    def refuse(*args, **kwargs):
        raise ChainError("chain down")

    monkeypatch.setattr(c["insurer_a"].gateway, "submit", refuse)
    with pytest.raises(ChainError):
        log.flush()
    assert log.counts() == {"pending": 1}
    monkeypatch.undo()
    assert log.flush() == 1


def test_kill_9_before_the_flush_loses_no_access(consortium, tmp_path):
    c = consortium
    from node.keys import create_member_keys

    keys = create_member_keys(tmp_path / "keys", TEST_PASSPHRASE, scrypt_n=2**10)
    c["insurer_a"].gateway.fund(keys.address)
    pid = c["insurer_a"].propose_member(keys.address, "owner", 1)
    for voter in ("insurer_a", "insurer_b", "platform", "regulator"):
        if c[voter].vote(pid):
            break
    from node.chain.ledger import Ledger

    owner = Ledger(c.gateway, keys.account)
    owner.grant(c.accounts["platform"].address, dataset_id("claims"), Purpose.STATISTICS, expires_at=c.now() + 3600)
    dep = c.deployment.save(tmp_path / "deployment.json")
    # A flush interval far longer than the test: every access is still only in the node's store when it dies.
    node = start_node(tmp_path / "home", "owner", tmp_path / "keys", c.gateway.rpc_url, dep, log_flush_seconds=600)
    client = NodeClient(node.url, c.accounts["platform"], keys.address, c.gateway.chain_id)
    served = sum(client.query("claims", "STATISTICS").status_code == 200 for _ in range(25))
    assert served == 25
    node.kill9()
    assert c.gateway.events("DataUseAuthorization", "AccessRecorded") == []
    node = start_node(tmp_path / "home", "owner", tmp_path / "keys", c.gateway.rpc_url, dep, log_flush_seconds=0.2)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and len(c.gateway.events("DataUseAuthorization", "AccessRecorded")) < 25:
            time.sleep(0.2)
        time.sleep(1.0)  # and nothing more arrives
        assert len(c.gateway.events("DataUseAuthorization", "AccessRecorded")) == 25
    finally:
        node.stop()


def test_batches_are_encoded_byte_for_byte_as_web3_would(setup):
    """The access log encodes its batch calls itself (web3's argument checks cost ~1 ms a record): same transaction."""
    from node.access.log import EncodedCall

    c, gid, _ = setup
    contract = c["insurer_a"].authorizations
    call = {"from": c.accounts["insurer_a"].address, "chainId": c.gateway.chain_id, "gas": 500_000, "nonce": 7,
            "maxFeePerGas": 2 * 10**9, "maxPriorityFeePerGas": 10**9}
    hashes = [bytes([i]) * 32 for i in range(5)]
    cases = [
        ("recordAccessBatch", ([gid, gid + 1, 2**200, 0, 3], hashes, [0, 1, 2**32 - 1, 7, 9])),
        ("recordDenialBatch", ([c.accounts["platform"].address] * 5, [dataset_id("claims")] * 5,
                               [int(p) for p in Purpose][:2] * 2 + [int(Purpose.STATISTICS)], [1, 2, 3, 4, 5], hashes)),
    ]
    for name, args in cases:
        ours = EncodedCall.of(contract, name, *args).build_transaction(dict(call))
        theirs = getattr(contract.functions, name)(*args).build_transaction(dict(call))
        assert ours == theirs, name


def test_an_encoded_batch_that_would_revert_is_refused_at_gas_estimation(setup):
    from node.access.log import EncodedCall
    from node.chain.errors import ContractRevert

    c, _, _ = setup
    contract = c["insurer_a"].authorizations
    unknown_grant = EncodedCall.of(contract, "recordAccessBatch", [10**9], [bytes(32)], [1])
    with pytest.raises(ContractRevert):
        c.gateway.submit(c.accounts["insurer_a"], unknown_grant)


def test_concurrent_appends_are_all_durable_and_a_failed_commit_fails_every_caller_in_it(setup, monkeypatch):
    """Group commit without a writer thread: callers lead commits in turn; none is lost, none is left waiting."""
    import threading

    c, gid, engine = setup
    log = AccessLog(engine, c["insurer_a"])
    errors: list[BaseException] = []

    def appender(rs):
        for r in rs:
            try:
                log.append(r)
            except BaseException as exc:  # noqa: BLE001 - collected for the assertion
                errors.append(exc)

    batch = records(c, 200, gid)
    threads = [threading.Thread(target=appender, args=(batch[i::8],)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors and not any(t.is_alive() for t in threads)
    assert log.counts() == {"pending": 200}

    def broken(*_a, **_k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(log, "engine", type("E", (), {"begin": broken, "raw_connection": broken, "dialect": engine.dialect})())
    failures: list[BaseException] = []

    def failing():
        try:
            log.append(batch[0])
        except RuntimeError as exc:
            failures.append(exc)

    threads = [threading.Thread(target=failing) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(failures) == 6 and not any(t.is_alive() for t in threads)
    monkeypatch.undo()
    assert log.counts() == {"pending": 200}  # nothing of the failed commits was stored


def test_settled_batches_leave_no_signed_transaction_in_memory(setup):
    """The gateway keeps a batch's signed bytes only until it is settled (re-broadcast needs them before, never
    after): kept for good they were the node's memory drift under steady logging (bench.py soak)."""
    c, gid, engine = setup
    gateway = c["insurer_a"].gateway
    log = AccessLog(engine, c["insurer_a"], batch_max=10)
    for r in records(c, 50, gid):
        log.append(r)
    assert log.flush() == 50
    mined = {h for (h,) in engine.connect().exec_driver_sql("select distinct tx_hash from chain_log_outbox")}
    assert len(mined) == 5
    assert not mined & set(gateway._signed)


def test_grouped_records_are_committed_together_at_the_end_of_the_block_or_not_at_all(setup, monkeypatch):
    """``grouped()`` (a worker serving several queries in turn): nothing of the block is stored before it ends,
    everything is stored by one commit when it does, and a failed commit raises at the end, storing nothing."""
    c, gid, engine = setup
    log = AccessLog(engine, c["insurer_a"])
    rs = records(c, 5, gid)
    commits = []
    write_group = log._write_group
    monkeypatch.setattr(log, "_write_group", lambda group: commits.append(len(group)) or write_group(group))
    with log.grouped():
        for r in rs[:3]:
            log.append(r)
        with log.grouped():  # nested: the outer block commits
            log.append(rs[3])
        assert log.counts() == {}  # not yet: the block has not ended
    assert log.counts() == {"pending": 4} and commits == [4]

    def broken(*_a, **_k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(log, "engine", type("E", (), {"begin": broken, "raw_connection": broken, "dialect": engine.dialect})())
    with pytest.raises(RuntimeError, match="disk full"):
        with log.grouped():
            log.append(rs[4])
    monkeypatch.undo()
    assert log.counts() == {"pending": 4}  # the failed block stored nothing
    log.append(rs[4])  # and the log is usable afterwards, outside any block
    assert log.counts() == {"pending": 5}


def test_a_flush_pass_sends_only_what_was_queued_when_it_began(setup, monkeypatch):
    """Under steady load records keep arriving while a pass sends: a pass that sent until nothing was left ran for
    seconds without settling anything. Here every send lets a full batch arrive; the pass still ends after one."""
    c, gid, engine = setup
    gateway = c["insurer_a"].gateway
    monkeypatch.setattr(gateway, "confirmations", 2)  # a chain that settles later (Clique): 38 records a batch
    log = AccessLog(engine, c["insurer_a"])
    arriving = iter(records(c, 38 * 20, gid))
    for _ in range(38):
        log.append(next(arriving))
    real_submit, submits = gateway.submit, []

    def submit_while_load_arrives(*args, **kwargs):
        submits.append(1)
        for _ in range(38):
            log.append(next(arriving))
        return real_submit(*args, **kwargs)

    monkeypatch.setattr(gateway, "submit", submit_while_load_arrives)
    log.flush()
    assert len(submits) == 1 and log.counts() == {"sent": 38, "pending": 38}
    log.flush()
    assert len(submits) == 2 and log.counts() == {"sent": 76, "pending": 38}


def test_one_look_settles_every_batch_its_confirmations_covered(setup, monkeypatch):
    c, gid, engine = setup
    gateway = c["insurer_a"].gateway
    monkeypatch.setattr(gateway, "confirmations", 2)
    log = AccessLog(engine, c["insurer_a"])
    for r in records(c, 100, gid):
        log.append(r)
    gateway.raw_request("evm_setAutomine", [False])
    try:
        log.flush()  # three batches (38 + 38 + 24) waiting in the pool
        gateway.raw_request("evm_mine", [])  # all three in one block
        assert log.flush() == 0 and log.counts() == {"sent": 100}  # no block on top of it yet
        looks = []
        real_batch = gateway._raw_batch
        monkeypatch.setattr(gateway, "_raw_batch", lambda calls: looks.append([m for m, _ in calls]) or real_batch(calls))
        gateway.raw_request("evm_mine", [])
        assert log.flush() == 0 and log.counts() == {"sent": 100}  # one block on top: not settled with 2
        gateway.raw_request("evm_mine", [])
        looks.clear()
        assert log.flush() == 100 and log.counts() == {"mined": 100}
    finally:
        gateway.raw_request("evm_setAutomine", [True])
    # one batch of the three receipts (with the head), one of the canonical hash at their one height
    assert looks == [["eth_blockNumber"] + ["eth_getTransactionReceipt"] * 3, ["eth_getBlockByNumber"]]
    assert on_chain_rows(c) == list(range(100))


def test_interleaved_accesses_and_denials_are_each_sent_in_their_own_batches_exactly_once(setup):
    """A batch is marked sent by its seq range within its kind: the other kind's rows inside that range stay queued."""
    c, gid, engine = setup
    log = AccessLog(engine, c["insurer_a"], batch_max=7)
    accesses = records(c, 30, gid)
    for i, r in enumerate(accesses):
        log.append(r)
        log.append(LogRecord("denial", c.accounts["platform"].address, dataset_id("claims"), int(Purpose.STATISTICS),
                             bytes([i]) * 32, reason_code=1))
    assert log.flush() == 60 and log.counts() == {"mined": 60}
    denied = c.gateway.events("DataUseAuthorization", "DenialRecorded")
    assert on_chain_rows(c) == list(range(30))
    assert sorted(bytes(e["args"]["queryHash"])[0] for e in denied) == list(range(30))
    with engine.connect() as conn:
        per_tx = conn.exec_driver_sql("select tx_hash, count(*), count(distinct kind) from chain_log_outbox group by tx_hash").all()
    assert sorted(n for _, n, _ in per_tx) == [2, 2] + [7] * 8 and all(k == 1 for _, _, k in per_tx)  # 30 = 4 x 7 + 2, each kind


def test_the_flusher_s_writes_queue_on_the_store_s_write_lock(setup):
    """One lock per store engine: a flusher write waits on it (and starts the moment it is released) rather than
    meeting SQLite's busy handler, which sleeps 1, 2, 5 ... 100 ms between looks under a stream of request commits."""
    c, gid, engine = setup
    assert write_lock(engine) is write_lock(engine)
    assert write_lock(engine) is not write_lock(create_store_engine("sqlite://"))
    log = AccessLog(engine, c["insurer_a"])
    for r in records(c, 5, gid):
        log.append(r)
    flushed = threading.Event()
    with write_lock(engine):
        worker = threading.Thread(target=lambda: (log.flush(), flushed.set()))
        worker.start()
        assert not flushed.wait(0.5)  # held: the batch cannot be marked sent, so nothing is sent either
        assert log.counts() == {"pending": 5}
    assert flushed.wait(30)
    worker.join()
    assert log.counts() == {"mined": 5} and on_chain_rows(c) == list(range(5))


def test_a_batch_signed_again_after_its_nonce_was_taken_is_recorded_under_the_hash_that_was_sent(setup, monkeypatch):
    """Another sender of the same account (the member's CLI, a second process) takes the nonce between signing and
    sending: the gateway signs again; the batch's rows carry the hash that reached the chain and settle once."""
    c, gid, engine = setup
    gateway = c["insurer_a"].gateway
    log = AccessLog(engine, c["insurer_a"])
    for r in records(c, 5, gid):
        log.append(r)
    real_send, sent = gateway._send_raw, []

    def nonce_taken_first(raw):
        if not sent:  # the other process's transaction takes this nonce first
            other = ChainGateway.connect(gateway.rpc_url, gateway.artifacts)
            other.transact(c.accounts["insurer_a"], c["insurer_a"].registry.functions.setEndpoint("https://a.example:8701"))
        sent.append(raw)
        return real_send(raw)

    monkeypatch.setattr(gateway, "_send_raw", nonce_taken_first)
    assert log.flush() == 5 and len(sent) == 2  # refused ("nonce too low"), signed again, sent
    assert log.counts() == {"mined": 5} and on_chain_rows(c) == list(range(5))
    with engine.connect() as conn:
        hashes = {h for (h,) in conn.exec_driver_sql("select distinct tx_hash from chain_log_outbox")}
    assert len(hashes) == 1 and gateway.w3.eth.get_transaction_receipt(hashes.pop())["status"] == 1
