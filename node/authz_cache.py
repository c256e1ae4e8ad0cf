"""A cache of on-chain authorization state that a mined change invalidates before the next request.

Reading the chain on every request costs two eth_calls (about 5 ms each on anvil). Instead, each
request asks only for the head's block number (one cheap call, node/chain/rpc_client.py). If a block arrived since the last
request, the events of those blocks are read; any grant, revocation, admission or status change
clears the cache, so a mined revocation is effective on the very next request. Validity windows are
checked against max(wall clock, latest block time), which can only refuse earlier than the chain.
Only positive answers are cached: refusals always re-read the chain (they also need a diagnosis).
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from node.chain.deployment import Purpose, Status
from node.chain.events import EventCatalog
from node.chain.ledger import Ledger

_INVALIDATING = {
    "ConsortiumRegistry": ("MemberAdmitted", "MemberStatusChanged"),
    "DataUseAuthorization": ("AuthorizationGranted", "AuthorizationRevoked"),
}


@dataclass(frozen=True)
class CachedGrant:
    grant_id: int
    not_before: int
    expires_at: int


class AuthorizationCache:
    def __init__(self, ledger: Ledger):
        self.ledger = ledger
        self._lock = threading.Lock()
        self._sync_lock = threading.Lock()
        self._synced_from = float("-inf")
        self._block = -1
        self._block_time = 0
        self._members: dict[str, Status] = {}
        self._grants: dict[tuple[str, bytes, int], CachedGrant] = {}
        gateway = ledger.gateway
        self._addresses = [gateway.contract(name).address for name in _INVALIDATING]
        catalog = EventCatalog(gateway)
        self._topics = [catalog.topics[event] for events in _INVALIDATING.values() for event in events]
        self.hits = 0
        self.misses = 0

    def now(self) -> int:
        return max(int(time.time()), self._block_time)

    def sync(self, arrived: float | None = None) -> None:
        """Catch up with the chain's head; clear everything if a relevant event was mined.

        ``arrived`` is when the request being decided arrived. Concurrent requests share one look at
        the chain, but only one that *started after* they arrived: every block mined before a request
        arrived is then seen before it is decided, which is all "effective on the next request" needs.
        """
        arrived = time.monotonic() if arrived is None else arrived
        with self._sync_lock:
            if self._synced_from >= arrived:
                return
            started = time.monotonic()
            self._sync_now()
            self._synced_from = started

    def _sync_now(self) -> None:
        gateway = self.ledger.gateway
        # eth_blockNumber is the smallest answer a chain node gives; the header is read only when the head moved.
        number = int(gateway.raw_request("eth_blockNumber", [])["result"], 16)
        if number <= self._block:
            return
        header = gateway.raw_request("eth_getBlockByNumber", [hex(number), False]).get("result")
        if header is None:  # a reorg shortened the chain between the two calls: the next request looks again
            return
        timestamp = int(header["timestamp"], 16)
        with self._lock:
            if number <= self._block:
                return
            start = self._block + 1 if self._block >= 0 else number
            self._block_time = timestamp
        logs = gateway.raw_request("eth_getLogs", [{
            "fromBlock": hex(start), "toBlock": hex(number), "address": self._addresses, "topics": [self._topics]}])
        with self._lock:
            if logs.get("result") or "error" in logs or start == number and self._block < 0:
                self._members.clear()
                self._grants.clear()
            self._block = max(self._block, number)

    def member_status(self, address: str) -> Status:
        with self._lock:
            status = self._members.get(address)
        if status is not None:
            self.hits += 1
            return status
        self.misses += 1
        status = self.ledger.member(address).status
        with self._lock:
            self._members[address] = status
        return status

    def grant(self, owner: str, requester: str, dataset: bytes, purpose: Purpose) -> int:
        """The id of a grant valid now, from cache or chain; 0 when none (never cached)."""
        key = (requester, dataset, int(purpose))
        now = self.now()
        with self._lock:
            cached = self._grants.get(key)
        if cached is not None and cached.not_before <= now < cached.expires_at:
            self.hits += 1
            return cached.grant_id
        self.misses += 1
        grant_id = self.ledger.active_grant_id(owner, requester, dataset, purpose)
        if grant_id:
            g = self.ledger.get_grant(grant_id)
            with self._lock:
                self._grants[key] = CachedGrant(grant_id, g.not_before, g.expires_at)
        return grant_id
