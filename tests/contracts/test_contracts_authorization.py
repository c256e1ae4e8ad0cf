"""DataUseAuthorization: grants, revocation, validity windows, access and denial logging."""
from __future__ import annotations

import pytest
from eth_account import Account

from node.access.consent import CONSENT_FIELDS, Consent, SignedConsent, sign_consent
from node.chain.deployment import Purpose
from node.chain.errors import ContractRevert
from node.chain.ledger import dataset_id

CLAIMS = dataset_id("claims-2026")
HOUR = 3600

# GrantState enum of the contract
VALID, UNKNOWN, REVOKED, NOT_YET_VALID, EXPIRED, OWNER_BAD, GRANTEE_BAD = range(7)


def grant(c, *, owner="insurer_a", grantee="platform", purpose=Purpose.STATISTICS, dataset=CLAIMS,
          not_before=0, lifetime=HOUR):
    expires = (not_before or c.now()) + lifetime
    return c[owner].grant(c.accounts[grantee].address, dataset, purpose, expires_at=expires, not_before=not_before,
                          scope_hash=b"\x05" * 32, consent_ref=b"\x06" * 32)


def authorized(c, owner="insurer_a", grantee="platform", purpose=Purpose.STATISTICS, dataset=CLAIMS):
    return c[owner].is_authorized(c.accounts[owner].address, c.accounts[grantee].address, dataset, purpose)


def test_grant_authorizes_exactly_its_grantee_dataset_and_purpose(consortium):
    c = consortium
    gid = grant(c)
    assert gid == 1
    assert authorized(c)
    assert not authorized(c, purpose=Purpose.PRICING)
    assert not authorized(c, dataset=dataset_id("policies"))
    assert not authorized(c, grantee="insurer_b")
    record = c["insurer_a"].get_grant(gid)
    assert record.owner == c.accounts["insurer_a"].address and record.grantee == c.accounts["platform"].address
    assert record.scope_hash == b"\x05" * 32
    assert c["insurer_a"].consent_used_by(record.consent_ref) == gid  # consentRef is the consent's EIP-712 digest
    assert c["insurer_a"].grants_given(c.accounts["insurer_a"].address) == [gid]
    assert c["platform"].grants_received(c.accounts["platform"].address) == [gid]


def test_grant_by_non_member_is_refused(consortium):
    c = consortium
    with pytest.raises(ContractRevert) as e:
        c["outsider"].grant(c.accounts["platform"].address, CLAIMS, Purpose.CLAIMS, expires_at=c.now() + HOUR)
    assert e.value.name == "NotMember"


def test_grant_by_suspended_member_is_refused(consortium):
    c = consortium
    c["regulator"].suspend(c.accounts["insurer_a"].address)
    with pytest.raises(ContractRevert) as e:
        grant(c)
    assert e.value.name == "MemberNotInGoodStanding"


def test_grant_with_bad_arguments_is_refused(consortium):
    c = consortium
    now = c.now()
    cases = [
        (dict(grantee=c.accounts["outsider"].address, purpose=Purpose.CLAIMS, expires_at=now + HOUR), "GranteeNotMember"),
        (dict(grantee=c.accounts["insurer_a"].address, purpose=Purpose.CLAIMS, expires_at=now + HOUR), "SelfGrant"),
        (dict(grantee=c.accounts["platform"].address, purpose=0, expires_at=now + HOUR), "InvalidPurpose"),
        (dict(grantee=c.accounts["platform"].address, purpose=Purpose.CLAIMS, expires_at=now - 1), "InvalidWindow"),
        (dict(grantee=c.accounts["platform"].address, purpose=Purpose.CLAIMS, expires_at=now + 10, not_before=now + 20), "InvalidWindow"),
    ]
    for kwargs, expected in cases:
        grantee = kwargs.pop("grantee")
        purpose = kwargs.pop("purpose")
        with pytest.raises(ContractRevert) as e:
            c["insurer_a"].grant(grantee, CLAIMS, purpose, **kwargs)
        assert e.value.name == expected


def test_expired_grant_is_not_authorized(consortium):
    c = consortium
    gid = grant(c, lifetime=100)
    assert authorized(c)
    c.advance(101)
    assert not authorized(c)
    assert c["insurer_a"].grant_status(gid) == EXPIRED


