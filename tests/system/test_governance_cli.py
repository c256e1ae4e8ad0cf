"""Grants, consents and governance from the CLI, against a real anvil, with the member's encrypted keys."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from eth_account import Account
from nodes import ROOT, TEST_PASSPHRASE, write_config

from node.access.consent import Consent, ConsentError, batch_consent_root, scope_hash, sign_consent, verify_consent
from node.chain.deployment import GenesisMember, Purpose, Role, Status, deploy_consortium
from node.chain.gateway import ChainGateway
from node.chain.ledger import Ledger, dataset_id
from node.keys import create_member_keys


@pytest.fixture(scope="module")
def members(anvil, artifacts, tmp_path_factory):
    base = tmp_path_factory.mktemp("gov")
    gateway = ChainGateway.connect(anvil.url, artifacts)
    roles = {"insurer": Role.INSURER, "platform": Role.PLATFORM, "regulator": Role.REGULATOR}
    keys = {n: create_member_keys(base / n, TEST_PASSPHRASE, scrypt_n=2**10) for n in roles}
    deployer = Account.create()
    for a in [deployer, *(k.account for k in keys.values())]:
        gateway.fund(a.address)
    dep = deploy_consortium(gateway, deployer, [GenesisMember(keys[n].address, n, r) for n, r in roles.items()])
    dep_path = dep.save(base / "deployment.json")
    configs = {n: write_config(base / f"home-{n}", n, base / n, anvil.url, dep_path, 1) for n in roles}
    return {"gateway": gateway, "keys": keys, "configs": configs, "base": base}


def cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "node.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "CONSORTIUM_PASSPHRASE": TEST_PASSPHRASE, **(env or {})}, timeout=120)


def test_grant_with_a_subjects_signed_consent_then_list_and_revoke(members):
    m = members
    out = m["base"] / "consent.json"
    signed = cli("consent", "sign", "--owner", m["keys"]["insurer"].address, "--grantee", m["keys"]["platform"].address,
                 "--dataset", "claims", "--purpose", "STATISTICS", "--deployment", str(m["base"] / "deployment.json"),
                 "--out", str(out), "--json")
    assert signed.returncode == 0, signed.stderr
    expected_ref = verify_consent(json.loads(out.read_text()))
    created = cli("grant", "create", "--config", str(m["configs"]["insurer"]), "--grantee", m["keys"]["platform"].address,
                  "--dataset", "claims", "--purpose", "STATISTICS", "--consent-file", str(out), "--json")
    assert created.returncode == 0, created.stderr
    gid = json.loads(created.stdout)["grant_id"]
    replayed = cli("grant", "create", "--config", str(m["configs"]["insurer"]), "--grantee", m["keys"]["platform"].address,
                   "--dataset", "claims", "--purpose", "STATISTICS", "--consent-file", str(out))
    assert replayed.returncode == 1 and "ConsentAlreadyUsed" in replayed.stderr and len(replayed.stderr.strip().splitlines()) == 1
    ledger = Ledger(m["gateway"], m["keys"]["insurer"].account)
    from node.chain.deployment import Deployment, attach
    attach(m["gateway"], Deployment.load(m["base"] / "deployment.json"))
    assert ledger.get_grant(gid).consent_ref == expected_ref
    received = cli("grant", "list", "--config", str(m["configs"]["platform"]), "--received", "--json")
    assert gid in [g["grant_id"] for g in json.loads(received.stdout)]
    assert cli("grant", "revoke", "--config", str(m["configs"]["insurer"]), str(gid)).returncode == 0
    again = cli("grant", "revoke", "--config", str(m["configs"]["insurer"]), str(gid))
    assert again.returncode == 1 and "AlreadyRevoked" in again.stderr and len(again.stderr.strip().splitlines()) == 1


def test_grant_needs_a_consent_and_refuses_a_forged_one(members, tmp_path):
    m = members
    no_consent = cli("grant", "create", "--config", str(m["configs"]["insurer"]), "--grantee", m["keys"]["platform"].address,
                     "--dataset", "claims", "--purpose", "FRAUD")
    assert no_consent.returncode == 1 and "consent" in no_consent.stderr
    subject, other = Account.create(), Account.create()
    dua = json.loads((m["base"] / "deployment.json").read_text())["contracts"]["DataUseAuthorization"]
    consent = Consent(subject.address, m["keys"]["insurer"].address, m["keys"]["platform"].address, "0x" + dataset_id("claims").hex(),
                      int(Purpose.FRAUD), scope_hash(""), 2**40)
    doc = sign_consent(subject, consent, m["gateway"].chain_id, dua).document()
    doc["consent"]["signer"] = other.address  # claims another subject consented
    (tmp_path / "forged.json").write_text(json.dumps(doc))
    forged = cli("grant", "create", "--config", str(m["configs"]["insurer"]), "--grantee", m["keys"]["platform"].address,
                 "--dataset", "claims", "--purpose", "FRAUD", "--consent-file", str(tmp_path / "forged.json"))
    assert forged.returncode == 1 and "not the named signer's" in forged.stderr
    with pytest.raises(ConsentError):
        batch_consent_root([])
    assert batch_consent_root([{"user": "u1"}, {"user": "u2"}]) != batch_consent_root([{"user": "u1"}])


def test_a_platform_attests_a_consent_batch_for_one_grant(members, tmp_path):
    m = members
    # The chain's clock ahead of the wall clock (other tests on this chain advance it): a consent dated by the
    # wall clock would expire before a grant that starts at block time (CI once saw InvalidWindow here).
    m["gateway"].w3.provider.make_request("evm_increaseTime", [30 * 86400])
    m["gateway"].w3.provider.make_request("evm_mine", [])
    (tmp_path / "records.json").write_text(json.dumps([{"subject": f"u{i}", "app": "platform"} for i in range(5)]))
    batch = cli("consent", "batch", "--config", str(m["configs"]["platform"]), "--records", str(tmp_path / "records.json"),
                "--owner", m["keys"]["insurer"].address, "--grantee", m["keys"]["platform"].address, "--dataset", "claims",
                "--purpose", "CLAIMS", "--scope", "claims: count by age_band", "--days", "10", "--out", str(tmp_path / "b.json"),
                "--json")
    assert batch.returncode == 0, batch.stderr
    args = ("grant", "create", "--config", str(m["configs"]["insurer"]), "--grantee", m["keys"]["platform"].address,
            "--dataset", "claims", "--purpose", "CLAIMS", "--consent-file", str(tmp_path / "b.json"))
    wrong_scope = cli(*args, "--scope", "claims: everything")
    assert wrong_scope.returncode == 1 and "ConsentMismatch" in wrong_scope.stderr
    created = cli(*args, "--scope", "claims: count by age_band", "--json")
    assert created.returncode == 0, created.stderr
    assert json.loads(created.stdout)["consent_ref"] == "0x" + verify_consent(json.loads((tmp_path / "b.json").read_text())).hex()


def test_governance_from_the_cli(members):
    m = members
    candidate = Account.create().address
    proposed = cli("gov", "propose", "--config", str(m["configs"]["insurer"]), "--candidate", candidate, "--name", "newco",
                   "--role", "TECH", "--json")
    assert proposed.returncode == 0, proposed.stderr
    opened = json.loads(proposed.stdout)
    pid = opened["proposal_id"]
    assert (opened["electorate"], opened["votes_needed"]) == (3, 3)
    votes = [json.loads(cli("gov", "vote", "--config", str(m["configs"][n]), str(pid), "--json").stdout)
             for n in ("insurer", "platform", "regulator")]
    assert [v["admitted"] for v in votes] == [False, False, True]  # 3 of 3: only the third vote is above two thirds
    assert [v["votes"] for v in votes] == [1, 2, 3]
    refused = cli("gov", "suspend", "--config", str(m["configs"]["insurer"]), candidate)
    assert refused.returncode == 1 and "NotRegulator" in refused.stderr
    assert cli("gov", "warn", "--config", str(m["configs"]["regulator"]), candidate, "--reason", "late report").returncode == 0
    ledger = Ledger(m["gateway"], m["keys"]["regulator"].account)
    assert ledger.member(candidate).status == Status.WARNED
