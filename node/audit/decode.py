"""Raw logs from the chain, and their decoding into index rows.

The two hot events (AccessRecorded, DenialRecorded: all but a handful of the consortium's logs) are
decoded by slicing the hex of their topics and data: their layout is fixed (three indexed 32-byte
topics, then 32-byte words), so this is exact and ~30x faster than web3's generic decoder, which
matters when catching up on millions of events. Every other event goes through the generic decoder,
and the verifier (node.audit.verify) re-decodes hot events generically too, so the fast path is
checked against the ABI on every verification.
"""
from __future__ import annotations

import json
from typing import Any, Iterable, NamedTuple

from hexbytes import HexBytes
from web3 import Web3
from web3._utils.events import get_event_data

from node.chain.errors import ChainError
from node.chain.events import EventCatalog
from node.chain.gateway import ChainGateway

CATEGORIES = {"DataUseAuthorization": "authorization", "ConsortiumRegistry": "governance", "StatsLedger": "statistics",
              "EvidenceRegistry": "evidence", "RiskPool": "pools", "MutualAid": "pools", "ClaimPayouts": "pools",
              "DataMarket": "settlement", "Settlement": "settlement"}
HOT_EVENTS = ("AccessRecorded", "DenialRecorded")


class RawLog(NamedTuple):
    address: str  # lower-case hex
    topics: tuple[str, ...]  # lower-case 0x-hex
    data: str  # 0x-hex
    block_number: int
    log_index: int
    tx_hash: str  # 0x-hex
    timestamp: int | None  # when the node includes blockTimestamp in logs (anvil, recent clients)


def _hex(value: Any) -> str:
    if isinstance(value, str):
        return value.lower() if value.startswith("0x") else "0x" + value.lower()
    return "0x" + bytes(value).hex()


def _int(value: Any) -> int:
    return int(value, 16) if isinstance(value, str) else int(value)


def normalize_raw_log(log: dict) -> RawLog:
    """A log exactly as the JSON-RPC sends it (hex strings): the hot path of a catch-up."""
    ts = log.get("blockTimestamp")
    return RawLog(log["address"].lower(), tuple(map(str.lower, log["topics"])), log["data"], int(log["blockNumber"], 16),
                  int(log["logIndex"], 16), log["transactionHash"].lower(), None if ts is None else int(ts, 16))


def normalize_log(log: Any) -> RawLog:
    """A log as the JSON-RPC sends it (hex strings) or as web3 formats it (bytes, ints): one shape."""
    ts = log.get("blockTimestamp")
    return RawLog(_hex(log["address"]), tuple(_hex(t) for t in log["topics"]), _hex(log["data"]),
                  _int(log["blockNumber"]), _int(log["logIndex"]), _hex(log["transactionHash"]),
                  None if ts is None else _int(ts))


def canonical(value: Any) -> Any:
    """Decoded event arguments as plain JSON values: bytes as 0x-hex, addresses checksummed, lists as lists."""
    if isinstance(value, (bytes, bytearray)):
        return "0x" + bytes(value).hex()
    if isinstance(value, str):
        return Web3.to_checksum_address(value) if Web3.is_address(value) and value.startswith("0x") else value
    if isinstance(value, (list, tuple)):
        return [canonical(v) for v in value]
    if isinstance(value, dict):
        return {k: canonical(v) for k, v in value.items()}
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return int(value)
    return value


def canonical_json(args: dict) -> str:
    return json.dumps(canonical(dict(args)), sort_keys=True, separators=(",", ":"))


