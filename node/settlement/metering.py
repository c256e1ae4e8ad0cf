"""Metered usage per certificate and period, read from what the chain already records.

No transaction is added per access: the owner's node already logs every use it serves as an
``AccessRecorded`` event (grant id, rows) and every statistics contribution as ``ContributionCommitted``
(job, participant). A certificate's usage in a period is the access records under its grant, and the
contributions its owner committed to jobs the holder opened, in the blocks whose timestamps fall in
the period. Logs are read raw (eth_getLogs, topic-filtered, in block chunks) and decoded by hand:
a million records must not go through web3's per-log formatting.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

from node.chain.deployment import Purpose
from node.chain.errors import ChainError
from node.chain.events import EventCatalog
from node.chain.gateway import ChainGateway
from node.chain.ledger import Ledger
from node.errors import ConsortiumError
from node.settlement.formula import CertificateUsage


class MeteringError(ConsortiumError):
    reason = "metering"


@dataclass(frozen=True)
class PeriodBlocks:
    start: int  # timestamps: [start, end)
    end: int
    first_block: int  # blocks whose timestamp lies in [start, end); first > last when there are none
    last_block: int


def _topic_address(address: str) -> str:
    return "0x" + "00" * 12 + address.lower().removeprefix("0x")


def _topic_int(value: int) -> str:
    return "0x" + value.to_bytes(32, "big").hex()


class Meter:
    def __init__(self, ledger: Ledger, *, from_block: int = 0, chunk_blocks: int = 500):
        self.ledger = ledger
        self.gateway: ChainGateway = ledger.gateway
        self.from_block = from_block  # the deployment block: nothing of ours lies before it
        self.chunk_blocks = chunk_blocks
        self.topics = EventCatalog(self.gateway).topics
        self._times: dict[int, int] = {}

    # ------------------------------------------------------------------ blocks of a period

    def _time(self, number: int) -> int:
        if number not in self._times:
            self._times[number] = self.gateway.block_time(number)
        return self._times[number]

    def _first_block_at(self, timestamp: int, head: int) -> int:
        """The first block with a timestamp >= ``timestamp`` (head + 1 when none): block times never decrease."""
        lo, hi = self.from_block, head + 1
        while lo < hi:
            mid = (lo + hi) // 2
            if self._time(mid) >= timestamp:
                hi = mid
            else:
                lo = mid + 1
        return lo

    def period_blocks(self, start: int, end: int) -> PeriodBlocks:
        head = self.gateway.block_number() - self.gateway.confirmations
        if head < 0 or self._time(head) < end:
            raise MeteringError(f"the period [{start}, {end}) has not ended on the confirmed chain",
                                hint="issue the statement after the period's end (and its confirmations)")
        return PeriodBlocks(start, end, self._first_block_at(start, head), self._first_block_at(end, head) - 1)

    # ------------------------------------------------------------------ raw logs

    def _logs(self, address: str, topics: list, first: int, last: int) -> Iterable[dict]:
        w3 = self.gateway.w3
        for lo in range(first, last + 1, self.chunk_blocks):
            hi = min(last, lo + self.chunk_blocks - 1)
            query = {"fromBlock": hex(lo), "toBlock": hex(hi), "address": address, "topics": topics}
            if self.gateway.rpc_url is not None:
                answer = self.gateway.rpc(lambda q=query: w3.provider.make_request("eth_getLogs", [q]))
                if "error" in answer:
                    raise ChainError(f"eth_getLogs failed: {answer['error']}", hint="narrow the chunk, or check the chain node")
                logs = answer["result"]
            else:  # the in-process chain: web3's formatted logs, normalized to hex strings
                formatted = self.gateway.rpc(lambda q=query: w3.eth.get_logs(
                    {**q, "fromBlock": int(q["fromBlock"], 16), "toBlock": int(q["toBlock"], 16)}))
                logs = [{"topics": ["0x" + bytes(t).hex() for t in log["topics"]], "data": "0x" + bytes(log["data"]).hex(),
                         "removed": False} for log in formatted]
            for log in logs:
                if not log.get("removed"):
                    yield log

    # ------------------------------------------------------------------ usage

    def certificates(self, payer: str, providers: Iterable[str], until_block: int) -> list[dict]:
        """Certificates ``payer`` holds from ``providers`` (issued up to ``until_block``), with their offers' prices."""
        wanted = {p.lower() for p in providers}
        market = self.ledger.market
        found, offers = [], {}
        topics = [self.topics["CertificateIssued"], None, None, _topic_address(payer)]
        for log in self._logs(market.address, topics, self.from_block, until_block):
            certificate = self.ledger.get_certificate(int(log["topics"][1], 16))
            if certificate["owner"].lower() not in wanted:
                continue
            offer_id = certificate["offer_id"]
            if offer_id not in offers:
                offers[offer_id] = self.ledger.get_offer(offer_id)
            found.append({**certificate, "offer": offers[offer_id]})
        return sorted(found, key=lambda c: c["certificate_id"])

    def usage(self, payer: str, providers: list[str], blocks: PeriodBlocks) -> list[CertificateUsage]:
        """Usage in the period of every certificate ``payer`` holds from ``providers`` that was valid at some time in it."""
        certs = []
        for c in self.certificates(payer, providers, max(blocks.last_block, self.from_block)):
            ends = min(c["expires_at"], c["revoked_at"] or c["expires_at"])
            if c["issued_at"] < blocks.end and ends > blocks.start:
                certs.append(c)
        by_grant = {c["grant_id"]: c for c in certs}
        accesses = {c["certificate_id"]: 0 for c in certs}
        rows = dict(accesses)
        contributions = dict(accesses)
        if certs and blocks.first_block <= blocks.last_block:
            dua = self.ledger.authorizations.address
            owners = sorted({_topic_address(c["owner"]) for c in certs})
            for log in self._logs(dua, [self.topics["AccessRecorded"], _topic_address(payer), owners],
                                  blocks.first_block, blocks.last_block):
                data = log["data"]
                # data: grantId, datasetId, queryHash, rows (one 32-byte word each, 64 hex digits)
                c = by_grant.get(int(data[2:66], 16))
                if c is not None:
                    accesses[c["certificate_id"]] += 1
                    rows[c["certificate_id"]] += int(data[194:258], 16)
            self._contributions(payer, certs, blocks, contributions)
        return [CertificateUsage(c["certificate_id"], c["owner"], c["offer"]["period_fee"], c["offer"]["per_access_price"],
                                 c["offer"]["per_row_price"], c["offer"]["per_contribution_price"],
                                 accesses[c["certificate_id"]], rows[c["certificate_id"]], contributions[c["certificate_id"]])
                for c in certs]

    def _contributions(self, payer: str, certs: list[dict], blocks: PeriodBlocks, out: dict[int, int]) -> None:
        # A contribution is billed to the owner's STATISTICS certificate held by the payer (the lowest id if several).
        statistics: dict[str, int] = {}
        for c in certs:
            if c["offer"]["purpose"] == Purpose.STATISTICS:
                statistics.setdefault(c["owner"].lower(), c["certificate_id"])
        if not statistics:
            return
        stats = self.ledger.stats.address
        jobs = {int(log["topics"][1], 16) for log in self._logs(
            stats, [self.topics["JobOpened"], None, _topic_address(payer)], self.from_block, blocks.last_block)}
        participants = sorted(_topic_address(owner) for owner in statistics)
        for log in self._logs(stats, [self.topics["ContributionCommitted"], None, participants],
                              blocks.first_block, blocks.last_block):
            if int(log["topics"][1], 16) in jobs:
                owner = "0x" + log["topics"][2][-40:]
                out[statistics[owner.lower()]] += 1


def period_window(agreement: dict[str, Any], period: int) -> tuple[int, int]:
    start = agreement["period_start"] + period * agreement["period_seconds"]
    return start, start + agreement["period_seconds"]
