"""`consortium pool ...` end to end on a real anvil with encrypted member keys: the README's worked example.

A fraud-loss pool between two insurers shares a loss 70:30, both agree to move to 40:60, the next loss is
shared 40:60, contributions are recorded and confirmed; a mutual-aid platform apportions an approved claim
across 50 participants, each verifies its own share, anyone checks the published list, tampering is refused.
"""
from __future__ import annotations

import hashlib
import json
import subprocess
import sys

import pytest
from eth_account import Account
from nodes import ROOT, TEST_PASSPHRASE

from node.chain.deployment import ClaimStep, GenesisMember, Role, deploy_consortium
from node.chain.gateway import ChainGateway
from node.chain.ledger import Ledger
from node.cli.main import main
from node.evidence.leaf import claim_id_hash
from node.keys import create_member_keys
from node.pools.mutual_aid import verify_participant

NAMES = {"insurer-a": Role.INSURER, "insurer-b": Role.INSURER, "aid-platform": Role.PLATFORM, "regulator": Role.REGULATOR}


@pytest.fixture(scope="module")
def chain(anvil, artifacts, tmp_path_factory):
    base = tmp_path_factory.mktemp("pool-cli")
    gateway = ChainGateway.connect(anvil.url, artifacts)
    keys = {n: create_member_keys(base / n, TEST_PASSPHRASE, scrypt_n=2**10) for n in NAMES}
    deployer = Account.create()
    for a in [deployer, *(k.account for k in keys.values())]:
        gateway.fund(a.address)
    dep = deploy_consortium(gateway, deployer, [GenesisMember(keys[n].address, n, r) for n, r in NAMES.items()])
    return {"gateway": gateway, "keys": keys, "base": base, "deployment": str(dep.save(base / "deployment.json")),
            "rpc": anvil.url, "ledgers": {n: Ledger(gateway, k.account) for n, k in keys.items()}}


@pytest.fixture(autouse=True)
def _passphrase(monkeypatch):
    monkeypatch.setenv("CONSORTIUM_PASSPHRASE", TEST_PASSPHRASE)


def approved_claim(chain, member: str, claim_id: str, last: ClaimStep = ClaimStep.APPROVED) -> str:
    """Anchor the claim's evidence root and move it to ``last``; returns the root as hex."""
    ledger = chain["ledgers"][member]
    root = hashlib.sha256(f"evidence {claim_id}".encode()).digest()
    ledger.anchor_batch(root, 2, hashlib.sha256(f"batch {claim_id}".encode()).digest())
    for step in (ClaimStep.REPORTED, ClaimStep.MATERIALS_COMPLETE, ClaimStep.ASSESSED, last):
        ledger.record_claim_step(claim_id_hash(claim_id), step)
    return "0x" + root.hex()


def run(chain, capsys, *args, member: str | None = None) -> tuple[int, dict | str, str]:
    argv = ["pool", *args, "--rpc", chain["rpc"], "--deployment", chain["deployment"], "--json"]
    if member:
        argv += ["--keys", str(chain["base"] / member)]
    code = main(argv)
    out, err = capsys.readouterr()
    return code, (json.loads(out) if code == 0 else out), err


def ok(chain, capsys, *args, member: str | None = None) -> dict:
    code, out, err = run(chain, capsys, *args, member=member)
    assert code == 0, err
    return out


def refused(chain, capsys, *args, member: str | None = None) -> str:
    code, _, err = run(chain, capsys, *args, member=member)
    assert code == 1 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    return err


