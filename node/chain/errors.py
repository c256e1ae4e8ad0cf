"""Chain errors, and one decoder that turns any backend's revert into ``ContractRevert``.

anvil (JSON-RPC) surfaces a custom error as web3's ``ContractCustomError`` whose data starts with the
4-byte selector; eth-tester (py-evm) raises ``TransactionFailed`` with the raw revert bytes. Both
become ``ContractRevert(name, args)`` so callers match on the Solidity error's name.
"""
from __future__ import annotations

import ast
import re
import sys
from typing import Any, Iterable

from eth_abi import decode as abi_decode
from eth_utils import function_signature_to_4byte_selector

from node.enums import ClaimStep, Status
from node.errors import ConsortiumError

_ERROR_STRING = bytes.fromhex("08c379a0")  # Error(string)
_PANIC = bytes.fromhex("4e487b71")  # Panic(uint256)


class ChainError(ConsortiumError):
    reason = "chain"
    http_status = 503  # the chain failed the node, not the request (reverts have their own handler in node/api/app.py)


class ChainUnavailable(ChainError):
    reason = "chain_unavailable"


class DeploymentError(ChainError):
    reason = "deployment"


class ContractRevert(ChainError):
    """A contract call or transaction reverted. ``name`` is the Solidity custom error's name."""

    reason = "contract_revert"

    def __init__(self, name: str, args: dict[str, Any] | None = None, raw: bytes = b""):
        self.name = name
        self.args_by_name = dict(args or {})
        self.raw = raw
        shown = ", ".join(f"{k}={_show(v, _enum_of(name, k))}" for k, v in self.args_by_name.items())
        super().__init__(f"contract reverted: {name}({shown})", hint=REVERT_HINTS.get(name))


# What to do next, for reverts whose name alone does not say it (area: pools, one claim one payout).
REVERT_HINTS = {
    "ClaimPaidByOtherScheme": "this claim is already paid by the other pool scheme (risk pool or mutual aid, the "
                              "scheme= address); one claim is paid by one scheme only",
}


def _enum_of(error: str, arg: str) -> Any:
    """The enum of a revert argument declared as a Solidity enum."""
    return {("InvalidClaimStep", "from"): ClaimStep, ("InvalidClaimStep", "to"): ClaimStep,
            ("InvalidStatusChange", "from"): Status, ("InvalidStatusChange", "to"): Status}.get((error, arg))


def _show(value: Any, enum: Any = None) -> str:
    """Revert arguments as a person reads them: enums by name (step 6 is PAID), bytes as 0x hex."""
    if enum is not None and isinstance(value, int):
        try:
            return enum(value).name
        except ValueError:
            pass
    if isinstance(value, bytes):
        return "0x" + value.hex()
    return str(value)


def _canonical_type(param: dict) -> str:
    t = param["type"]
    if t.startswith("tuple"):
        inner = ",".join(_canonical_type(c) for c in param["components"])
        return f"({inner}){t[5:]}"
    return t


class RevertDecoder:
    """Maps error selectors from every ABI to (name, input types, input names)."""

    def __init__(self, abis: Iterable[list]):
        self._errors: dict[bytes, tuple[str, list[str], list[str]]] = {}
        for abi in abis:
            for item in abi:
                if item.get("type") != "error":
                    continue
                types = [_canonical_type(i) for i in item["inputs"]]
                signature = f"{item['name']}({','.join(types)})"
                selector = function_signature_to_4byte_selector(signature)
                names = [i["name"] or f"arg{n}" for n, i in enumerate(item["inputs"])]
                self._errors[selector] = (item["name"], types, names)

    def decode(self, data: bytes) -> ContractRevert:
        if len(data) < 4:
            return ContractRevert("Reverted", {}, data)
        selector, body = data[:4], data[4:]
        try:
            if selector == _ERROR_STRING:
                (message,) = abi_decode(["string"], body)
                return ContractRevert("Error", {"message": message}, data)
            if selector == _PANIC:
                (code,) = abi_decode(["uint256"], body)
                return ContractRevert("Panic", {"code": code}, data)
            if selector in self._errors:
                name, types, names = self._errors[selector]
                values = abi_decode(types, body)
                return ContractRevert(name, dict(zip(names, values)), data)
        except Exception:  # undecodable payload: still report the selector
            pass
        return ContractRevert("UnknownError", {"selector": selector}, data)

    def from_exception(self, exc: BaseException) -> ContractRevert | None:
        """The revert carried by a backend exception, or None when ``exc`` is not a revert."""
        data = _revert_data(exc)
        if data is None:
            return None
        return self.decode(data)


_HEX = re.compile(r"0x[0-9a-fA-F]*")


def _revert_data(exc: BaseException) -> bytes | None:
    from web3.exceptions import ContractCustomError, ContractLogicError, ContractPanicError

    # Only an in-process eth-tester chain raises TransactionFailed, and it has imported the module by then:
    # importing it here would load py-evm (megabytes) into a node on a real chain at its first revert.
    TransactionFailed = getattr(sys.modules.get("eth_tester.exceptions"), "TransactionFailed", ())

    if isinstance(exc, (ContractCustomError, ContractPanicError, ContractLogicError)):
        data = exc.data
        if isinstance(data, str):
            if data.startswith("0x"):
                return bytes.fromhex(data[2:])
            # ContractLogicError for Error(string) carries the message text, not the payload
            return None if isinstance(exc, ContractCustomError) else _string_revert(exc)
        if isinstance(data, (bytes, bytearray)):
            return bytes(data)
        return _string_revert(exc)
    if TransactionFailed and isinstance(exc, TransactionFailed):
        arg = exc.args[0] if exc.args else b""
        if isinstance(arg, (bytes, bytearray)):
            return bytes(arg)
        if isinstance(arg, str) and _HEX.fullmatch(arg):
            return bytes.fromhex(arg[2:])
        if isinstance(arg, str):
            # py-evm reports custom errors as the text "execution reverted: b'...'" (a bytes repr).
            literal = arg.removeprefix("execution reverted: ")
            if literal.startswith(("b'", 'b"')):
                try:
                    value = ast.literal_eval(literal)
                except (ValueError, SyntaxError):
                    value = None
                if isinstance(value, bytes):
                    return value
            return _encode_error_string(literal)
        return _encode_error_string(str(arg))
    return None


def _string_revert(exc: BaseException) -> bytes:
    message = str(exc.args[0]) if exc.args else "reverted"
    return _encode_error_string(message.removeprefix("execution reverted: "))


def _encode_error_string(message: str) -> bytes:
    from eth_abi import encode as abi_encode

    return _ERROR_STRING + abi_encode(["string"], [message])
