"""kill -9 the evidence node during intake and at each step of anchoring; after a restart every
accepted hash is anchored exactly once (checked against the chain's BatchAnchored events)."""
from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from eth_account import Account
from evidence_testing import audit_exactly_once

from node.chain.anvil import free_port
from node.chain.deployment import GenesisMember, Role, deploy_consortium
from node.chain.gateway import ChainGateway
from node.evidence.service import CRASH_POINT_ENV
from node.keys import create_member_keys

PASSPHRASE = "crash-test-passphrase"


@dataclass
class Member:
    keys_dir: Path
    deployment_path: Path
    address: str
    gateway: ChainGateway


@pytest.fixture(scope="module")
def member(anvil, artifacts, tmp_path_factory) -> Member:
    """A fresh deployment whose only genesis member has its keys in a folder, as a real node would."""
    folder = tmp_path_factory.mktemp("evidence-member")
    keys = create_member_keys(folder / "keys", PASSPHRASE, scrypt_n=2**10)
    gateway = ChainGateway.connect(anvil.url, artifacts)
    deployer = Account.create()
    for address in (deployer.address, keys.address):
        gateway.fund(address)
    deployment = deploy_consortium(gateway, deployer, [GenesisMember(keys.address, "insurer_crash", Role.INSURER)])
    return Member(folder / "keys", deployment.save(folder / "deployment.json"), keys.address, gateway)


class Node:
    def __init__(self, member: Member, db: Path, anvil_url: str, crash_at: str | None = None, batch_size: int = 40):
        self.port = free_port()
        env = {**os.environ, "CONSORTIUM_PASSPHRASE": PASSPHRASE}
        env.pop(CRASH_POINT_ENV, None)
        if crash_at:
            env[CRASH_POINT_ENV] = crash_at
        self.process = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve().parents[1] / "evidence_standalone.py"), "--db", str(db), "--rpc", anvil_url,
             "--deployment", str(member.deployment_path), "--keys", str(member.keys_dir), "--port", str(self.port),
             "--max-batch-size", str(batch_size), "--max-batch-age", "0.3", "--retry-base", "0.1", "--retry-cap", "0.5"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"node exited: {self.process.stderr.read().decode()[-2000:]}")
            try:
                httpx.get(f"{self.url}/evidence/status", timeout=0.5)
                return
            except httpx.HTTPError:
                time.sleep(0.05)
        raise AssertionError("node did not start")

    def kill(self) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def wait_all_anchored(self, timeout: float = 30) -> dict:
        deadline = time.monotonic() + timeout
        status = {}
        while time.monotonic() < deadline:
            status = httpx.get(f"{self.url}/evidence/status", timeout=5).json()
            if status["leaves"] and status["leaves"] == status["anchored_leaves"]:
                return status
            time.sleep(0.1)
        raise AssertionError(f"not all anchored: {status}")


def _post_until_stopped(url: str, prefix: str, accepted: list, stop: threading.Event) -> None:
    n = 0
    with httpx.Client(timeout=5) as client:
        while not stop.is_set():
            items = [{"sha256": hashlib.sha256(f"{prefix}-{n}-{k}".encode()).hexdigest(), "claim_id": f"{prefix}-{n % 7}",
                      "doc_type": "invoice"} for k in range(15)]
            try:
                r = client.post(f"{url}/evidence/hashes", json={"items": items})
            except httpx.HTTPError:
                return  # the node died mid-request: this request's fate is unknown, and not counted
            if r.status_code == 200:
                accepted.extend(x["sha256"] for x in items)
            n += 1


def _stored_hashes(db: Path) -> set[str]:
    import sqlite3

    with sqlite3.connect(db) as conn:
        return {bytes(r[0]).hex() for r in conn.execute("SELECT doc_sha256 FROM evidence_leaves")}


def test_kill_9_during_intake_then_restart_anchors_every_accepted_hash_once(member, anvil, tmp_path):
    db = tmp_path / "evidence.db"
    start = member.gateway.block_number() + 1
    accepted: list[str] = []
    for round_ in range(2):
        node = Node(member, db, anvil.url, batch_size=300)
        stop = threading.Event()
        writers = [threading.Thread(target=_post_until_stopped, args=(node.url, f"r{round_}w{w}", accepted, stop))
                   for w in range(2)]
        for w in writers:
            w.start()
        time.sleep(1.5)
        node.kill()  # mid-intake, and most likely mid-anchoring too
        stop.set()
        for w in writers:
            w.join()
    node = Node(member, db, anvil.url)
    try:
        node.wait_all_anchored()
    finally:
        node.kill()
    assert len(accepted) > 100
    assert set(accepted) <= _stored_hashes(db), "an accepted hash was lost"
    counts = audit_exactly_once(db, member.gateway, member.address, start)
    assert counts["leaves"] >= len(accepted)


@pytest.mark.parametrize("crash_at", ["after_close", "after_send", "after_sent_recorded"])
def test_kill_9_at_each_anchoring_step_then_restart_anchors_exactly_once(member, anvil, tmp_path, crash_at):
    db = tmp_path / "evidence.db"
    start = member.gateway.block_number() + 1
    node = Node(member, db, anvil.url, crash_at=crash_at)
    items = [{"sha256": hashlib.sha256(f"{crash_at}-{k}".encode()).hexdigest(), "claim_id": "CLM-crash",
              "doc_type": "loss-photo"} for k in range(30)]
    r = httpx.post(f"{node.url}/evidence/hashes", json={"items": items}, timeout=10)
    assert r.status_code == 200
    assert node.process.wait(15) == -signal.SIGKILL, "the node should have killed itself at the crash point"
    node = Node(member, db, anvil.url)
    try:
        node.wait_all_anchored()
        proofs = httpx.get(f"{node.url}/evidence/proofs/CLM-crash", timeout=10).json()["proofs"]
    finally:
        node.kill()
    assert len(proofs) == 30 and all("proof" in p for p in proofs)
    assert audit_exactly_once(db, member.gateway, member.address, start) == {"leaves": 30, "batches": 1}
