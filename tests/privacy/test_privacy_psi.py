import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from privacy.errors import DuplicateContribution, MalformedMessage
from privacy.fraud import FraudSignalQuery, MembershipAnswer, MembershipQuery, answer_membership
from privacy.psi import BlindedSet, Blinder, PsiInitiator, PsiReply, PsiResponder, hash_identifier
from tests.privacy_fixtures import assert_not_on_wire, wire

IDS = st.sets(st.text(alphabet="abcdefghij0123456789", min_size=3, max_size=8), max_size=25)


def test_blinding_commutes():
    a, b = Blinder(), Blinder()
    for ident in ("alice", "bob", b"\x00\xff"):
        assert a.blind_points(b.blind_identifiers([ident])) == b.blind_points(a.blind_identifiers([ident]))


def test_hash_is_domain_separated():
    assert hash_identifier("x") != hash_identifier("x", domain=b"other")


@settings(max_examples=25, deadline=None)
@given(x=IDS, y=IDS)
def test_psi_size_equals_plain_intersection(x, y):
    initiator, responder = PsiInitiator(x), PsiResponder(y)
    request = BlindedSet.from_dict(initiator.request().to_dict())
    reply = PsiReply.from_dict(responder.reply(request).to_dict())
    size = initiator.intersection_size(reply)
    assert size.size == len(x & y)
    assert responder.accept_size(size) == len(x & y)


def test_psi_messages_hold_no_identifier_of_either_party():
    x = {f"cust-{i:04d}" for i in range(40)}
    y = {f"cust-{i:04d}" for i in range(20, 70)}
    initiator, responder = PsiInitiator(x), PsiResponder(y)
    request = initiator.request()
    reply = responder.reply(request)
    texts = wire(request) + wire(reply)
    assert_not_on_wire(texts, sorted(x | y))
    assert_not_on_wire(texts, [hash_identifier(i).hex() for i in x | y])


def test_reply_order_does_not_follow_the_request():
    initiator, responder = PsiInitiator([f"id{i}" for i in range(60)]), PsiResponder([])
    request = initiator.request()
    double = responder.reply(request).double_blinded
    in_order = responder.blinder.blind_points(request.points)
    assert sorted(double) == sorted(in_order) and double != in_order


@pytest.mark.parametrize(
    "data",
    [
        {"kind": "psi-blinded-set", "session": "s", "points": ["zz"]},
        {"kind": "psi-blinded-set", "session": "s", "points": ["00" * 31]},
        {"kind": "psi-blinded-set", "session": "s", "points": "00"},
        {"kind": "psi-other", "session": "s", "points": []},
        [],
    ],
)
def test_malformed_psi_messages_are_refused(data):
    with pytest.raises(MalformedMessage):
        BlindedSet.from_dict(data)


def test_low_order_points_are_refused():
    with pytest.raises(MalformedMessage):
        PsiResponder(["a"]).reply(BlindedSet("s", [bytes(32)]))


def test_duplicate_points_in_a_request_are_refused():
    p = Blinder().blind_identifiers(["a"])[0]
    with pytest.raises(MalformedMessage):
        PsiResponder(["a"]).reply(BlindedSet("s", [p, p]))


def test_fraud_signal_counts_matches_across_members_without_revealing_sets():
    members = {
        "insurer-b": {"p1", "p2", "p3"},
        "insurer-c": {"p2", "p9"},
        "fraud-list": {"p2", "p3", "p7"},
    }
    query = FraudSignalQuery(["p2", "p3", "p5"])
    outgoing = query.query()
    answers = [MembershipAnswer.from_dict(answer_membership(MembershipQuery.from_dict(outgoing.to_dict()), m, s).to_dict())
               for m, s in members.items()]
    assert query.count_matches(answers) == {"p2": 3, "p3": 2, "p5": 0}
    # the members see the asker's blinded query only; the asker sees no member identifier in clear
    assert_not_on_wire(wire(outgoing), ["p2", "p3", "p5"])
    assert_not_on_wire("".join(wire(a) for a in answers), ["p1", "p7", "p9"])


def test_fraud_answers_from_the_same_member_twice_are_refused():
    query = FraudSignalQuery(["p1"])
    answer = answer_membership(query.query(), "m", {"p1"})
    with pytest.raises(DuplicateContribution):
        query.count_matches([answer, answer])


def test_shuffle_is_a_permutation_and_every_order_is_drawn():
    from collections import Counter

    from privacy.psi import shuffled

    assert shuffled([]) == [] and shuffled([7]) == [7]
    big = list(range(5000))
    assert sorted(shuffled(big)) == big
    counts = Counter(tuple(shuffled("abc")) for _ in range(6000))
    # 1000 expected per order, standard deviation ~29: [800, 1200] fails with probability < 1e-10
    assert len(counts) == 6 and all(800 <= c <= 1200 for c in counts.values())
