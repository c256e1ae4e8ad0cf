"""Read every consortium event in a block range with one eth_getLogs call, decoded and ordered."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eth_utils import event_abi_to_log_topic
from web3._utils.events import get_event_data

from node.chain.gateway import ChainGateway


@dataclass(frozen=True)
class ChainEvent:
    contract: str
    event: str
    args: dict[str, Any]
    block_number: int
    log_index: int
    tx_hash: str

    @property
    def position(self) -> tuple[int, int]:
        return (self.block_number, self.log_index)


class EventReader:
    def __init__(self, gateway: ChainGateway):
        self.gateway = gateway
        self._by_address: dict[str, str] = {}
        self._abis: dict[tuple[str, bytes], dict] = {}
        for name, contract in gateway.contracts.items():
            self._by_address[contract.address.lower()] = name
            for item in contract.abi:
                if item.get("type") == "event":
                    self._abis[(name, bytes(event_abi_to_log_topic(item)))] = item

    def read(self, from_block: int, to_block: int | str = "latest") -> list[ChainEvent]:
        logs = self.gateway._rpc(lambda: self.gateway.w3.eth.get_logs({
            "fromBlock": from_block, "toBlock": to_block,
            "address": [c.address for c in self.gateway.contracts.values()],
        }))
        codec = self.gateway.w3.codec
        events = []
        for log in logs:
            name = self._by_address.get(log["address"].lower())
            abi = self._abis.get((name, bytes(log["topics"][0]))) if name and log["topics"] else None
            if abi is None:
                continue  # not one of ours (or an anonymous event): skipped, never guessed at
            decoded = get_event_data(codec, abi, log)
            events.append(ChainEvent(name, decoded["event"], dict(decoded["args"]), log["blockNumber"], log["logIndex"],
                                     "0x" + bytes(log["transactionHash"]).hex()))
        return sorted(events, key=lambda e: e.position)