class ConsortiumLogs:
    """eth_getLogs for the four contracts, raw, plus block timestamps and the generic decoder."""

    def __init__(self, gateway: ChainGateway):
        self.gateway = gateway
        self.catalog = EventCatalog(gateway)
        self.addresses = self.catalog.addresses
        self.authorizations = gateway.contract("DataUseAuthorization").address.lower()
        self.access_topic = self.catalog.topics["AccessRecorded"]
        self.denial_topic = self.catalog.topics["DenialRecorded"]
        self._raw = gateway.rpc_url is not None  # a JSON-RPC node: skip web3's result formatters

    # ------------------------------------------------------------------ chain reads

    def head(self) -> int:
        return self.gateway.block_number()

    def _request(self, method: str, params: list) -> Any:
        response = self.gateway.rpc(lambda: self.gateway.w3.provider.make_request(method, params))
        if "error" in response:
            error = response["error"]
            raise ChainError(f"{method} failed: {error.get('message', error) if isinstance(error, dict) else error}",
                             hint="narrow the block range, or check the chain node")
        return response["result"]

    def logs(self, from_block: int, to_block: int) -> list[RawLog]:
        query = {"fromBlock": hex(from_block), "toBlock": hex(to_block), "address": self.addresses}
        if self._raw:
            result = self._request("eth_getLogs", [query])
            logs = [normalize_raw_log(item) for item in result if not item.get("removed")]
        else:
            query = {"fromBlock": from_block, "toBlock": to_block, "address": self.addresses}
            result = self.gateway.rpc(lambda: self.gateway.w3.eth.get_logs(query))
            logs = [normalize_log(item) for item in result if not item.get("removed")]
        logs.sort(key=lambda log: (log.block_number, log.log_index))
        return logs

    def timestamps(self, block_numbers: Iterable[int]) -> dict[int, int]:
        wanted = sorted(set(block_numbers))
        if not wanted:
            return {}
        provider = self.gateway.w3.provider
        if self._raw and hasattr(provider, "make_batch_request"):
            out: dict[int, int] = {}
            for i in range(0, len(wanted), 500):
                part = wanted[i:i + 500]
                answers = self.gateway.rpc(lambda: provider.make_batch_request(
                    [("eth_getBlockByNumber", [hex(b), False]) for b in part]))
                if not isinstance(answers, list):
                    raise ChainError(f"batch request for block timestamps failed: {answers}")
                for number, answer in zip(part, answers):
                    if not answer.get("result"):
                        raise ChainError(f"block {number} is not available", hint="check the chain node")
                    out[number] = int(answer["result"]["timestamp"], 16)
            return out
        return {b: self.gateway.block_time(b) for b in wanted}

    # ------------------------------------------------------------------ decoding

    def event_name(self, log: RawLog) -> tuple[str, str] | None:
        """(contract, event) for one of our logs; None for a log we do not know (never guessed at)."""
        found = self.catalog.lookup(log.address, log.topics[0]) if log.topics else None
        return None if found is None else (found[0], found[1]["name"])

    def decode_generic(self, log: RawLog) -> tuple[str, str, dict] | None:
        found = self.catalog.lookup(log.address, log.topics[0]) if log.topics else None
        if found is None:
            return None
        name, abi = found
        shaped = {"address": Web3.to_checksum_address(log.address), "topics": [HexBytes(t) for t in log.topics],
                  "data": HexBytes(log.data), "blockNumber": log.block_number, "logIndex": log.log_index,
                  "transactionIndex": 0, "transactionHash": HexBytes(log.tx_hash), "blockHash": HexBytes(b"\x00" * 32)}
        decoded = get_event_data(self.gateway.w3.codec, abi, shaped)
        return name, abi["name"], dict(decoded["args"])


def decode_access(log: RawLog) -> tuple[str, str, int, int, bytes, bytes, int]:
    """AccessRecorded -> (requester, owner, purpose, grantId, datasetId, queryHash, rows)."""
    t, d = log.topics, log.data
    return ("0x" + t[1][26:], "0x" + t[2][26:], int(t[3], 16), int(d[2:66], 16), bytes.fromhex(d[66:130]),
            bytes.fromhex(d[130:194]), int(d[194:258], 16))


def decode_denial(log: RawLog) -> tuple[str, str, int, bytes, int, bytes]:
    """DenialRecorded -> (requester, owner, purpose, datasetId, reasonCode, queryHash)."""
    t, d = log.topics, log.data
    return ("0x" + t[1][26:], "0x" + t[2][26:], int(t[3], 16), bytes.fromhex(d[2:66]), int(d[66:130], 16),
            bytes.fromhex(d[130:194]))
