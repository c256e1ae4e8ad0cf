"""What the contracts store as small integers, named once; the values are the Solidity enums' order.

Role, Status and Purpose are ConsortiumRegistry's and DataUseAuthorization's, ClaimStep is EvidenceRegistry's,
JobState is StatsLedger's and GrantState is what DataUseAuthorization.grantStatus answers. node/chain/ledger.py
decodes the chain's numbers into these; the rest of the node compares names, never bare numbers.
"""
from __future__ import annotations

from enum import IntEnum
from typing import Literal

# An unset bytes32 on chain: no key registered, no commitment yet, no reason given.
ZERO32 = bytes(32)


class Role(IntEnum):
    INSURER = 1
    PLATFORM = 2
    TECH = 3
    AUDITOR = 4
    REGULATOR = 5


class Status(IntEnum):
    NONE = 0
    ACTIVE = 1
    WARNED = 2
    SUSPENDED = 3
    EXPELLED = 4


class Purpose(IntEnum):
    UNDERWRITING = 1
    CLAIMS = 2
    FRAUD = 3
    STATISTICS = 4
    PRICING = 5


class ClaimStep(IntEnum):
    REPORTED = 1
    MATERIALS_COMPLETE = 2
    ASSESSED = 3
    APPROVED = 4
    REJECTED = 5
    PAID = 6


class JobState(IntEnum):
    NONE = 0
    OPEN = 1
    PUBLISHED = 2
    ABORTED = 3


class GrantState(IntEnum):
    VALID = 0
    UNKNOWN = 1
    REVOKED = 2
    NOT_YET_VALID = 3
    EXPIRED = 4
    OWNER_NOT_IN_GOOD_STANDING = 5
    GRANTEE_NOT_IN_GOOD_STANDING = 6


# The names the CLI offers and the API accepts, derived here so a new purpose or role is added in one place.
PURPOSE_NAMES: tuple[str, ...] = tuple(p.name for p in Purpose)
ROLE_NAMES: tuple[str, ...] = tuple(r.name for r in Role)
PurposeName = Literal[PURPOSE_NAMES]  # type: ignore[valid-type]  (Literal of a tuple: one literal per name)
RoleName = Literal[ROLE_NAMES]  # type: ignore[valid-type]
