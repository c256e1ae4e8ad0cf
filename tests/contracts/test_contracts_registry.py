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


def test_admission_needs_more_than_two_thirds_of_the_electorate(consortium):
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
    events = c.gateway.events("ConsortiumRegistry", "MemberStatusChanged", filters={"account": target})
    assert [e["args"]["status"] for e in events] == [Status.WARNED, Status.SUSPENDED, Status.ACTIVE]


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


def test_suspension_does_not_shrink_the_electorate(consortium):
    c = consortium
    c["regulator"].suspend(c.accounts["insurer_b"].address)
    c["regulator"].suspend(c.accounts["auditor"].address)
    assert c["insurer_a"].threshold() == {"electorate": 5, "votes_needed": 4}
    pid = c["insurer_a"].propose_member(c.accounts["candidate"].address, "newco", Role.TECH)
    # 3 in good standing can vote, but the electorate is still 5: 3 votes are not more than two thirds.
    assert c["insurer_a"].vote(pid) is False
    assert c["platform"].vote(pid) is False
    assert c["regulator"].vote(pid) is False
    assert c["insurer_a"].member(c.accounts["candidate"].address).status == Status.NONE
    c["regulator"].reinstate(c.accounts["auditor"].address)
    assert c["auditor"].vote(pid) is True  # the 4th vote of 5


def test_the_regulator_cannot_capture_governance_by_suspending_everyone(consortium):
    """The review's attack: suspend all others, propose a second REGULATOR, vote alone, reinstate."""
    c = consortium
    reg = c["regulator"]
    others = [c.accounts[n].address for n in ("insurer_a", "insurer_b", "platform", "auditor")]
    for member in others:
        reg.suspend(member)
    pid = reg.propose_member(c.accounts["candidate"].address, "second regulator", Role.REGULATOR)
    assert reg.vote(pid) is False  # 1 of 5, not 1 of 1
    for member in others:
        reg.reinstate(member)
    with pytest.raises(ContractRevert) as e:
        reg.vote(pid)
    assert revert_name(e) == "AlreadyVoted"
    assert reg.member(c.accounts["candidate"].address).status == Status.NONE
    # nor can it expel the others on its own to shrink the electorate: expulsion is a vote
    assert not hasattr(reg, "expel")
    with pytest.raises(AttributeError):
        reg.registry.functions.expel


@pytest.mark.parametrize("role", [Role.REGULATOR, Role.AUDITOR, Role.INSURER])
def test_every_role_needs_the_same_supermajority(consortium, role):
    c = consortium
    pid = c["insurer_a"].propose_member(c.accounts["candidate"].address, "newco", role)
    assert [c[n].vote(pid) for n in ("regulator", "auditor", "insurer_a", "insurer_b")] == [False, False, False, True]
    assert c["insurer_a"].member(c.accounts["candidate"].address).role == role


def test_expulsion_is_a_vote_final_and_the_only_way_the_electorate_shrinks(consortium):
    c = consortium
    target = c.accounts["insurer_b"].address
    c["regulator"].suspend(target)
    pid = c["regulator"].propose_expulsion(target, b"\x05" * 32)
    assert [c[n].vote(pid) for n in ("regulator", "insurer_a", "platform")] == [False, False, False]  # 3 of 5
    assert c["auditor"].vote(pid) is True
    assert c["auditor"].member(target).status == Status.EXPELLED
    assert c["auditor"].threshold() == {"electorate": 4, "votes_needed": 3}
    for action in (c["regulator"].reinstate, c["regulator"].warn, c["regulator"].suspend):
        with pytest.raises(ContractRevert) as e:
            action(target)
        assert revert_name(e) == "InvalidStatusChange"  # expelled is final
    with pytest.raises(ContractRevert) as e:
        c["insurer_a"].propose_expulsion(target)
    assert revert_name(e) == "AlreadyExpelled"
    with pytest.raises(ContractRevert) as e:
        c["insurer_b"].vote(pid)
    assert revert_name(e) == "MemberNotInGoodStanding"


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
