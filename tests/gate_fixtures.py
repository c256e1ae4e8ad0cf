"""Stand-ins for what the release gate consults (the enforcer's grant decision) and feeds (the access log)."""
from __future__ import annotations

from dataclasses import dataclass

from node.access.log import LogRecord
from node.chain.reasons import DenialReason


@dataclass
class Allowed:
    allowed: bool = True
    grant_id: int = 7
    reason: DenialReason | None = None
    message: str = ""


class Enforcer:
    """A grant on chain for every request (grant 7): the gate's own rules are what is tested."""

    def decide(self, requester, dataset, purpose, arrived=None):
        return Allowed()


class Log(list):
    def append(self, record):  # what would go on chain, kept here
        super().append(record)

    def deny(self, requester, dataset_id, purpose, reason_code):  # as AccessLog.deny, without a signed request
        super().append(LogRecord("denial", requester, dataset_id, int(purpose), bytes(32), reason_code=int(reason_code)))
