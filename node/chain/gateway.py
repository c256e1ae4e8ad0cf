"""The chain gateway: one web3 connection, locally signed transactions, decoded reverts, events.

Backends: any JSON-RPC URL (anvil, Besu, ...), or the in-process py-evm chain for quick unit tests.
Transactions are signed with the member's key here; the node's RPC never holds a key. Nonces are
assigned under a per-account lock, so any number of threads of one process may send concurrently.

Settled means confirmed: on a chain that can reorganize (Clique) a transaction is done only once its
block has ``confirmations`` blocks on top and is still the canonical block at its height. The one home
for that is :meth:`ChainGateway.confirmed_receipt` (one look) and :meth:`ChainGateway.wait` (until then).
A transaction the chain node no longer knows (dropped by a reorg, lost in a restart) is re-broadcast
as the same signed bytes: same nonce, same hash, so it takes effect exactly once however often it is sent.
"""
from __future__ import annotations

import json
import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Callable, Iterable
from urllib.parse import urlsplit

import urllib3
from eth_account.signers.local import LocalAccount
from hexbytes import HexBytes
from web3 import Web3
from web3.contract.contract import Contract, ContractFunction
from web3.exceptions import TimeExhausted, Web3RPCError

from node.chain.compiler import Artifact, load_artifacts
from node.chain.errors import ChainError, ChainUnavailable, ContractRevert, RevertDecoder
from node.chain.rpc_client import KeepAliveRpc, RpcTransportError

# Fee fields are refreshed at most this often: one RPC round trip per transaction would cap throughput.
_FEE_REFRESH_SECONDS = 5.0
_PRIORITY_FEE_WEI = 10**9
_NONCE_RETRIES = 3
# A transaction the node does not know is re-broadcast at most this often.
_RESEND_SECONDS = 2.0
# Signed transactions kept for re-broadcast by hash (the access-log outbox settles by hash).
_KEEP_SIGNED = 20_000


@dataclass
class SentTransaction:
    """A signed transaction handed to the chain but not yet known to be mined."""

    gateway: "ChainGateway"
    tx_hash: HexBytes
    sender: str
    call: dict  # the transaction as sent, replayed with eth_call to decode a revert
    raw: bytes | None = None  # the signed bytes, re-broadcast if a reorg drops the transaction

    def wait(self, timeout: float = 60.0) -> Any:
        return self.gateway.wait(self, timeout=timeout)