def test_not_yet_valid_grant_is_not_authorized_until_its_window_opens(consortium):
    c = consortium
    gid = grant(c, not_before=c.now() + 500)
    assert not authorized(c)
    assert c["insurer_a"].grant_status(gid) == NOT_YET_VALID
    c.advance(501)
    assert authorized(c)


def test_revoked_grant_is_not_authorized_and_cannot_be_revoked_twice(consortium):
    c = consortium
    gid = grant(c)
    c["insurer_a"].revoke(gid)
    assert not authorized(c)
    assert c["insurer_a"].grant_status(gid) == REVOKED
    with pytest.raises(ContractRevert) as e:
        c["insurer_a"].revoke(gid)
    assert e.value.name == "AlreadyRevoked"
    revoked = c.gateway.events("DataUseAuthorization", "AuthorizationRevoked", filters={"grantId": gid})
    assert len(revoked) == 1


def test_only_the_owner_revokes(consortium):
    c = consortium
    gid = grant(c)
    with pytest.raises(ContractRevert) as e:
        c["platform"].revoke(gid)
    assert e.value.name == "NotGrantOwner"
    with pytest.raises(ContractRevert) as e:
        c["insurer_a"].revoke(999)
    assert e.value.name == "UnknownGrant"


def test_grant_to_suspended_grantee_is_not_authorized_until_reinstated(consortium):
    c = consortium
    gid = grant(c)
    c["regulator"].suspend(c.accounts["platform"].address)
    assert not authorized(c)
    assert c["insurer_a"].grant_status(gid) == GRANTEE_BAD
    c["regulator"].reinstate(c.accounts["platform"].address)
    assert authorized(c)


def test_grant_of_suspended_owner_is_not_authorized(consortium):
    c = consortium
    gid = grant(c)
    c["regulator"].suspend(c.accounts["insurer_a"].address)
    assert not authorized(c)
    assert c["insurer_a"].grant_status(gid) == OWNER_BAD


def test_a_second_valid_grant_keeps_authorizing_after_the_first_is_revoked(consortium):
    c = consortium
    first = grant(c)
    second = grant(c, lifetime=2 * HOUR)
    c["insurer_a"].revoke(second)
    assert c["insurer_a"].active_grant_id(c.accounts["insurer_a"].address, c.accounts["platform"].address, CLAIMS,
                                          Purpose.STATISTICS) == first


def test_access_is_recorded_with_indexed_requester_owner_and_purpose(consortium):
    c = consortium
    gid = grant(c)
    c["insurer_a"].record_access(gid, b"\x11" * 32, 42)
    events = c.gateway.events("DataUseAuthorization", "AccessRecorded",
                              filters={"requester": c.accounts["platform"].address, "purpose": int(Purpose.STATISTICS)})
    assert len(events) == 1
    args = events[0]["args"]
    assert args["owner"] == c.accounts["insurer_a"].address and args["grantId"] == gid
    assert args["queryHash"] == b"\x11" * 32 and args["rows"] == 42 and args["datasetId"] == CLAIMS
    assert c.gateway.events("DataUseAuthorization", "AccessRecorded", filters={"purpose": int(Purpose.PRICING)}) == []


def test_access_recorded_by_anyone_but_the_owner_is_refused(consortium):
    c = consortium
    gid = grant(c)
    for who, expected in (("platform", "NotGrantOwner"), ("insurer_b", "NotGrantOwner"), ("outsider", "NotMember")):
        with pytest.raises(ContractRevert) as e:
            c[who].record_access(gid, b"\x11" * 32, 1)
        assert e.value.name == expected
    with pytest.raises(ContractRevert) as e:
        c["insurer_a"].record_access(77, b"\x11" * 32, 1)
    assert e.value.name == "UnknownGrant"


def test_denial_is_recorded_by_the_data_owner(consortium):
    c = consortium
    c["insurer_a"].record_denial(c.accounts["outsider"].address, CLAIMS, Purpose.PRICING, 3, b"\x22" * 32)
    events = c.gateway.events("DataUseAuthorization", "DenialRecorded", filters={"owner": c.accounts["insurer_a"].address})
    assert len(events) == 1
    assert events[0]["args"]["requester"] == c.accounts["outsider"].address
    assert events[0]["args"]["reasonCode"] == 3
    with pytest.raises(ContractRevert) as e:
        c["outsider"].record_denial(c.accounts["platform"].address, CLAIMS, Purpose.PRICING, 3, b"\x22" * 32)
    assert e.value.name == "NotMember"


