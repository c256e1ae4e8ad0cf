"""Member names and addresses: the one place a name given on the command line becomes an address.

Every command that takes a member accepts its registry name (``insurer-east``) or its address. A
name is looked up on ``ConsortiumRegistry``; an unknown or ambiguous name is refused with the list
of names, never guessed. Human output goes the other way: :class:`MemberDirectory` names addresses.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable

from web3 import Web3

from node.errors import ConsortiumError

if TYPE_CHECKING:
    from node.chain.gateway import ChainGateway
    from node.chain.ledger import MemberRecord


class UnknownMember(ConsortiumError):
    reason = "unknown_member"


def read_members(gateway: "ChainGateway") -> list["MemberRecord"]:
    """Every member ever admitted, read from the registry (reads need no key)."""
    from node.connect import reader

    return reader(gateway).members()


@dataclass
class MemberDirectory:
    members: list["MemberRecord"]

    @classmethod
    def from_chain(cls, gateway: "ChainGateway") -> "MemberDirectory":
        return cls(read_members(gateway))

    def resolve(self, value: str, what: str = "member") -> str:
        """The checksummed address of ``value``: an address (a member or not) or a member's name."""
        return resolve_member(value, self.members, what)

    def record(self, value: str) -> "MemberRecord":
        address = self.resolve(value)
        for m in self.members:
            if m.address == address:
                return m
        raise UnknownMember(f"{value} is not a consortium member", hint="list members with `consortium members`")

    def name_of(self, address: str | None) -> str:
        """The member's name for an address (the address itself when it names no member)."""
        if not address:
            return ""
        for m in self.members:
            if m.address.lower() == address.lower():
                return m.name
        return address


def resolve_member(value: str, members: Iterable["MemberRecord"], what: str = "member") -> str:
    value = (value or "").strip()
    if Web3.is_address(value) and value.lower().startswith("0x"):
        return Web3.to_checksum_address(value)
    members = list(members)
    matches = [m for m in members if m.name == value]
    if not matches:  # names are case-sensitive on chain; accept another case only when it is unambiguous
        matches = [m for m in members if m.name.lower() == value.lower()]
    addresses = sorted({m.address for m in matches})
    if len(addresses) == 1:
        return addresses[0]
    names = ", ".join(sorted({m.name for m in members})) or "none"
    if not addresses:
        raise UnknownMember(f"{what} {value!r} is neither an address nor a member name (members: {names})",
                            hint="give a name from `consortium members` or a 0x address")
    raise UnknownMember(f"{what} name {value!r} is ambiguous: it names {', '.join(addresses)}",
                        reason="ambiguous_member", hint="give the member's 0x address instead")


class _ValueTransfer:
    """A plain ether transfer shaped like a contract call, so ChainGateway.submit signs and sends it with the
    account's managed nonce (the member's node may be sending from the same account)."""

    def __init__(self, to: str, wei: int):
        self.to, self.wei = Web3.to_checksum_address(to), wei

    def estimate_gas(self, _tx: dict) -> int:
        return 21_000

    def build_transaction(self, call: dict) -> dict:
        return {**call, "to": self.to, "value": self.wei}


def fund_new_member(gateway: "ChainGateway", funder, address: str, ether: float) -> dict:
    """Send ``ether`` from ``funder`` (a member's account) to a newly admitted member for its gas.

    The consortium pays a newcomer's first transactions: the vote that admits it funds it (`gov vote
    --fund-ether`), so its node can register its keys without anyone outside the consortium acting.
    """
    wei = int(Web3.to_wei(ether, "ether"))
    balance = gateway.w3.eth.get_balance(funder.address)
    if balance < wei + 21_000 * gateway.w3.eth.gas_price:
        raise ConsortiumError(f"cannot fund the new member with {ether:g} ether: this account holds "
                              f"{balance / 10**18:g}", reason="insufficient_funds",
                              hint="fund it later with `consortium chain fund NAME` or a transfer from another member")
    receipt = gateway.submit(funder, _ValueTransfer(address, wei), gas=21_000).wait()
    from hexbytes import HexBytes

    return {"funded": Web3.to_checksum_address(address), "ether": ether, "from": funder.address,
            "tx_hash": "0x" + HexBytes(receipt["transactionHash"]).hex().removeprefix("0x")}
