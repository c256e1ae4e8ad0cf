"""The consortium ledger as one member sees it: domain operations on the four contracts.

Each method signs with the member's own account; reads go through the same gateway. Ids come from
the events of the mined transaction, so a returned id is one the chain really assigned.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Sequence

from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.logs import DISCARD

from node.chain.encoded_call import EncodedCall
from node.chain.errors import ChainError, ContractRevert
from node.chain.gateway import ChainGateway, SentTransaction
from node.enums import ZERO32, ClaimStep, GrantState, JobState, Purpose, Role, Status

if TYPE_CHECKING:
    from node.access.consent import SignedConsent


@dataclass(frozen=True)
class MemberRecord:
    address: str
    name: str
    role: Role
    status: Status
    endpoint: str
    x25519_key: bytes
    paillier_fingerprint: bytes
    admitted_at: int

    @property
    def in_good_standing(self) -> bool:
        return self.status in (Status.ACTIVE, Status.WARNED)


@dataclass(frozen=True)
class GrantRecord:
    grant_id: int
    owner: str
    grantee: str
    dataset_id: bytes
    purpose: Purpose
    scope_hash: bytes
    not_before: int
    expires_at: int
    consent_ref: bytes
    created_at: int
    revoked_at: int


def _batch_record(b: Any) -> dict:
    return {"root": bytes(b[0]), "batch_id": bytes(b[1]), "size": b[2], "submitter": b[3], "block_number": b[4],
            "timestamp": b[5], "metadata_hash": bytes(b[6])}


_BATCH_ANCHORED = "0x" + Web3.keccak(text="BatchAnchored(bytes32,bytes32,address,uint64,bytes32)").hex().removeprefix("0x")


def batch_in_receipt(gateway: ChainGateway, receipt: dict, batch_id: bytes) -> dict | None:
    """The anchoring of ``batch_id`` as a settled anchorBatch receipt (JSON-RPC form) shows it, in find_batch's form
    (its BatchAnchored event, and the time of its block), or None when the receipt does not show it (reverted, no
    such event, the block not at hand): then ask find_batch. Spares the anchorer two contract calls per batch."""
    if int(receipt.get("status", "0x0"), 16) != 1:
        return None
    registry = gateway.contract("EvidenceRegistry").address.lower()
    for entry in receipt.get("logs", []):
        topics = entry.get("topics") or []
        if (entry.get("address", "").lower() != registry or len(topics) != 4 or topics[0] != _BATCH_ANCHORED
                or bytes.fromhex(topics[2][2:]) != batch_id):
            continue
        data = bytes.fromhex(entry["data"][2:])
        try:
            block = gateway.raw_request("eth_getBlockByNumber", [receipt["blockNumber"], False]).get("result")
        except ChainError:
            return None
        if not block or block.get("hash", "").lower() != receipt["blockHash"].lower():
            return None
        return {"root": bytes.fromhex(topics[1][2:]), "batch_id": batch_id, "size": int.from_bytes(data[0:32], "big"),
                "submitter": Web3.to_checksum_address("0x" + topics[3][-40:]), "block_number": int(receipt["blockNumber"], 16),
                "timestamp": int(block["timestamp"], 16), "metadata_hash": data[32:64]}
    return None


def find_batch(gateway: ChainGateway, submitter: str, *, root: bytes | None = None,
               batch_id: bytes | None = None) -> dict | None:
    """The evidence batch ``submitter`` anchored with this root (or batch id), or None. Needs no account.

    Roots and batch ids are write-once per submitter (each member anchors in its own namespace).
    """
    evidence = gateway.contract("EvidenceRegistry")
    submitter = Web3.to_checksum_address(submitter)
    fn, unknown = ((evidence.functions.getBatchByRoot(submitter, root), "UnknownRoot") if root is not None
                   else (evidence.functions.getBatch(submitter, batch_id), "UnknownBatch"))
    try:
        return _batch_record(gateway.call(fn))
    except ContractRevert as exc:
        if exc.name == unknown:
            return None
        raise


@lru_cache(maxsize=1024)
def dataset_id(name: str) -> bytes:
    """Datasets are named on chain by the keccak-256 of their name (names stay readable off chain).
    Cached: every served request and every log record names its dataset."""
    return bytes(Web3.keccak(text=name))


class Ledger:
    def __init__(self, gateway: ChainGateway, account: LocalAccount):
        self.gateway = gateway
        self.account = account
        self.registry = gateway.contract("ConsortiumRegistry")
        self.authorizations = gateway.contract("DataUseAuthorization")
        self.evidence = gateway.contract("EvidenceRegistry")
        self.stats = gateway.contract("StatsLedger")

    @property
    def address(self) -> str:
        return self.account.address

    def _send(self, fn: Any) -> Any:
        return self.gateway.transact(self.account, fn)

    def _submit(self, fn: Any) -> SentTransaction:
        return self.gateway.submit(self.account, fn)

    def _event_arg(self, receipt: Any, contract: Any, event: str, arg: str) -> Any:
        logs = getattr(contract.events, event)().process_receipt(receipt, errors=DISCARD)
        return logs[0]["args"][arg]

    # ------------------------------------------------------------------ registry

    def member(self, address: str) -> MemberRecord:
        return read_member(self.gateway, address)

    def members(self) -> list[MemberRecord]:
        return read_members(self.gateway)

    def propose_member(self, candidate: str, name: str, role: Role, endpoint: str = "", x25519_key: bytes = ZERO32,
                       paillier_fingerprint: bytes = ZERO32, lifetime: int = 0) -> int:
        receipt = self._send(self.registry.functions.propose(Web3.to_checksum_address(candidate), name, int(role), endpoint,
                                                             x25519_key, paillier_fingerprint, lifetime))
        return self._event_arg(receipt, self.registry, "MemberProposed", "proposalId")

    def propose_expulsion(self, member: str, reason_hash: bytes = ZERO32, lifetime: int = 0) -> int:
        """Open a proposal to expel ``member``; it passes by the same supermajority as an admission."""
        receipt = self._send(self.registry.functions.proposeExpulsion(Web3.to_checksum_address(member), reason_hash, lifetime))
        return self._event_arg(receipt, self.registry, "ExpulsionProposed", "proposalId")

    def vote(self, proposal_id: int) -> bool:
        """Vote for a proposal; True when this vote carried it out (candidate admitted or member expelled)."""
        receipt = self._send(self.registry.functions.vote(proposal_id))
        return bool(self.registry.events.MemberAdmitted().process_receipt(receipt, errors=DISCARD)
                    or self.registry.events.MemberStatusChanged().process_receipt(receipt, errors=DISCARD))

    def threshold(self) -> dict:
        """The vote threshold now: the electorate (members not expelled) and the votes a proposal needs."""
        return {"electorate": self.gateway.call(self.registry.functions.electorate()),
                "votes_needed": self.gateway.call(self.registry.functions.votesNeeded())}

    def proposal(self, proposal_id: int) -> dict:
        p = self.gateway.call(self.registry.functions.getProposal(proposal_id))
        return {"proposal_id": proposal_id, "candidate": p[0], "proposer": p[1], "name": p[2], "role": Role(p[3]).name,
                "expires_at": p[7], "votes": p[8], "executed": p[9], "action": ("ADMIT", "EXPEL")[p[10]]}

    def warn(self, member: str, reason_hash: bytes = ZERO32) -> Any:
        return self._send(self.registry.functions.warn(Web3.to_checksum_address(member), reason_hash))

    def suspend(self, member: str, reason_hash: bytes = ZERO32) -> Any:
        return self._send(self.registry.functions.suspend(Web3.to_checksum_address(member), reason_hash))

    def reinstate(self, member: str, reason_hash: bytes = ZERO32) -> Any:
        return self._send(self.registry.functions.reinstate(Web3.to_checksum_address(member), reason_hash))

    def rotate_keys(self, x25519_key: bytes, paillier_fingerprint: bytes) -> Any:
        return self._send(self.registry.functions.rotateKeys(x25519_key, paillier_fingerprint))

    def set_endpoint(self, endpoint: str) -> Any:
        return self._send(self.registry.functions.setEndpoint(endpoint))

    # ------------------------------------------------------------------ authorizations

    def grant(self, grantee: str, dataset: bytes, purpose: Purpose, *, expires_at: int, not_before: int = 0,
              scope_hash: bytes = ZERO32, consent: SignedConsent | None = None, consent_ref: bytes = ZERO32) -> int:
        """Grant with ``consent`` (a subject's, or a member-attested batch) bound to exactly this grant.

        Without ``consent``, this member attests ``consent_ref`` (the hash of its own consent record or
        legal basis) for exactly this grant, until ``expires_at``: the chain records it as the signer.
        """
        from node.access.consent import Consent, sign_consent

        if consent is None:
            consent = sign_consent(self.account, Consent(
                self.account.address, self.account.address, grantee, "0x" + dataset.hex(), int(purpose), "0x" + scope_hash.hex(),
                expires_at, "0x" + consent_ref.hex()), self.gateway.chain_id, self.authorizations.address)
        receipt = self._send(self.authorizations.functions.grant(
            Web3.to_checksum_address(grantee), dataset, int(purpose), scope_hash, not_before, expires_at,
            consent.consent.as_tuple(), consent.signature))
        return self._event_arg(receipt, self.authorizations, "AuthorizationGranted", "grantId")

    def consent_used_by(self, digest: bytes) -> int:
        """The grant a consent digest was used for, 0 when unused."""
        return self.gateway.call(self.authorizations.functions.consentUsedBy(digest))

    def revoke(self, grant_id: int) -> Any:
        return self._send(self.authorizations.functions.revoke(grant_id))

    def is_authorized(self, owner: str, grantee: str, dataset: bytes, purpose: Purpose) -> bool:
        return self.gateway.call(self.authorizations.functions.isAuthorized(
            Web3.to_checksum_address(owner), Web3.to_checksum_address(grantee), dataset, int(purpose)))

    def active_grant_id(self, owner: str, grantee: str, dataset: bytes, purpose: Purpose) -> int:
        return self.gateway.call(self.authorizations.functions.activeGrantId(
            Web3.to_checksum_address(owner), Web3.to_checksum_address(grantee), dataset, int(purpose)))

    def grant_status(self, grant_id: int) -> GrantState:
        return GrantState(self.gateway.call(self.authorizations.functions.grantStatus(grant_id)))

    def get_grant(self, grant_id: int) -> GrantRecord:
        g = self.gateway.call(self.authorizations.functions.getGrant(grant_id))
        return GrantRecord(grant_id, g[0], g[1], bytes(g[2]), Purpose(g[3]), bytes(g[4]), g[5], g[6], bytes(g[7]), g[8], g[9])

    def grants_given(self, owner: str) -> list[int]:
        return list(self.gateway.call(self.authorizations.functions.grantsGivenBy(Web3.to_checksum_address(owner))))

    def grants_received(self, grantee: str) -> list[int]:
        return list(self.gateway.call(self.authorizations.functions.grantsReceivedBy(Web3.to_checksum_address(grantee))))

    def record_access(self, grant_id: int, query_hash: bytes, rows: int) -> Any:
        return self._send(self.authorizations.functions.recordAccess(grant_id, query_hash, rows))

    def record_access_batch(self, grant_ids: Sequence[int], query_hashes: Sequence[bytes], rows: Sequence[int]) -> SentTransaction:
        return self._submit(self.authorizations.functions.recordAccessBatch(list(grant_ids), list(query_hashes), list(rows)))

    def record_denial(self, requester: str, dataset: bytes, purpose: Purpose, reason_code: int, query_hash: bytes) -> Any:
        return self._send(self.authorizations.functions.recordDenial(Web3.to_checksum_address(requester), dataset,
                                                                     int(purpose), reason_code, query_hash))

    def record_denial_batch(self, requesters: Sequence[str], datasets: Sequence[bytes], purposes: Sequence[int],
                            reason_codes: Sequence[int], query_hashes: Sequence[bytes]) -> SentTransaction:
        return self._submit(self.authorizations.functions.recordDenialBatch(
            [Web3.to_checksum_address(r) for r in requesters], list(datasets), [int(p) for p in purposes],
            list(reason_codes), list(query_hashes)))

    # The access log's batches, encoded once with eth_abi (node/chain/encoded_call.py): same bytes as the two
    # methods above, without web3's per-element checks, which cost a second of CPU per thousand records.

    def access_batch_call(self, grant_ids: list[int], query_hashes: list[bytes], rows: list[int]) -> EncodedCall:
        return EncodedCall.of(self.authorizations, "recordAccessBatch", grant_ids, query_hashes, rows)

    def denial_batch_call(self, requesters: list[str], datasets: list[bytes], purposes: list[int],
                          reason_codes: list[int], query_hashes: list[bytes]) -> EncodedCall:
        return EncodedCall.of(self.authorizations, "recordDenialBatch", requesters, datasets, purposes, reason_codes,
                              query_hashes)

    # ------------------------------------------------------------------ evidence

    def anchor_batch(self, root: bytes, size: int, batch_id: bytes, metadata_hash: bytes = ZERO32) -> Any:
        return self._send(self.evidence.functions.anchorBatch(root, size, batch_id, metadata_hash))

    def batch_by_root(self, root: bytes, submitter: str | None = None) -> dict:
        """The batch ``submitter`` (default: this member) anchored with this root (ContractRevert UnknownRoot when none)."""
        submitter = Web3.to_checksum_address(submitter or self.address)
        return _batch_record(self.gateway.call(self.evidence.functions.getBatchByRoot(submitter, root)))

    def record_claim_step(self, claim_id_hash: bytes, step: ClaimStep, detail_hash: bytes = ZERO32, flags: int = 0) -> Any:
        """Move this member's claim ``claim_id_hash`` on; on chain it is keyed by (this member, claim id hash)."""
        return self._send(self.evidence.functions.recordClaimStep(claim_id_hash, int(step), detail_hash, flags))

    def get_claim(self, insurer: str, claim_id_hash: bytes) -> dict:
        c = self.gateway.call(self.evidence.functions.getClaim(Web3.to_checksum_address(insurer), claim_id_hash))
        return {"insurer": c[0], "step": ClaimStep(c[1]), "updated_at": c[2]}

    # ------------------------------------------------------------------ statistics jobs

    def open_job(self, spec_hash: bytes, participants: Sequence[str], key_fingerprint: bytes, min_cohort: int, deadline: int) -> int:
        receipt = self._send(self.stats.functions.openJob(spec_hash, [Web3.to_checksum_address(p) for p in participants],
                                                          key_fingerprint, min_cohort, deadline))
        return self._event_arg(receipt, self.stats, "JobOpened", "jobId")

    def commit_contribution(self, job_id: int, ciphertext_hash: bytes) -> Any:
        return self._send(self.stats.functions.commitContribution(job_id, ciphertext_hash))

    def publish_result(self, job_id: int, result_hash: bytes) -> Any:
        return self._send(self.stats.functions.publishResult(job_id, result_hash))

    def abort_job(self, job_id: int) -> Any:
        return self._send(self.stats.functions.abort(job_id))

    def get_job(self, job_id: int) -> dict:
        j = self.gateway.call(self.stats.functions.getJob(job_id))
        return {"requester": j[0], "spec_hash": bytes(j[1]), "key_fingerprint": bytes(j[2]), "min_cohort": j[3],
                "deadline": j[4], "opened_at": j[5], "state": JobState(j[6]), "committed": j[7], "result_hash": bytes(j[8])}

    # ------------------------------------------------------------------ issue 12 (reshape): calls that lived in
    # node/stats and node/evidence; the ledger is the one place that builds contract calls and decodes states

    def submit_anchor_batch(self, root: bytes, size: int, batch_id: bytes, metadata_hash: bytes = ZERO32) -> SentTransaction:
        """anchorBatch sent without waiting: the evidence outbox records the hash before the receipt."""
        return self._submit(self.evidence.functions.anchorBatch(root, size, batch_id, metadata_hash))

    def commitment_of(self, job_id: int, participant: str) -> bytes:
        """The commitment ``participant`` made to a statistics job (ZERO32 while it has made none)."""
        return bytes(self.gateway.call(self.stats.functions.commitmentOf(job_id, Web3.to_checksum_address(participant))))

    def is_participant(self, job_id: int, address: str) -> bool:
        return bool(self.gateway.call(self.stats.functions.isParticipant(job_id, Web3.to_checksum_address(address))))

    def jobs_opened(self, spec_hash: bytes, requester: str) -> list[tuple[int, int]]:
        """(job id, deadline) of every job ``requester`` opened with this spec hash, oldest first."""
        events = self.gateway.events("StatsLedger", "JobOpened", filters={"specHash": spec_hash})
        requester = Web3.to_checksum_address(requester)
        return [(e["args"]["jobId"], e["args"]["deadline"]) for e in events if e["args"]["requester"] == requester]

    # ------------------------------------------------------------------ pools (risk pool, mutual aid; node/pools/)

    @property
    def risk_pool(self) -> Any:
        return self.gateway.contract("RiskPool")

    @property
    def mutual_aid(self) -> Any:
        return self.gateway.contract("MutualAid")

    def open_pool(self, pool_id: bytes, members: Sequence[str], weights: Sequence[int], cap_per_period: int,
                  period_seconds: int) -> Any:
        return self._send(self.risk_pool.functions.openPool(pool_id, [Web3.to_checksum_address(m) for m in members],
                                                            list(weights), cap_per_period, period_seconds))

    def join_pool(self, pool_id: bytes) -> Any:
        return self._send(self.risk_pool.functions.joinPool(pool_id))

    def propose_ratio(self, pool_id: bytes, weights: Sequence[int]) -> int:
        receipt = self._send(self.risk_pool.functions.proposeRatio(pool_id, list(weights)))
        return self._event_arg(receipt, self.risk_pool, "RatioProposed", "proposal")

    def approve_ratio(self, pool_id: bytes, proposal: int) -> bool:
        """Approve; True when this approval was the last one and the new ratio took effect."""
        receipt = self._send(self.risk_pool.functions.approveRatio(pool_id, proposal))
        return bool(self.risk_pool.events.RatioChanged().process_receipt(receipt, errors=DISCARD))

    def report_loss(self, pool_id: bytes, claim_id_hash: bytes, amount: int, evidence_root: bytes,
                    finding_hash: bytes = ZERO32) -> dict:
        """Report a confirmed loss on this member's claim; returns the loss id, the shared amount and each share."""
        receipt = self._send(self.risk_pool.functions.reportLoss(pool_id, claim_id_hash, amount, evidence_root, finding_hash))
        shared = self.risk_pool.events.LossShared().process_receipt(receipt, errors=DISCARD)[0]["args"]
        shares = self.risk_pool.events.ShareAssigned().process_receipt(receipt, errors=DISCARD)
        return {"loss_id": bytes(shared["lossId"]), "shared": shared["loss"]["shared"], "period": shared["loss"]["period"],
                "shares": {s["args"]["member"]: s["args"]["amount"] for s in shares}, "block_number": receipt["blockNumber"]}

    def record_contribution(self, loss_id: bytes, payment_ref: bytes) -> Any:
        return self._send(self.risk_pool.functions.recordContribution(loss_id, payment_ref))

    def confirm_contribution(self, loss_id: bytes, payer: str) -> Any:
        return self._send(self.risk_pool.functions.confirmContribution(loss_id, Web3.to_checksum_address(payer)))

    def get_pool(self, pool_id: bytes) -> dict:
        p, members, weights = self.gateway.call(self.risk_pool.functions.getPool(pool_id))
        return {"opener": p[0], "opened_at": p[1], "period_seconds": p[2], "cap_per_period": p[3], "ratio_version": p[4],
                "ratio_proposal": p[5], "active": p[6], "members": list(members), "weights": list(weights)}

    def pool_period(self, pool_id: bytes, timestamp: int) -> dict:
        period, shared = self.gateway.call(self.risk_pool.functions.periodOf(pool_id, timestamp))
        return {"period": period, "shared": shared}

    def get_loss(self, loss_id: bytes) -> dict:
        loss = self.gateway.call(self.risk_pool.functions.getLoss(loss_id))
        return {"pool_id": bytes(loss[0]), "insurer": loss[1], "claim_id_hash": bytes(loss[2]), "kind": loss[3],
                "reported": loss[4], "shared": loss[5], "period": loss[6], "ratio_version": loss[7], "finding_hash": bytes(loss[8])}

    def loss_share(self, loss_id: bytes, member: str) -> tuple[int, int]:
        """(amount, payment state: 1 owed, 2 recorded, 3 confirmed) of ``member``'s share of a loss."""
        amount, state = self.gateway.call(self.risk_pool.functions.shareOf(loss_id, Web3.to_checksum_address(member)))
        return amount, state

    def anchor_apportionment(self, claim_id_hash: bytes, evidence_root: bytes, payout: int, participants: int, rule: int,
                             share_root: bytes, share_list_hash: bytes, payee: str) -> bytes:
        """Anchor a mutual-aid apportionment of this member's approved claim; returns its claim key."""
        terms = (claim_id_hash, evidence_root, payout, participants, rule, share_root, share_list_hash,
                 Web3.to_checksum_address(payee))
        receipt = self._send(self.mutual_aid.functions.anchorApportionment(terms))
        return bytes(self._event_arg(receipt, self.mutual_aid, "ApportionmentAnchored", "claimKey"))

    def record_payout(self, claim_key: bytes, payment_ref: bytes) -> Any:
        return self._send(self.mutual_aid.functions.recordPayout(claim_key, payment_ref))

    def confirm_payout(self, claim_key: bytes) -> Any:
        return self._send(self.mutual_aid.functions.confirmPayout(claim_key))

    def get_apportionment(self, claim_key: bytes) -> dict:
        a = self.gateway.call(self.mutual_aid.functions.getApportionment(claim_key))
        return {"organiser": a[0], "claim_id_hash": bytes(a[1]), "share_root": bytes(a[2]), "payout": a[3],
                "participants": a[4], "rule": a[5], "state": a[6], "share_list_hash": bytes(a[7]), "payee": a[8],
                "payment_ref": bytes(a[9]), "anchored_at": a[10]}

    # ------------------------------------------------------------------ settlement (offers, certificates, statements)
    # Area: settlement (issue 15). DataMarket sells certificates that create grants; Settlement holds the
    # agreements, declared figures, statements and payments. Amounts are integers in the smallest currency unit.

    @property
    def market(self) -> Any:
        return self.gateway.contract("DataMarket")

    @property
    def settlement(self) -> Any:
        return self.gateway.contract("Settlement")

    def publish_offer(self, dataset: bytes, purpose: Purpose, *, term: int, period_fee: int = 0, per_access_price: int = 0,
                      per_row_price: int = 0, per_contribution_price: int = 0, revenue_share_bps: int = 0,
                      scope_hash: bytes = ZERO32, consent_ref: bytes = ZERO32) -> int:
        terms = (dataset, int(purpose), scope_hash, term, period_fee, per_access_price, per_row_price, per_contribution_price,
                 revenue_share_bps, consent_ref)
        receipt = self._send(self.market.functions.publishOffer(terms))
        return self._event_arg(receipt, self.market, "OfferPublished", "offerId")

    def withdraw_offer(self, offer_id: int) -> Any:
        return self._send(self.market.functions.withdrawOffer(offer_id))

    def buy_offer(self, offer_id: int) -> dict:
        """Buy an offer: returns the certificate id and the id of the grant it created."""
        receipt = self._send(self.market.functions.buy(offer_id))
        logs = self.market.events.CertificateIssued().process_receipt(receipt, errors=DISCARD)
        return {"certificate_id": logs[0]["args"]["certificateId"], "grant_id": logs[0]["args"]["grantId"],
                "expires_at": logs[0]["args"]["expiresAt"]}

    def revoke_certificate(self, certificate_id: int, reason_hash: bytes = ZERO32) -> Any:
        return self._send(self.market.functions.revokeCertificate(certificate_id, reason_hash))

    def get_offer(self, offer_id: int) -> dict:
        o = self.gateway.call(self.market.functions.getOffer(offer_id))
        t = o[3]
        return {"offer_id": offer_id, "owner": o[0], "open": o[1], "published_at": o[2], "dataset_id": bytes(t[0]),
                "purpose": Purpose(t[1]), "scope_hash": bytes(t[2]), "term": t[3], "period_fee": t[4], "per_access_price": t[5],
                "per_row_price": t[6], "per_contribution_price": t[7], "revenue_share_bps": t[8], "consent_ref": bytes(t[9])}

    def get_certificate(self, certificate_id: int) -> dict:
        c = self.gateway.call(self.market.functions.getCertificate(certificate_id))
        return {"certificate_id": certificate_id, "offer_id": c[0], "grant_id": c[1], "holder": c[2], "owner": c[3],
                "issued_at": c[4], "expires_at": c[5], "revoked_at": c[6]}

    def certificate_valid(self, certificate_id: int) -> bool:
        return self.gateway.call(self.market.functions.certificateValid(certificate_id))

    def propose_agreement(self, payer: str, providers: Sequence[str], formula: Any, *, period_start: int, period_seconds: int,
                          dispute_window: int) -> int:
        """``formula``: node.settlement.formula.Formula. The proposer (a party) accepts by proposing."""
        receipt = self._send(self.settlement.functions.proposeAgreement(
            Web3.to_checksum_address(payer), [Web3.to_checksum_address(p) for p in providers], formula.as_tuple(),
            period_start, period_seconds, dispute_window))
        return self._event_arg(receipt, self.settlement, "AgreementProposed", "agreementId")

    def accept_agreement(self, agreement_id: int) -> Any:
        return self._send(self.settlement.functions.acceptAgreement(agreement_id))

    def get_agreement(self, agreement_id: int) -> dict:
        a = self.gateway.call(self.settlement.functions.getAgreement(agreement_id))
        return {"agreement_id": agreement_id, "payer": a[0], "state": a[1], "period_start": a[2], "period_seconds": a[3],
                "dispute_window": a[4], "acceptances": a[5], "formula": tuple(a[6]), "providers": list(a[7])}

    def agreement_count(self) -> int:
        return self.gateway.call(self.settlement.functions.agreementCount())

    def declare_figure(self, agreement_id: int, period: int, provider: str, figure: int, value: int,
                       evidence_hash: bytes = ZERO32) -> Any:
        return self._send(self.settlement.functions.declareFigure(agreement_id, period, Web3.to_checksum_address(provider),
                                                                  int(figure), value, evidence_hash))

    def issue_statement(self, agreement_id: int, period: int, inputs_hash: bytes, amounts: Sequence[int]) -> Any:
        return self._send(self.settlement.functions.issueStatement(agreement_id, period, inputs_hash, list(amounts)))

    def confirm_statement(self, agreement_id: int, period: int) -> Any:
        return self._send(self.settlement.functions.confirmStatement(agreement_id, period))

    def dispute_statement(self, agreement_id: int, period: int, reason_hash: bytes = ZERO32) -> Any:
        return self._send(self.settlement.functions.disputeStatement(agreement_id, period, reason_hash))

    def record_payment(self, agreement_id: int, period: int, payee: str, payment_ref: bytes) -> Any:
        return self._send(self.settlement.functions.recordPayment(agreement_id, period, Web3.to_checksum_address(payee),
                                                                  payment_ref))

    def confirm_payment(self, agreement_id: int, period: int) -> Any:
        return self._send(self.settlement.functions.confirmPayment(agreement_id, period))

    def get_statement(self, agreement_id: int, period: int) -> dict:
        s = self.gateway.call(self.settlement.functions.getStatement(agreement_id, period))
        amounts = self.gateway.call(self.settlement.functions.statementAmounts(agreement_id, period))
        return {"agreement_id": agreement_id, "period": period, "state": STATEMENT_STATES[s[0]], "revision": s[1],
                "confirmations": s[2], "unpaid": s[3], "issued_at": s[4], "inputs_hash": bytes(s[5]), "total": s[6],
                "issuer": s[7], "amounts": list(amounts)}

    def payment_state(self, agreement_id: int, period: int, payee: str) -> int:
        return self.gateway.call(self.settlement.functions.paymentState(agreement_id, period, Web3.to_checksum_address(payee)))


STATEMENT_STATES = ("NONE", "ISSUED", "DISPUTED", "CONFIRMED", "SETTLED")


def read_member(gateway: ChainGateway, address: str) -> MemberRecord:
    """A member's registry record (Status.NONE for an address that never was one). Needs no account."""
    m = gateway.call(gateway.contract("ConsortiumRegistry").functions.getMember(Web3.to_checksum_address(address)))
    role = Role(m[1]) if m[1] else None
    return MemberRecord(Web3.to_checksum_address(address), m[0], role, Status(m[2]), m[3], bytes(m[4]), bytes(m[5]), m[6])


def read_members(gateway: ChainGateway) -> list[MemberRecord]:
    """Every account the registry has a record for (expelled ones too), in admission order. Needs no account."""
    registry = gateway.contract("ConsortiumRegistry")
    count = gateway.call(registry.functions.memberCount())
    return [read_member(gateway, gateway.call(registry.functions.memberAt(i))) for i in range(count)]


def card_reason_hash(reason: str) -> bytes:
    """What goes on chain as a card's or an expulsion's ``reasonHash``: the SHA-256 of the reason's UTF-8 text, like
    every other off-chain text the chain commits to (claim details, consent references); no reason: ZERO32."""
    return hashlib.sha256(reason.encode()).digest() if reason else ZERO32