def test_batch_logging_emits_one_event_per_record(consortium):
    c = consortium
    gid = grant(c)
    n = 50
    c["insurer_a"].record_access_batch([gid] * n, [bytes([i]) * 32 for i in range(n)], list(range(n))).wait()
    c["insurer_a"].record_denial_batch([c.accounts["insurer_b"].address] * n, [CLAIMS] * n, [Purpose.FRAUD] * n,
                                       [1] * n, [bytes([i]) * 32 for i in range(n)]).wait()
    accesses = c.gateway.events("DataUseAuthorization", "AccessRecorded", filters={"owner": c.accounts["insurer_a"].address})
    denials = c.gateway.events("DataUseAuthorization", "DenialRecorded", filters={"owner": c.accounts["insurer_a"].address})
    assert [e["args"]["rows"] for e in accesses] == list(range(n))
    assert len(denials) == n


def test_batch_logging_refuses_mismatched_lengths_and_foreign_grants_atomically(consortium):
    c = consortium
    mine = grant(c)
    theirs = grant(c, owner="insurer_b")
    with pytest.raises(ContractRevert) as e:
        c["insurer_a"].record_access_batch([mine, mine], [b"\x01" * 32], [1, 2])
    assert e.value.name == "LengthMismatch"
    with pytest.raises(ContractRevert) as e:
        c["insurer_a"].record_access_batch([mine, theirs], [b"\x01" * 32] * 2, [1, 2])
    assert e.value.name == "NotGrantOwner"
    with pytest.raises(ContractRevert) as e:
        c["insurer_a"].record_access_batch([], [], [])
    assert e.value.name == "EmptyBatch"
    # Nothing of the refused batches reached this deployment's log.
    assert c.gateway.events("DataUseAuthorization", "AccessRecorded") == []


# ---------------------------------------------------------------- consent bound to its grant (issue 10 item 4)

SCOPE = b"\x05" * 32


def consent(c, *, owner="insurer_a", grantee="platform", dataset=CLAIMS, purpose=Purpose.STATISTICS, scope=SCOPE,
            lifetime=HOUR, signer=None, subjects_root=b"\x00" * 32, chain_id=None, contract=None) -> SignedConsent:
    """A consent signed by a data subject (or by ``signer``, a member attesting a batch when subjects_root is set)."""
    key = c.accounts[signer] if signer else Account.create()
    terms = Consent(key.address, c.accounts[owner].address, c.accounts[grantee].address, "0x" + dataset.hex(), int(purpose),
                    "0x" + scope.hex(), c.now() + lifetime, "0x" + subjects_root.hex())
    return sign_consent(key, terms, chain_id or c.gateway.chain_id, contract or c["insurer_a"].authorizations.address)


def grant_with(c, signed: SignedConsent, *, owner="insurer_a", grantee="platform", dataset=CLAIMS, purpose=Purpose.STATISTICS,
               scope=SCOPE, lifetime=HOUR):
    expires_at = c.now() + lifetime
    if lifetime == HOUR and c.now() < signed.consent.expires_at < expires_at:
        # The consent was signed a block earlier: a grant of the default term ends with it, not a second after it
        # (under load the chain's clock moves between the two reads). Rows that test outliving ask for 2 hours.
        expires_at = signed.consent.expires_at
    return c[owner].grant(c.accounts[grantee].address, dataset, purpose, expires_at=expires_at, scope_hash=scope,
                          consent=signed)


def _malleated(signed: SignedConsent) -> SignedConsent:
    """The same signature with s -> n - s and v flipped: ecrecover accepts it, EIP-2 does not."""
    n = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
    r, s, v = signed.signature[:32], int.from_bytes(signed.signature[32:64], "big"), signed.signature[64]
    return SignedConsent(signed.consent, r + (n - s).to_bytes(32, "big") + bytes([55 - v]), signed.chain_id, signed.contract)


def _forged(signed: SignedConsent) -> SignedConsent:
    other = Account.create()  # signs the subject's consent in the subject's name
    sig = other.sign_message(signed.consent.typed(signed.chain_id, signed.contract)).signature
    return SignedConsent(signed.consent, bytes(sig), signed.chain_id, signed.contract)