class ChainGateway:
    def __init__(self, w3: Web3, artifacts: dict[str, Artifact] | None = None, *, rpc_url: str | None = None,
                 dev: bool = False, confirmations: int = 0):
        self.w3 = w3
        if confirmations < 0:
            raise ChainError("confirmations must be 0 or more", hint="set confirmations to the blocks a reorg can undo")
        self.confirmations = confirmations  # blocks on top of a transaction's block before it counts as done
        self.rpc_url = rpc_url
        self.dev = dev  # dev chains (anvil, py-evm) can fund accounts from their unlocked accounts
        # A running node loads the build (scripts/setup.sh made it) and never compiles; deploying tools pass artifacts.
        self.artifacts = artifacts if artifacts is not None else load_artifacts()
        self.decoder = RevertDecoder(a.abi for a in self.artifacts.values())
        self.chain_id = self.rpc(lambda: w3.eth.chain_id)
        self.contracts: dict[str, Contract] = {}
        self._nonce: dict[str, int] = {}
        self._nonce_locks: dict[str, threading.Lock] = defaultdict(threading.Lock)
        self._locks_guard = threading.Lock()
        self._fees: dict[str, int] = {}
        self._fees_at = 0.0
        self._raw_pool = None
        self._raw_id = 0
        self._signed: dict[str, bytes] = {}  # tx hash (0x-hex) -> signed bytes, for re-broadcast
        self._resent_at: dict[str, float] = {}
        self._signed_lock = threading.Lock()
        self.resends = 0  # re-broadcasts of transactions the node had forgotten (reorgs, restarts)
        self._lean = None
        if rpc_url:
            parsed = urlsplit(rpc_url)
            self._raw_path = parsed.path or "/"
            if parsed.scheme == "https":
                self._raw_pool = urllib3.HTTPSConnectionPool(parsed.hostname, parsed.port, maxsize=8, timeout=10.0)
            else:
                self._lean = KeepAliveRpc(parsed.hostname, parsed.port or 80, self._raw_path, timeout=10.0)

    # ------------------------------------------------------------------ construction

    @classmethod
    def connect(cls, rpc_url: str, artifacts: dict[str, Artifact] | None = None, *, timeout: float = 10.0,
                dev: bool | None = None, confirmations: int = 0) -> "ChainGateway":
        """Connect to a JSON-RPC URL; a URL that does not answer is a one-line ChainUnavailable."""
        if not rpc_url.startswith(("http://", "https://")):
            raise ChainUnavailable(f"not an HTTP(S) JSON-RPC URL: {rpc_url!r}", hint="pass a URL like http://127.0.0.1:8545")
        w3 = Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": timeout}))
        try:
            w3.eth.chain_id
        except Exception as exc:  # connection refused, DNS, TLS, garbage answer: all mean "no chain there"
            raise ChainUnavailable(f"no Ethereum JSON-RPC node answers at {rpc_url} ({type(exc).__name__})",
                                   hint="check the URL, or start a local chain with `consortium chain up`") from None
        if dev is None:
            dev = _is_dev_node(w3)
        if not dev:
            # Clique and QBFT blocks carry signers and seals in extraData (longer than 32 bytes).
            from web3.middleware import ExtraDataToPOAMiddleware

            w3.middleware_onion.inject(ExtraDataToPOAMiddleware, layer=0)
        return cls(w3, artifacts, rpc_url=rpc_url, dev=dev, confirmations=confirmations)

    @classmethod
    def in_process(cls, artifacts: dict[str, Artifact] | None = None) -> "ChainGateway":
        """The in-process py-evm chain (eth-tester): quick for unit tests, slow for log-heavy work."""
        from web3 import EthereumTesterProvider

        return cls(Web3(EthereumTesterProvider()), artifacts, dev=True)

    # ------------------------------------------------------------------ contracts

    def bind(self, name: str, address: str) -> Contract:
        contract = self.w3.eth.contract(address=Web3.to_checksum_address(address), abi=self.artifacts[name].abi)
        self.contracts[name] = contract
        return contract

    def contract(self, name: str) -> Contract:
        try:
            return self.contracts[name]
        except KeyError:
            raise ChainError(f"contract {name} is not attached", hint="load a deployment file first") from None

    def deploy_contract(self, account: LocalAccount, name: str, *args: Any) -> str:
        artifact = self.artifacts[name]
        factory = self.w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
        receipt = self.transact(account, factory.constructor(*args))
        return receipt["contractAddress"]

    # ------------------------------------------------------------------ reads

    def call(self, fn: ContractFunction, block: Any = "latest") -> Any:
        """Call a view function; a revert becomes ContractRevert."""
        try:
            return fn.call(block_identifier=block)
        except Exception as exc:
            raise self._translate(exc) from None

    def events(self, contract: str, event: str, *, from_block: int = 0, to_block: int | str = "latest",
               filters: dict | None = None) -> list:
        """Decoded logs of one event type, oldest first."""
        ev = getattr(self.contract(contract).events, event)
        return self.rpc(lambda: list(ev.get_logs(from_block=from_block, to_block=to_block, argument_filters=filters)))

    def block_number(self) -> int:
        return self.rpc(lambda: self.w3.eth.block_number)

    def block_time(self, number: int | str = "latest") -> int:
        """The timestamp of a block (the chain's clock)."""
        return int(self.rpc(lambda: self.w3.eth.get_block(number))["timestamp"])

    def raw_request(self, method: str, params: list) -> dict:
        """One JSON-RPC call without web3's middleware: for the hot path (12 us of CPU on a kept-alive socket,
        230 us through urllib3, 1-5 ms through web3; node/chain/rpc_client.py)."""
        if self._lean is not None:
            try:
                return self._lean.request(method, params)
            except RpcTransportError as exc:
                raise ChainUnavailable(f"chain request failed: {exc}", hint="check the chain's RPC URL") from None
        if self._raw_pool is None:
            return self.w3.provider.make_request(method, params)
        self._raw_id += 1
        body = json.dumps({"jsonrpc": "2.0", "id": self._raw_id, "method": method, "params": params})
        try:
            response = self._raw_pool.request("POST", self._raw_path, body=body, headers={"content-type": "application/json"})
            return json.loads(response.data)
        except Exception as exc:
            raise ChainUnavailable(f"chain request failed: {type(exc).__name__}", hint="check the chain's RPC URL") from None

    # ------------------------------------------------------------------ writes

    def submit(self, account: LocalAccount, fn: Any, *, gas: int | None = None,
               before_send: Callable[[HexBytes], None] | None = None) -> SentTransaction:
        """Sign and send a transaction without waiting for it to be mined.

        Gas is estimated first, which also turns a revert into ContractRevert before any nonce is used.
        ``before_send(tx_hash)`` runs after signing and before sending, so a caller can durably record
        the hash first: after a crash it then finds out whether the transaction made it.
        """
        sender = account.address
        call = {"from": sender, "chainId": self.chain_id}
        if gas is None:
            try:
                estimate = fn.estimate_gas({"from": sender})
            except Exception as exc:
                raise self._translate(exc) from None
            gas = int(estimate * 1.25) + 20_000
        call["gas"] = gas
        call.update(self._fee_fields())
        with self._lock_for(sender):
            for attempt in range(_NONCE_RETRIES):
                if sender not in self._nonce:
                    self._nonce[sender] = self.rpc(lambda: self.w3.eth.get_transaction_count(sender, "pending"))
                call["nonce"] = self._nonce[sender]
                tx = fn.build_transaction(call)
                signed = account.sign_transaction(tx)
                if before_send is not None:
                    before_send(HexBytes(signed.hash))
                try:
                    tx_hash = self._send_raw(bytes(signed.raw_transaction))
                    break
                except Exception as exc:
                    # Refused, so the nonce is unused; re-read it (another process may share this account).
                    self._nonce.pop(sender, None)
                    translated = self._translate(exc)
                    # The nonce was taken by another sender of this account (its node process, a CLI): mined already
                    # ("nonce too low") or waiting in the pool ("replacement transaction underpriced"). Sign again.
                    message = str(translated).lower()
                    if ("nonce too low" in message or "replacement transaction underpriced" in message) \
                            and attempt + 1 < _NONCE_RETRIES:
                        continue
                    raise translated from None
            self._nonce[sender] += 1
        raw = bytes(signed.raw_transaction)
        with self._signed_lock:
            if len(self._signed) >= _KEEP_SIGNED:
                for old in list(self._signed)[:_KEEP_SIGNED // 10]:
                    self._signed.pop(old, None)
                    self._resent_at.pop(old, None)
            self._signed["0x" + bytes(tx_hash).hex()] = raw
        return SentTransaction(self, HexBytes(tx_hash), sender,
                               {k: v for k, v in tx.items() if k in ("from", "to", "data", "value", "gas")}, raw)

    def transact(self, account: LocalAccount, fn: Any, *, gas: int | None = None, timeout: float = 60.0) -> Any:
        """Sign, send and wait for one transaction; returns the receipt, raises ContractRevert on revert."""
        return self.submit(account, fn, gas=gas).wait(timeout)

    def wait(self, sent: SentTransaction, timeout: float = 60.0) -> Any:
        """Wait until ``sent`` is confirmed (see :meth:`confirmed_receipt`); a revert raises ContractRevert."""
        if self.rpc_url is None and self.confirmations == 0:
            try:  # the in-process chain mines at once and never reorganizes
                receipt = self.w3.eth.wait_for_transaction_receipt(sent.tx_hash, timeout=timeout, poll_latency=0.05)
            except TimeExhausted:
                raise ChainError(f"transaction {sent.tx_hash.hex()} not mined within {timeout:.0f} s",
                                 hint="check that the chain is producing blocks") from None
        else:
            tx_hash = "0x" + bytes(sent.tx_hash).hex()
            deadline = time.monotonic() + timeout
            poll = 0.05
            while self.confirmed_receipt(tx_hash, raw=sent.raw) is None:
                if time.monotonic() >= deadline:
                    raise ChainError(f"transaction {tx_hash} not confirmed ({self.confirmations} confirmations) "
                                     f"within {timeout:.0f} s", hint="check that the chain is producing blocks")
                time.sleep(poll)
                poll = min(poll * 1.5, 0.25)
            receipt = self.rpc(lambda: self.w3.eth.get_transaction_receipt(sent.tx_hash))
        if receipt["status"] != 1:
            raise self._replay_revert(sent, receipt)
        return receipt

    def confirmed_receipt(self, tx_hash: str, *, raw: bytes | None = None) -> dict | None:
        """One look: the transaction's receipt (JSON-RPC form, hex fields) once it is settled, else None.

        Settled: mined, with ``confirmations`` blocks on top, in the block that is canonical at its height.
        A transaction the node does not know at all is re-broadcast (same signed bytes, so exactly once in
        effect); a receipt from a block a reorg orphaned is not settled and is looked at again later.
        """
        return self.confirmed_receipts([tx_hash], raws=[raw])[0]

    def confirmed_receipts(self, tx_hashes: list[str], *, raws: list[bytes | None] | None = None) -> list[dict | None]:
        """:meth:`confirmed_receipt` for many transactions at once, in two JSON-RPC batches (receipts and the head,
        then the canonical hash at each height found) instead of three calls each: the access log settles every
        batch a new block confirmed in one look, where one look per batch (under load, each call waiting for the
        interpreter lock) held the last of them for most of a second."""
        if not tx_hashes:
            return []
        answers = self._raw_batch([("eth_blockNumber", [])] + [("eth_getTransactionReceipt", [h]) for h in tx_hashes])
        head = int(self._result_of("eth_blockNumber", answers[0]), 16)
        receipts = [self._result_of("eth_getTransactionReceipt", a) for a in answers[1:]]
        for tx_hash, raw, receipt in zip(tx_hashes, raws or [None] * len(tx_hashes), receipts):
            if receipt is None:
                self._resend_if_forgotten(tx_hash, raw)
        if self.confirmations == 0:
            return [None if r is None else self._settled(h, r) for h, r in zip(tx_hashes, receipts)]
        deep = sorted({int(r["blockNumber"], 16) for r in receipts
                       if r is not None and head - int(r["blockNumber"], 16) >= self.confirmations})
        blocks = self._raw_batch([("eth_getBlockByNumber", [hex(n), False]) for n in deep])
        canonical = {n: (self._result_of("eth_getBlockByNumber", b) or {}).get("hash", "").lower() for n, b in zip(deep, blocks)}
        out: list[dict | None] = []
        for tx_hash, receipt in zip(tx_hashes, receipts):
            number = None if receipt is None else int(receipt["blockNumber"], 16)
            # not deep enough yet, or orphaned by a reorg (the node's receipt index catches up): not settled
            settled = number in canonical and canonical[number] == receipt["blockHash"].lower()
            out.append(self._settled(tx_hash, receipt) if settled else None)
        return out

    def _settled(self, tx_hash: str, receipt: dict) -> dict:
        # Settled: never re-broadcast again, so its signed bytes are dropped. Kept until here, they were the
        # node's memory drift under steady logging (one per access-log batch, up to _KEEP_SIGNED of them).
        with self._signed_lock:
            self._signed.pop(tx_hash.lower(), None)
            self._resent_at.pop(tx_hash.lower(), None)
        return receipt

    def _resend_if_forgotten(self, tx_hash: str, raw: bytes | None) -> None:
        with self._signed_lock:
            raw = raw or self._signed.get(tx_hash)
            last = self._resent_at.get(tx_hash, 0.0)
            if raw is None or time.monotonic() - last < _RESEND_SECONDS:
                return
            self._resent_at[tx_hash] = time.monotonic()
        if self._raw_result("eth_getTransactionByHash", [tx_hash]) is not None:
            return  # pending in the pool: nothing to do
        answer = self.raw_request("eth_sendRawTransaction", ["0x" + raw.hex()])
        error = answer.get("error")
        message = str(error.get("message", error) if isinstance(error, dict) else error or "").lower()
        if error is None or "already known" in message or "known transaction" in message:
            self.resends += 1 if error is None else 0
            return
        if "nonce too low" in message:
            return  # its nonce is taken: it or a transaction replacing it is mined; the receipt look decides
        raise ChainError(f"re-sending transaction {tx_hash} failed: {message}", hint="check the chain node")

    def _send_raw(self, raw: bytes) -> HexBytes:
        if self._lean is None:
            return self.w3.eth.send_raw_transaction(raw)
        answer = self.raw_request("eth_sendRawTransaction", ["0x" + raw.hex()])
        error = answer.get("error")
        if error:  # the same words web3 would raise with, so _translate and the nonce retry read them alike
            raise Web3RPCError(repr(error), rpc_response=answer)
        return HexBytes(answer["result"])

    def _raw_result(self, method: str, params: list) -> Any:
        return self._result_of(method, self.raw_request(method, params))

    @staticmethod
    def _result_of(method: str, answer: dict) -> Any:
        if "error" in answer and answer["error"]:
            error = answer["error"]
            raise ChainError(f"{method} failed: {error.get('message', error) if isinstance(error, dict) else error}",
                             hint="check the chain node")
        return answer.get("result")

    def _raw_batch(self, calls: list[tuple[str, list]]) -> list[dict]:
        """Several JSON-RPC calls in one round trip where the transport allows it (plain HTTP), else one by one."""
        if self._lean is not None and calls:
            try:
                return self._lean.batch(calls)
            except RpcTransportError as exc:
                raise ChainUnavailable(f"chain request failed: {exc}", hint="check the chain's RPC URL") from None
        return [self.raw_request(method, params) for method, params in calls]

    def fund(self, address: str, ether: int = 100) -> None:
        """Give an account ether from the dev chain's first unlocked account (dev chains only)."""
        if not self.dev:
            raise ChainError("funding accounts is only possible on a development chain",
                             hint="ask the network operator to fund the account")
        source = self.w3.eth.accounts[0]
        tx = self.w3.eth.send_transaction({"from": source, "to": Web3.to_checksum_address(address),
                                           "value": Web3.to_wei(ether, "ether")})
        self.w3.eth.wait_for_transaction_receipt(tx, poll_latency=0.05)

    # ------------------------------------------------------------------ internals

    def _lock_for(self, address: str) -> threading.Lock:
        with self._locks_guard:
            return self._nonce_locks[address]

    def _fee_fields(self) -> dict[str, int]:
        now = time.monotonic()
        if not self._fees or now - self._fees_at > _FEE_REFRESH_SECONDS:
            block = self.rpc(lambda: self.w3.eth.get_block("latest"))
            base = block.get("baseFeePerGas")
            if base is None:
                self._fees = {"gasPrice": self.rpc(lambda: self.w3.eth.gas_price)}
            else:
                # Twice the base fee survives several full blocks of base-fee growth.
                self._fees = {"maxFeePerGas": 2 * base + _PRIORITY_FEE_WEI, "maxPriorityFeePerGas": _PRIORITY_FEE_WEI}
            self._fees_at = now
        return dict(self._fees)

    def _replay_revert(self, sent: SentTransaction, receipt: Any) -> ChainError:
        try:
            self.w3.eth.call(sent.call, block_identifier=receipt["blockNumber"] - 1)
        except Exception as exc:
            return self._translate(exc)
        return ContractRevert("Reverted", {"tx": sent.tx_hash.hex()})

    def _translate(self, exc: BaseException) -> ChainError:
        revert = self.decoder.from_exception(exc)
        if revert is not None:
            return revert
        if isinstance(exc, ChainError):
            return exc
        if isinstance(exc, Web3RPCError):
            return ChainError(f"the chain refused the request: {exc.message if hasattr(exc, 'message') else exc}")
        return ChainUnavailable(f"chain request failed: {type(exc).__name__}: {exc}",
                                hint="check that the chain's RPC URL is reachable")

    def rpc(self, thunk: Callable[[], Any]) -> Any:
        """Run one read against the chain node (``thunk`` uses ``self.w3``), its failures turned into ChainError."""
        try:
            return thunk()
        except (ChainError, ContractRevert):
            raise
        except Exception as exc:
            raise self._translate(exc) from None



def _is_dev_node(w3: Web3) -> bool:
    """anvil, hardhat and ganache identify themselves in web3_clientVersion."""
    try:
        version = w3.client_version.lower()
    except Exception:
        return False
    return any(name in version for name in ("anvil", "hardhat", "ganache", "ethereumtester"))


def wait_all(sent: Iterable[SentTransaction], timeout: float = 60.0) -> list:
    return [s.wait(timeout) for s in sent]
