"""Deny-by-default authorization at the data owner's node, with a precise reason for every refusal."""
from __future__ import annotations

from dataclasses import dataclass

from node.access.authz_cache import AuthorizationCache
from node.chain.deployment import Purpose, Status
from node.chain.ledger import Ledger, dataset_id
from node.chain.reasons import DenialReason

# GrantState of DataUseAuthorization.grantStatus
_STATE_REASON = {2: DenialReason.REVOKED, 3: DenialReason.NOT_YET_VALID, 4: DenialReason.EXPIRED,
                 5: DenialReason.OWNER_SUSPENDED, 6: DenialReason.REQUESTER_SUSPENDED}


@dataclass(frozen=True)
class Decision:
    allowed: bool
    grant_id: int = 0
    reason: DenialReason | None = None

    @property
    def message(self) -> str:
        if self.allowed:
            return f"authorized by grant {self.grant_id}"
        return {
            DenialReason.NO_GRANT: "no grant from this member covers the request",
            DenialReason.REVOKED: "the grant was revoked",
            DenialReason.EXPIRED: "the grant has expired",
            DenialReason.NOT_YET_VALID: "the grant is not valid yet",
            DenialReason.WRONG_PURPOSE: "the grant is for another purpose",
            DenialReason.WRONG_DATASET: "the grant is for another dataset",
            DenialReason.REQUESTER_NOT_MEMBER: "the requester is not a consortium member",
            DenialReason.REQUESTER_SUSPENDED: "the requester is suspended or expelled",
            DenialReason.OWNER_SUSPENDED: "this member is suspended and may not serve data",
        }.get(self.reason, self.reason.name.lower() if self.reason else "refused")


class Enforcer:
    def __init__(self, ledger: Ledger, cache: AuthorizationCache | None = None):
        self.ledger = ledger
        self.owner = ledger.address
        self.cache = cache

    def decide(self, requester: str, dataset: str, purpose: Purpose, arrived: float | None = None) -> Decision:
        """``arrived``: when the request arrived (monotonic clock); chain changes mined before it are honoured."""
        if self.cache is not None:
            self.cache.sync(arrived)
            status = self.cache.member_status(requester)
        else:
            status = self.ledger.member(requester).status
        if status == Status.NONE:
            return Decision(False, reason=DenialReason.REQUESTER_NOT_MEMBER)
        if status not in (Status.ACTIVE, Status.WARNED):
            return Decision(False, reason=DenialReason.REQUESTER_SUSPENDED)
        ds = dataset_id(dataset)
        if self.cache is not None:
            grant_id = self.cache.grant(self.owner, requester, ds, purpose)
        else:
            grant_id = self.ledger.active_grant_id(self.owner, requester, ds, purpose)
        if grant_id:
            return Decision(True, grant_id=grant_id)
        return Decision(False, reason=self._diagnose(requester, ds, purpose))

    def _diagnose(self, requester: str, ds: bytes, purpose: Purpose) -> DenialReason:
        """Why no grant applies: only run on refusals, so it may read every grant the requester holds."""
        grants = [self.ledger.get_grant(g) for g in self.ledger.grants_received(requester)]
        mine = [g for g in grants if g.owner == self.owner]
        exact = [g for g in mine if g.dataset_id == ds and g.purpose == purpose]
        if exact:
            state = self.ledger.grant_status(exact[-1].grant_id)
            return _STATE_REASON.get(state, DenialReason.NO_GRANT)
        if any(g.dataset_id == ds for g in mine):
            return DenialReason.WRONG_PURPOSE
        if any(g.purpose == purpose for g in mine):
            return DenialReason.WRONG_DATASET
        return DenialReason.NO_GRANT