# Every row: one abuse seen (or a variant), the grant it is offered for, and the contract's refusal.
# The four rows marked "seen" are issue 10 item 4: the contract accepted each of them before this change.
CONSENT_ABUSES = [
    ("seen: consent for owner A used by owner B", lambda c: consent(c), dict(owner="insurer_b"), ("ConsentMismatch", "owner")),
    ("seen: consent for grantee P used for grantee B", lambda c: consent(c), dict(grantee="insurer_b"), ("ConsentMismatch", "grantee")),
    ("seen: FRAUD consent for a PRICING grant", lambda c: consent(c, purpose=Purpose.FRAUD), dict(purpose=Purpose.PRICING),
     ("ConsentMismatch", "purpose")),
    ("consent for another dataset", lambda c: consent(c, dataset=dataset_id("policies")), {}, ("ConsentMismatch", "dataset")),
    ("consent for another scope", lambda c: consent(c, scope=b"\x07" * 32), {}, ("ConsentMismatch", "scope")),
    ("grant outliving its consent", lambda c: consent(c, lifetime=HOUR), dict(lifetime=2 * HOUR), ("ConsentMismatch", "expiry")),
    ("expired consent", lambda c: consent(c, lifetime=-1), {}, ("ConsentExpired", None)),
    ("consent signed for another chain", lambda c: consent(c, chain_id=4242), {}, ("BadConsentSignature", None)),
    ("consent signed for another contract", lambda c: consent(c, contract=c.accounts["outsider"].address), {},
     ("BadConsentSignature", None)),
    ("consent signed by someone else in the subject's name", lambda c: _forged(consent(c)), {}, ("BadConsentSignature", None)),
    ("malleated (high-s) signature", lambda c: _malleated(consent(c)), {}, ("BadConsentSignature", None)),
    ("batch attested by a non-member", lambda c: consent(c, signer="outsider", subjects_root=b"\x09" * 32), {},
     ("ConsentSignerNotMember", None)),
]


@pytest.mark.parametrize("name,make,grant_terms,expected", CONSENT_ABUSES, ids=[row[0] for row in CONSENT_ABUSES])
def test_consent_that_does_not_match_its_grant_is_refused(consortium, name, make, grant_terms, expected):
    c = consortium
    with pytest.raises(ContractRevert) as e:
        grant_with(c, make(c), **grant_terms)
    error, field = expected
    assert e.value.name == error
    if field:
        assert CONSENT_FIELDS[e.value.args_by_name["field"]] == field
    assert c["insurer_a"].gateway.call(c["insurer_a"].authorizations.functions.grantCount()) == 0


def test_seen_replay_a_consent_authorizes_one_grant_only(consortium):
    c = consortium
    signed = consent(c)
    gid = grant_with(c, signed)
    digest = signed.consent.digest(signed.chain_id, signed.contract)
    assert c["insurer_a"].get_grant(gid).consent_ref == digest
    assert c["insurer_a"].consent_used_by(digest) == gid
    for again in (signed, _malleated(signed)):  # replayed as is, and with its malleated twin signature
        with pytest.raises(ContractRevert) as e:
            grant_with(c, again)
        assert e.value.name == "ConsentAlreadyUsed" and e.value.args_by_name["grantId"] == gid
    assert c["insurer_a"].grants_given(c.accounts["insurer_a"].address) == [gid]


def test_matching_subject_consent_and_member_attested_batch_are_accepted_with_an_event(consortium):
    c = consortium
    subject = consent(c)
    batch = consent(c, signer="platform", subjects_root=b"\x09" * 32, purpose=Purpose.CLAIMS)
    g1 = grant_with(c, subject)
    g2 = grant_with(c, batch, purpose=Purpose.CLAIMS)
    logs = c.gateway.w3.eth.get_logs({"address": c["insurer_a"].authorizations.address, "fromBlock": 0})
    accepted = [c["insurer_a"].authorizations.events.ConsentAccepted().process_log(lg)["args"] for lg in logs
                if lg["topics"][0] == c.gateway.w3.keccak(text="ConsentAccepted(uint256,bytes32,address,bytes32)")]
    assert [(a["grantId"], a["signer"], a["subjectsRoot"]) for a in accepted] == [
        (g1, subject.consent.signer, b"\x00" * 32), (g2, c.accounts["platform"].address, b"\x09" * 32)]
    assert authorized(c) and authorized(c, purpose=Purpose.CLAIMS)
