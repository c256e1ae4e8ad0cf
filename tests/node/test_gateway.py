"""The chain gateway on both backends: decoded reverts, concurrent senders, deployment files."""
from __future__ import annotations

import json
import threading

import pytest
from conftest import build_consortium
from eth_account import Account

from node.chain.deployment import Deployment, attach, deploy_consortium
from node.chain.errors import ChainUnavailable, ContractRevert, DeploymentError
from node.chain.events import EventReader
from node.chain.gateway import ChainGateway
from node.chain.ledger import Ledger, dataset_id


@pytest.fixture(scope="module")
def pyevm(artifacts):
    return build_consortium(ChainGateway.in_process(artifacts))


@pytest.mark.parametrize("backend", ["anvil", "pyevm"])
def test_custom_errors_decode_to_one_exception_type_on_every_backend(backend, request):
    c = request.getfixturevalue("consortium" if backend == "anvil" else "pyevm")
    # A transaction that reverts (caught at gas estimation) ...
    with pytest.raises(ContractRevert) as e:
        c["outsider"].grant(c.accounts["platform"].address, dataset_id("x"), 1, expires_at=c.now() + 100)
    assert e.value.name == "NotMember"
    assert e.value.args_by_name["account"].lower() == c.accounts["outsider"].address.lower()
    # ... and a view call that reverts, with a bytes32 argument.
    with pytest.raises(ContractRevert) as e:
        c["auditor"].batch_by_root(b"\x42" * 32)
    assert e.value.name == "UnknownRoot" and e.value.args_by_name["root"] == b"\x42" * 32


def test_concurrent_senders_from_one_account_lose_no_transaction(consortium):
    c = consortium
    ledger = c["insurer_a"]
    gid = ledger.grant(c.accounts["platform"].address, dataset_id("d"), 4, expires_at=c.now() + 3600)
    errors: list[BaseException] = []

    def worker(offset: int) -> None:
        try:
            for i in range(10):
                ledger.record_access(gid, bytes([offset, i]) * 16, offset * 100 + i)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    rows = sorted(e["args"]["rows"] for e in c.gateway.events("DataUseAuthorization", "AccessRecorded"))
    assert rows == sorted(t * 100 + i for t in range(4) for i in range(10))


def test_event_reader_returns_all_contracts_events_in_chain_order(consortium):
    c = consortium
    gid = c["insurer_a"].grant(c.accounts["platform"].address, dataset_id("d"), 4, expires_at=c.now() + 3600)
    c["insurer_a"].record_access(gid, b"\x01" * 32, 5)
    c["regulator"].warn(c.accounts["insurer_b"].address)
    events = EventReader(c.gateway).read(c.deployment.deployment_block)
    names = [e.event for e in events]
    assert names.count("MemberAdmitted") == 5
    assert names[-3:] == ["AuthorizationGranted", "AccessRecorded", "MemberStatusChanged"]
    assert [e.position for e in events] == sorted(e.position for e in events)


def test_deployment_file_round_trips_and_attaches(consortium, tmp_path):
    path = consortium.deployment.save(tmp_path / "deployment.json")
    loaded = Deployment.load(path)
    assert loaded.contracts == consortium.deployment.contracts
    gateway = attach(ChainGateway.connect(consortium.gateway.rpc_url, consortium.gateway.artifacts), loaded)
    assert Ledger(gateway, Account.create()).members()[0].name == "insurer_a"


def test_missing_malformed_and_stale_deployment_files_are_refused(consortium, tmp_path, artifacts):
    with pytest.raises(DeploymentError, match="does not exist"):
        Deployment.load(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(DeploymentError, match="malformed"):
        Deployment.load(bad)
    partial = tmp_path / "partial.json"
    data = json.loads(consortium.deployment.save(tmp_path / "d.json").read_text())
    del data["contracts"]["StatsLedger"]
    partial.write_text(json.dumps(data))
    with pytest.raises(DeploymentError, match="lacks StatsLedger"):
        Deployment.load(partial)
    # Stale: addresses with no code on this chain.
    stale = Deployment(consortium.deployment.chain_id, 0, {n: "0x" + "11" * 20 for n in consortium.deployment.contracts},
                       consortium.deployment.abi_hashes)
    gateway = ChainGateway.connect(consortium.gateway.rpc_url, artifacts)
    with pytest.raises(DeploymentError, match="no ConsortiumRegistry contract"):
        attach(gateway, stale)
    # Built from other sources: the ABI hash differs.
    other = Deployment(consortium.deployment.chain_id, 0, consortium.deployment.contracts,
                       {**consortium.deployment.abi_hashes, "StatsLedger": "0xdead"})
    with pytest.raises(DeploymentError, match="other sources"):
        attach(gateway, other)
    wrong_chain = Deployment(1, 0, consortium.deployment.contracts, consortium.deployment.abi_hashes)
    with pytest.raises(DeploymentError, match="chain id 1"):
        attach(gateway, wrong_chain)


def test_unreachable_rpc_is_a_clear_error(artifacts):
    from node.chain.anvil import free_port

    with pytest.raises(ChainUnavailable, match="no Ethereum JSON-RPC node answers"):
        ChainGateway.connect(f"http://127.0.0.1:{free_port()}", artifacts, timeout=2)
    with pytest.raises(ChainUnavailable, match="not an HTTP"):
        ChainGateway.connect("ftp://example", artifacts)


def test_deploy_needs_genesis_members(consortium):
    with pytest.raises(DeploymentError):
        deploy_consortium(consortium.gateway, consortium.accounts["insurer_a"], [])
