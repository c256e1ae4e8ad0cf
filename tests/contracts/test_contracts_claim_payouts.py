"""One claim, one payout: a claim a risk pool shares cannot also be apportioned by mutual aid, nor the reverse.

RiskPool and MutualAid each refused their own repeats, but neither saw the other: the same approved claim
could be shared as a pool loss and paid again as a mutual-aid payout. Both now reserve the claim key on
ClaimPayouts, bound once to exactly these two contracts at deployment.
"""
from __future__ import annotations

import hashlib

import pytest
from money_history import _h, approved_claim
from web3 import Web3

from node.chain.errors import ContractRevert
from privacy.apportion import ShareTree, apportion_equal, participant_ref

POOL = hashlib.sha256(b"pool: double payout").digest()
DAY = 86_400


def open_pool(c) -> None:
    c["insurer_a"].open_pool(POOL, [c.accounts["insurer_a"].address, c.accounts["insurer_b"].address], [70, 30], 10**12, 30 * DAY)
    c["insurer_b"].join_pool(POOL)


def apportion_args(c, payout: int = 10_000, n: int = 5) -> tuple:
    refs = [participant_ref(b"double-payout-salt", f"p{i}") for i in range(n)]
    tree = ShareTree(refs, apportion_equal(payout, n))
    return (tree.total, tree.size, 1, tree.root_hash, _h("share list"), c.accounts["candidate"].address)


def expect(name: str, call, *args) -> ContractRevert:
    with pytest.raises(ContractRevert) as e:
        call(*args)
    assert e.value.name == name, e.value
    return e.value


def payouts(c):
    return c.gateway.contract("ClaimPayouts")


def test_a_claim_shared_by_the_risk_pool_is_refused_by_mutual_aid(consortium):
    c = consortium
    open_pool(c)
    cid, root = approved_claim(c, "insurer_a", "CLM-DOUBLE-1")
    loss = c["insurer_a"].report_loss(POOL, cid, 9_000, root)
    refused = expect("ClaimPaidByOtherScheme", c["insurer_a"].anchor_apportionment, cid, root, *apportion_args(c))
    assert bytes(refused.args_by_name["claimKey"]) == loss["loss_id"]
    assert Web3.to_checksum_address(refused.args_by_name["scheme"]) == c.deployment.contracts["RiskPool"]
    assert c["auditor"].mutual_aid.functions.apportionmentCount().call() == 0
    assert payouts(c).functions.paidBy(loss["loss_id"]).call() == c.deployment.contracts["RiskPool"]


def test_a_claim_apportioned_by_mutual_aid_is_refused_by_the_risk_pool(consortium):
    c = consortium
    open_pool(c)
    cid, root = approved_claim(c, "insurer_a", "CLM-DOUBLE-2")
    key = c["insurer_a"].anchor_apportionment(cid, root, *apportion_args(c))
    refused = expect("ClaimPaidByOtherScheme", c["insurer_a"].report_loss, POOL, cid, 9_000, root)
    assert bytes(refused.args_by_name["claimKey"]) == key
    assert Web3.to_checksum_address(refused.args_by_name["scheme"]) == c.deployment.contracts["MutualAid"]
    # Nothing was shared: the pool's period total is untouched and no member owes anything.
    assert c["auditor"].pool_period(POOL, c.now())["shared"] == 0
    expect("UnknownLoss", c["auditor"].get_loss, key)
    assert payouts(c).functions.paidBy(key).call() == c.deployment.contracts["MutualAid"]


def test_each_scheme_still_refuses_its_own_repeat_and_other_claims_pass(consortium):
    c = consortium
    open_pool(c)
    cid1, root1 = approved_claim(c, "insurer_a", "CLM-ONCE-1")
    cid2, root2 = approved_claim(c, "insurer_a", "CLM-ONCE-2")
    c["insurer_a"].report_loss(POOL, cid1, 1_000, root1)
    expect("LossAlreadyCounted", c["insurer_a"].report_loss, POOL, cid1, 1_000, root1)
    c["insurer_a"].anchor_apportionment(cid2, root2, *apportion_args(c))
    expect("AlreadyApportioned", c["insurer_a"].anchor_apportionment, cid2, root2, *apportion_args(c))
    # The same claim id of another member is another claim (the key includes the insurer): it passes.
    cid_b, root_b = approved_claim(c, "insurer_b", "CLM-ONCE-1")
    assert c["insurer_b"].report_loss(POOL, cid_b, 500, root_b)["shared"] == 500


def test_only_the_bound_schemes_reserve_and_binding_happens_once(consortium):
    c = consortium
    contract = payouts(c)
    assert contract.functions.bound().call()
    assert contract.functions.isScheme(c.deployment.contracts["RiskPool"]).call()
    assert contract.functions.isScheme(c.deployment.contracts["MutualAid"]).call()
    for member in ("insurer_a", "regulator", "outsider"):  # nobody reserves (or blocks) a claim by hand
        expect("NotScheme", c.gateway.transact, c.accounts[member], contract.functions.reserve(_h("any claim")))
    expect("NotDeployer", c.gateway.transact, c.accounts["regulator"],
           contract.functions.bindSchemes([c.accounts["regulator"].address]))
