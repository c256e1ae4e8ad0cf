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


class EventCatalog:
    """topic0 <-> event ABI for every contract attached to a gateway (event names are unique across ours)."""

    def __init__(self, gateway: ChainGateway):
        self.addresses = [c.address for c in gateway.contracts.values()]
        self.contract_by_address = {c.address.lower(): name for name, c in gateway.contracts.items()}
        self.abis: dict[tuple[str, str], dict] = {}  # (contract, 0x topic0) -> event ABI
        self.topics: dict[str, str] = {}  # event name -> 0x topic0
        for name, contract in gateway.contracts.items():
            for item in contract.abi:
                if item.get("type") == "event":
                    topic = "0x" + bytes(event_abi_to_log_topic(item)).hex()
                    self.abis[(name, topic)] = item
                    self.topics[item["name"]] = topic

    def lookup(self, address: str, topic0: str) -> tuple[str, dict] | None:
        """(contract, event ABI) of one of our logs; None for a log we do not know (never guessed at)."""
        name = self.contract_by_address.get(address.lower())
        abi = self.abis.get((name, topic0)) if name else None
        return None if abi is None else (name, abi)


class EventReader:
    def __init__(self, gateway: ChainGateway):
        self.gateway = gateway
        self.catalog = EventCatalog(gateway)

    def read(self, from_block: int, to_block: int | str = "latest") -> list[ChainEvent]:
        logs = self.gateway.rpc(lambda: self.gateway.w3.eth.get_logs({
            "fromBlock": from_block, "toBlock": to_block, "address": self.catalog.addresses}))
        codec = self.gateway.w3.codec
        events = []
        for log in logs:
            found = self.catalog.lookup(log["address"], "0x" + bytes(log["topics"][0]).hex()) if log["topics"] else None
            if found is None:
                continue  # not one of ours (or an anonymous event)
            name, abi = found
            decoded = get_event_data(codec, abi, log)
            events.append(ChainEvent(name, decoded["event"], dict(decoded["args"]), log["blockNumber"], log["logIndex"],
                                     "0x" + bytes(log["transactionHash"]).hex()))
        return sorted(events, key=lambda e: e.position)