def test_risk_pool_worked_example_70_30_then_40_60(chain, capsys):
    root1 = approved_claim(chain, "insurer-a", "CLM-2026-0001")
    opened = ok(chain, capsys, "open", "fraud-2026", "--member", "insurer-a:70", "--member", "insurer-b:30",
                "--cap", "5000000", "--period-days", "30", member="insurer-a")
    assert opened["members"] == ["insurer-a", "insurer-b"] and opened["weights"] == [70, 30]
    assert "PoolNotActive" in refused(chain, capsys, "loss", "fraud-2026", "--claim", "CLM-2026-0001", "--amount", "1000001",
                                      "--evidence-root", root1, member="insurer-a")
    assert ok(chain, capsys, "join", "fraud-2026", member="insurer-b")["active"] is True

    loss = ok(chain, capsys, "loss", "fraud-2026", "--claim", "CLM-2026-0001", "--amount", "1000001",
              "--evidence-root", root1, member="insurer-a")
    assert loss["shares"] == {"insurer-a": 700_001, "insurer-b": 300_000} and loss["shared"] == 1_000_001
    assert "LossAlreadyCounted" in refused(chain, capsys, "loss", "fraud-2026", "--claim", "CLM-2026-0001", "--amount", "5",
                                           "--evidence-root", root1, member="insurer-a")

    proposed = ok(chain, capsys, "ratio", "fraud-2026", "40:60", member="insurer-b")
    assert proposed["in_effect"] is False and proposed["weights"] == [70, 30]
    approved = ok(chain, capsys, "ratio", "fraud-2026", "--approve", str(proposed["proposal"]), member="insurer-a")
    assert approved["in_effect"] is True and approved["weights"] == [40, 60]

    root2 = approved_claim(chain, "insurer-b", "CLM-2026-0002")
    loss2 = ok(chain, capsys, "loss", "fraud-2026", "--claim", "CLM-2026-0002", "--amount", "1000001",
               "--evidence-root", root2, member="insurer-b")
    assert loss2["shares"] == {"insurer-a": 400_000, "insurer-b": 600_001}

    # insurer-b pays its 300,000 of the first loss off chain, records it; insurer-a confirms receipt
    assert ok(chain, capsys, "contribute", loss["loss_id"], "--ref", "BANK-TRX-20261203-01", member="insurer-b")["amount"] == 300_000
    assert "NotLossInsurer" in refused(chain, capsys, "confirm", loss["loss_id"], "--payer", "insurer-b", member="insurer-b")
    ok(chain, capsys, "confirm", loss["loss_id"], "--payer", "insurer-b", member="insurer-a")
    shown = ok(chain, capsys, "loss-show", loss["loss_id"])
    assert shown["shares"] == {"insurer-a": {"amount": 700_001, "payment": "CONFIRMED"},
                               "insurer-b": {"amount": 300_000, "payment": "CONFIRMED"}}
    pool = ok(chain, capsys, "show", "fraud-2026")
    assert pool["members"] == {"insurer-a": 40, "insurer-b": 60} and pool["shared_this_period"] == 2_000_002

    # a rejected claim counts only with a fraud finding
    root3 = approved_claim(chain, "insurer-a", "CLM-2026-0003", ClaimStep.REJECTED)
    assert "ClaimNotConfirmed" in refused(chain, capsys, "loss", "fraud-2026", "--claim", "CLM-2026-0003", "--amount", "10",
                                          "--evidence-root", root3, member="insurer-a")
    finding = chain["base"] / "finding.txt"
    finding.write_text("investigation 2026-17: staged accident, same vehicle claimed at two members")
    fraud = ok(chain, capsys, "loss", "fraud-2026", "--claim", "CLM-2026-0003", "--amount", "10", "--evidence-root", root3,
               "--finding-file", str(finding), member="insurer-a")
    assert ok(chain, capsys, "loss-show", fraud["loss_id"])["kind"] == "FRAUD_FINDING"


