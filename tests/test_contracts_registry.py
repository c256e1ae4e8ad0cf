"""ConsortiumRegistry: genesis, admission votes, cards from the regulator, self-service keys."""
from __future__ import annotations

import pytest

from node.chain.deployment import Role, Status
from node.chain.errors import ContractRevert


def revert_name(excinfo) -> str:
    return excinfo.value.name


def test_genesis_members_are_active_with_their_roles(consortium):
    members = {m.name: m for m in consortium["insurer_a"].members()}
    assert set(members) == {"insurer_a", "insurer_b", "platform", "regulator", "auditor"}
    assert members["regulator"].role == Role.REGULATOR
    assert all(m.status == Status.ACTIVE for m in members.values())
    assert members["platform"].endpoint == "http://127.0.0.1/platform"


def test_admission_needs_more_than_two_thirds_of_members_in_good_standing(consortium):
    c = consortium
    candidate = c.accounts["candidate"].address
    pid = c["insurer_a"].propose_member(candidate, "newco", Role.TECH, "http://127.0.0.1/newco")
    # 5 members in good standing: 3 votes are not more than 2/3 (3*3=9 <= 10), the 4th admits.
    assert c["insurer_a"].vote(pid) is False
    assert c["insurer_b"].vote(pid) is False
    assert c["platform"].vote(pid) is False
    assert c["insurer_a"].member(candidate).status == Status.NONE
    assert c["regulator"].vote(pid) is True
    record = c["insurer_a"].member(candidate)
    assert record.status == Status.ACTIVE and record.role == Role.TECH and record.name == "newco"
    # The proposal is spent: another vote is refused.
    with pytest.raises(ContractRevert) as e:
        c["auditor"].vote(pid)
    assert revert_name(e) == "ProposalAlreadyExecuted"


def test_double_vote_is_refused(consortium):
    c = consortium
    pid = c["insurer_a"].propose_member(c.accounts["candidate"].address, "newco", Role.TECH)
    c["insurer_b"].vote(pid)
    with pytest.raises(ContractRevert) as e:
        c["insurer_b"].vote(pid)
    assert revert_name(e) == "AlreadyVoted"
    assert e.value.args_by_name["voter"].lower() == c.accounts["insurer_b"].address.lower()


def test_vote_by_non_member_is_refused(consortium):
    c = consortium
    pid = c["insurer_a"].propose_member(c.accounts["candidate"].address, "newco", Role.TECH)
    with pytest.raises(ContractRevert) as e:
        c["outsider"].vote(pid)
    assert revert_name(e) == "NotMember"


def test_vote_after_expiry_is_refused(consortium):
    c = consortium
    pid = c["insurer_a"].propose_member(c.accounts["candidate"].address, "newco", Role.TECH, lifetime=3600)
    c["insurer_a"].vote(pid)
    c.advance(3601)
    with pytest.raises(ContractRevert) as e:
        c["insurer_b"].vote(pid)
    assert revert_name(e) == "ProposalExpired"


def test_proposal_by_non_member_and_of_existing_member_are_refused(consortium):
    c = consortium
    with pytest.raises(ContractRevert) as e:
        c["outsider"].propose_member(c.accounts["candidate"].address, "x", Role.TECH)
    assert revert_name(e) == "NotMember"
    with pytest.raises(ContractRevert) as e:
        c["insurer_a"].propose_member(c.accounts["platform"].address, "again", Role.TECH)
    assert revert_name(e) == "AlreadyMember"


def test_vote_on_unknown_proposal_is_refused(consortium):
    with pytest.raises(ContractRevert) as e:
        consortium["insurer_a"].vote(99)
    assert revert_name(e) == "UnknownProposal"


def test_regulator_cards_and_reinstatement(consortium):
    c = consortium
    target = c.accounts["insurer_b"].address
    c["regulator"].warn(target, b"\x01" * 32)
    assert c["regulator"].member(target).status == Status.WARNED
    assert c["regulator"].member(target).in_good_standing  # a yellow card still lets it act
    c["regulator"].suspend(target)
    assert c["regulator"].member(target).status == Status.SUSPENDED
    c["regulator"].reinstate(target)
    assert c["regulator"].member(target).status == Status.ACTIVE
    c["regulator"].expel(target)
    assert c["regulator"].member(target).status == Status.EXPELLED
    events = c.gateway.events("ConsortiumRegistry", "MemberStatusChanged", filters={"account": target})
    assert [e["args"]["status"] for e in events] == [Status.WARNED, Status.SUSPENDED, Status.ACTIVE, Status.EXPELLED]


def test_only_the_regulator_gives_cards(consortium):
    c = consortium
    with pytest.raises(ContractRevert) as e:
        c["insurer_a"].suspend(c.accounts["insurer_b"].address)
    assert revert_name(e) == "NotRegulator"
    with pytest.raises(ContractRevert) as e:
        c["outsider"].warn(c.accounts["insurer_b"].address)
    assert revert_name(e) == "NotMember"
    with pytest.raises(ContractRevert) as e:
        c["regulator"].suspend(c.accounts["regulator"].address)
    assert revert_name(e) == "CannotSanctionSelf"
    with pytest.raises(ContractRevert) as e:
        c["regulator"].suspend(c.accounts["outsider"].address)
    assert revert_name(e) == "NotMember"


def test_suspended_member_can_change_no_state_until_reinstated(consortium):
    c = consortium
    c["regulator"].suspend(c.accounts["insurer_b"].address)
    pid = c["insurer_a"].propose_member(c.accounts["candidate"].address, "newco", Role.TECH)
    for action in (lambda: c["insurer_b"].vote(pid),
                   lambda: c["insurer_b"].set_endpoint("http://elsewhere"),
                   lambda: c["insurer_b"].rotate_keys(b"\x02" * 32, b"\x03" * 32),
                   lambda: c["insurer_b"].propose_member(c.accounts["outsider"].address, "x", Role.TECH)):
        with pytest.raises(ContractRevert) as e:
            action()
        assert revert_name(e) == "MemberNotInGoodStanding"
    c["regulator"].reinstate(c.accounts["insurer_b"].address)
    c["insurer_b"].set_endpoint("http://elsewhere")
    assert c["insurer_b"].member(c.accounts["insurer_b"].address).endpoint == "http://elsewhere"


def test_suspension_shrinks_the_electorate(consortium):
    c = consortium
    c["regulator"].suspend(c.accounts["insurer_b"].address)
    c["regulator"].suspend(c.accounts["auditor"].address)
    pid = c["insurer_a"].propose_member(c.accounts["candidate"].address, "newco", Role.TECH)
    # 3 in good standing now: 2 votes are not enough (6 <= 6), 3 are.
    assert c["insurer_a"].vote(pid) is False
    assert c["platform"].vote(pid) is False
    assert c["regulator"].vote(pid) is True


def test_members_rotate_their_own_keys_and_endpoint(consortium):
    c = consortium
    me = c["platform"]
    me.rotate_keys(b"\x0a" * 32, b"\x0b" * 32)
    me.set_endpoint("https://platform.example:8443")
    record = me.member(me.address)
    assert record.x25519_key == b"\x0a" * 32 and record.paillier_fingerprint == b"\x0b" * 32
    assert record.endpoint == "https://platform.example:8443"
    rotated = c.gateway.events("ConsortiumRegistry", "MemberKeysRotated", filters={"account": me.address})
    assert len(rotated) == 1
    with pytest.raises(ContractRevert) as e:
        c["outsider"].set_endpoint("http://x")
    assert revert_name(e) == "NotMember"
