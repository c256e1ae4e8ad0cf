"""A contract call ABI-encoded once with eth_abi, for batches too large for web3's per-element checks."""
from __future__ import annotations

from eth_abi import encode as abi_encode
from eth_utils import function_signature_to_4byte_selector


class EncodedCall:
    """A contract call ABI-encoded once with eth_abi, in the shape ``ChainGateway.submit`` takes.

    web3's ``contract.functions.f(...)`` checks every array element against the ABI and encodes the call
    twice; for a batch of a thousand records that was about a second of CPU (``bench.py node-access
    --profile``). Here the types come from the contract's own ABI and the bytes are identical (tested).
    """

    def __init__(self, w3, to: str, data: str):
        self.w3 = w3
        self.to = to
        self.data = data

    @classmethod
    def of(cls, contract, name: str, *args) -> "EncodedCall":
        selector, types = _abi_entry(contract, name)
        return cls(contract.w3, contract.address, "0x" + (selector + abi_encode(types, args)).hex())

    def build_transaction(self, call: dict) -> dict:
        return {"value": 0, **call, "to": self.to, "data": self.data}

    def estimate_gas(self, call: dict) -> int:
        return self.w3.eth.estimate_gas({**call, "to": self.to, "data": self.data})


def _abi_entry(contract, name: str) -> tuple[bytes, list[str]]:
    key = (contract.address, name)
    found = _ABI_ENTRIES.get(key)
    if found is None:
        entry = next(e for e in contract.abi if e.get("type") == "function" and e["name"] == name)
        types = [i["type"] for i in entry["inputs"]]
        found = _ABI_ENTRIES[key] = (function_signature_to_4byte_selector(f"{name}({','.join(types)})"), types)
    return found


_ABI_ENTRIES: dict[tuple[str, str], tuple[bytes, list[str]]] = {}
