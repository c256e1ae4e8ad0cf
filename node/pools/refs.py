"""How pool names, claim ids, payment references and amounts become the values the pool contracts take."""
from __future__ import annotations

import hashlib

from node.errors import ConsortiumError


class PoolInputError(ConsortiumError):
    reason = "bad_argument"


def pool_id(name: str) -> bytes:
    """Pools are named on chain by keccak-256 of ``pool:NAME`` (names stay readable off chain)."""
    if not isinstance(name, str) or not name.strip():
        raise PoolInputError("a pool needs a name", hint="pass a name such as fraud-losses-2026")
    from eth_hash.auto import keccak  # here, not above: the pool commands import this module, `consortium --help` with them

    return keccak(("pool:" + name.strip()).encode())


def payment_ref(text: str) -> bytes:
    """The on-chain reference of an off-chain payment: SHA-256 of its reference text (a bank or ledger reference).

    The payee looks up its own record of the payment, hashes the reference and compares before confirming.
    """
    if not isinstance(text, str) or not text.strip():
        raise PoolInputError("a payment needs its reference", hint="pass --ref with the bank or ledger reference")
    return hashlib.sha256(text.strip().encode()).digest()


def amount(value: str | int, what: str = "amount") -> int:
    """An amount in the smallest currency unit (fen, cents): a whole number, never a float."""
    text = str(value).strip()
    if not text.isdigit() or not text.isascii():
        raise PoolInputError(f"{what} must be a whole number of the smallest currency unit, got {value!r}",
                             hint="e.g. 1000000 for 10,000.00 in cents; no decimal point")
    n = int(text)
    if n >= 2**128:
        raise PoolInputError(f"{what} must be below 2**128")
    return n


def hex32(value: str, what: str) -> bytes:
    raw = b""
    try:
        raw = bytes.fromhex(str(value).removeprefix("0x"))
    except ValueError:
        pass
    if len(raw) != 32:
        raise PoolInputError(f"{what} must be 32 bytes of hex", hint="give 0x followed by 64 hex digits")
    return raw


def weights(text: str) -> list[int]:
    """``70:30`` or ``70,30`` -> [70, 30]: positive whole numbers below 2**32."""
    parts = [p.strip() for p in str(text).replace(",", ":").split(":")]
    if len(parts) < 2 or not all(p.isdigit() and p.isascii() and 0 < int(p) < 2**32 for p in parts):
        raise PoolInputError(f"a ratio must be two or more positive whole numbers, got {text!r}", hint="e.g. 40:60")
    return [int(p) for p in parts]