def test_bad_input_is_one_line_and_a_non_zero_exit(chain, capsys):
    assert "whole number" in refused(chain, capsys, "loss", "fraud-x", "--claim", "C1", "--amount", "10.5",
                                     "--evidence-root", "0x" + "11" * 32, member="insurer-a")
    assert "32 bytes" in refused(chain, capsys, "contribute", "0x1234", "--ref", "r", member="insurer-b")
    assert "UnknownPool" in refused(chain, capsys, "show", "no-such-pool")
    assert "NAME:WEIGHT" in refused(chain, capsys, "open", "p", "--member", "insurer-b", "--cap", "1", member="insurer-a")
    # the same through the real entry point, as a user sees it
    proc = subprocess.run([sys.executable, "-m", "node.cli", "pool", "ratio", "fraud-2026", "40:0", "--rpc", chain["rpc"],
                           "--deployment", chain["deployment"], "--keys", str(chain["base"] / "insurer-a")],
                          cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={"CONSORTIUM_PASSPHRASE": TEST_PASSPHRASE, "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 1 and len(proc.stderr.strip().splitlines()) == 1 and "ratio" in proc.stderr, proc.stderr


def test_mutual_aid_apportion_verify_every_participant_and_refuse_tampering(chain, capsys, tmp_path):
    root = approved_claim(chain, "aid-platform", "AID-2026-0042")
    participants = tmp_path / "participants.csv"
    participants.write_text("participant_id\n" + "".join(f"member-{i:04d}\n" for i in range(50)))
    out = tmp_path / "aid"
    summary = ok(chain, capsys, "aid", "apportion", "--claim", "AID-2026-0042", "--payout", "300000001",
                 "--participants", str(participants), "--evidence-root", root, "--payee", "insurer-b", "--out", str(out),
                 member="aid-platform")
    assert summary["participants"] == 50 and summary["payout"] == "300000001"
    key = summary["claim_key"]
    lines = (out / "proofs.jsonl").read_text().splitlines()
    on_chain = chain["ledgers"]["regulator"].get_apportionment(bytes.fromhex(key[2:]))
    shares = [int(verify_participant(json.loads(lines[i]), f"member-{i:04d}", on_chain)["share"]) for i in range(50)]
    assert sum(shares) == 300_000_001 and shares[0] == 6_000_001 and shares[-1] == 6_000_000
    for i in (0, 1, 17, 49):  # as a participant does it: its own line, the chain, nothing else
        own = tmp_path / f"p{i}.json"
        own.write_text(lines[i])
        assert ok(chain, capsys, "aid", "verify", key, "--participant", f"member-{i:04d}", "--proof", str(own))["share"] == str(shares[i])
    assert ok(chain, capsys, "aid", "check", key, "--shares", str(out / "shares.csv"))["sum"] == "300000001"

    # a tampered share, someone else's line, and a doctored published list are refused
    forged = json.loads(lines[3])
    forged["proof"]["share"] = str(int(forged["proof"]["share"]) + 1)
    (tmp_path / "forged.json").write_text(json.dumps(forged))
    err = refused(chain, capsys, "aid", "verify", key, "--participant", "member-0003", "--proof", str(tmp_path / "forged.json"))
    assert "does not verify" in err
    other = json.loads(lines[4])  # someone else's proof handed over under this participant's id
    other["participant_id"] = "member-0003"
    (tmp_path / "other.json").write_text(json.dumps(other))
    assert "not for participant" in refused(chain, capsys, "aid", "verify", key, "--participant", "member-0003",
                                            "--proof", str(tmp_path / "other.json"))
    doctored = (out / "shares.csv").read_text().replace(",6000001\n", ",6000002\n", 1)
    (tmp_path / "shares.csv").write_text(doctored)
    assert "not the one anchored" in refused(chain, capsys, "aid", "check", key, "--shares", str(tmp_path / "shares.csv"))

    assert "AlreadyApportioned" in refused(chain, capsys, "aid", "apportion", "--claim", "AID-2026-0042", "--payout", "5",
                                           "--participants", str(participants), "--evidence-root", root, "--payee", "insurer-b",
                                           "--out", str(tmp_path / "again"), member="aid-platform")
    ok(chain, capsys, "aid", "payout", key, "--ref", "PAYOUT-0042", member="aid-platform")
    assert "NotPayee" in refused(chain, capsys, "aid", "confirm", key, member="insurer-a")
    assert ok(chain, capsys, "aid", "confirm", key, member="insurer-b")["state"] == "CONFIRMED"


def test_one_claim_is_paid_by_one_scheme_only_through_the_cli(chain, capsys, tmp_path):
    """A claim shared as a pool loss is refused by mutual aid, and the reverse: one line, exit 1, the reason named."""
    ok(chain, capsys, "open", "double-2026", "--member", "insurer-a:1", "--member", "insurer-b:1", "--cap", "10000000",
       "--period-days", "30", member="insurer-a")
    ok(chain, capsys, "join", "double-2026", member="insurer-b")
    participants = tmp_path / "participants.csv"
    participants.write_text("participant_id\n" + "".join(f"member-{i}\n" for i in range(4)))

    def apportion(claim: str, root: str, out: str) -> tuple:
        return ("aid", "apportion", "--claim", claim, "--payout", "4000", "--participants", str(participants),
                "--evidence-root", root, "--payee", "insurer-b", "--out", str(tmp_path / out))

    shared_root = approved_claim(chain, "insurer-a", "CLM-2026-0100")
    loss = ok(chain, capsys, "loss", "double-2026", "--claim", "CLM-2026-0100", "--amount", "4000",
              "--evidence-root", shared_root, member="insurer-a")
    err = refused(chain, capsys, *apportion("CLM-2026-0100", shared_root, "a1"), member="insurer-a")
    assert "ClaimPaidByOtherScheme" in err and loss["loss_id"] in err and "one scheme only" in err
    assert not (tmp_path / "a1").exists()  # no share files for a payout that never happened

    aid_root = approved_claim(chain, "insurer-a", "CLM-2026-0101")
    key = ok(chain, capsys, *apportion("CLM-2026-0101", aid_root, "a2"), member="insurer-a")["claim_key"]
    err = refused(chain, capsys, "loss", "double-2026", "--claim", "CLM-2026-0101", "--amount", "4000",
                  "--evidence-root", aid_root, member="insurer-a")
    assert "ClaimPaidByOtherScheme" in err and key in err
    assert ok(chain, capsys, "show", "double-2026")["shared_this_period"] == 4000  # only the first claim was shared
