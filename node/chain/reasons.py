"""Refusal reason codes written with every denial on chain (DataUseAuthorization.recordDenial)."""
from __future__ import annotations

from enum import IntEnum


class DenialReason(IntEnum):
    NO_GRANT = 1
    REVOKED = 2
    EXPIRED = 3
    NOT_YET_VALID = 4
    WRONG_PURPOSE = 5
    WRONG_DATASET = 6
    REQUESTER_NOT_MEMBER = 7
    REQUESTER_SUSPENDED = 8
    OWNER_SUSPENDED = 9
    BAD_SIGNATURE = 10
    REPLAYED = 11
    SCOPE_EXCEEDED = 12
    BUDGET_EXHAUSTED = 13
    # release policy refusals by the data owner's gate (node/access/release_gate.py)
    TOO_FEW_CONTRIBUTORS = 14
    NOT_LABEL_OWNER = 15
    DIFFERENCING = 16
