"""The evidence service: intake into the durable outbox, batch closing, anchoring, receipts and proofs.

Exactly once, across kill -9 and chain outages, rests on three facts:
1. a hash is accepted only once its leaf row (with batch and index) is committed (store.py);
2. a batch's id is fixed when the batch opens (keccak of contract, member and batch number) and its
   root follows from its committed leaves, so a restarted node resends the very same anchor;
3. before (re)sending, the service asks EvidenceRegistry whether the batch id is already anchored,
   and the contract refuses a second anchor of a root or batch id, so a resend can never anchor twice.
4. roots and batch ids are write-once per submitter (the contract keys them by the member's address), so
   no other member can pre-anchor them; a batch whose root this member already anchored (the same
   leaves resubmitted after their first batch closed) is settled against that earlier anchoring.
Chain failures back off exponentially (capped) while intake keeps accepting.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import signal
import tempfile
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

from sqlalchemy import Engine
from web3 import Web3

from node.chain.errors import ChainError, ContractRevert
from node.chain.ledger import Ledger, batch_in_receipt, find_batch
from node.evidence.errors import DocumentTooLarge, EvidenceError, InvalidEvidenceInput, UnknownClaim
from node.evidence.leaf import DocType, check_claim_id, claim_id_hash, parse_sha256
from node.evidence.store import ANCHORED, CONFLICT, SENT, EvidenceStore
from node.worker import BackgroundLoop
from privacy import workers
from privacy.merkle import MerkleTree, proof_to_json, tree_levels

_TYPE_BYTE = {int(t): bytes([int(t)]) for t in DocType}

log = logging.getLogger("consortium.evidence")

# A batch's tree of at least this many leaves is built in the shared worker pool (privacy/workers.py): about 0.11 s
# of pure-Python hashing for 100k leaves alone, it took 0.6-0.8 s in the anchorer while the intake threads held the
# interpreter lock, so the anchorer fell batches behind the intake and anchored them after it. Below, one core's
# few milliseconds cost less than handing the leaves over.
POOL_TREE_LEAVES = 20_000


def build_tree(leaf_hashes: Sequence[bytes]) -> MerkleTree:
    """The tree over ``leaf_hashes``: in a worker process when it is large and the pool runs, else here.

    A pool that is not running is started in the background for the next tree (:func:`workers.pool_if_running`);
    a worker that fails or does not answer in time leaves the work to this thread."""
    pool = workers.pool_if_running() if len(leaf_hashes) >= POOL_TREE_LEAVES else None
    if pool is not None:
        try:
            # ~1 us a leaf on one core: a worker that takes 20 times that is stuck or starved; this thread takes over
            wait = max(2.0, 20e-6 * len(leaf_hashes))
            return MerkleTree.from_levels(pool.submit(tree_levels, b"".join(leaf_hashes)).result(timeout=wait))
        except Exception as exc:  # noqa: BLE001 - a broken or stuck pool: the tree is built here instead
            log.warning("building a %d-leaf tree in the worker pool failed (%s); building it here", len(leaf_hashes),
                        type(exc).__name__)
    return MerkleTree(leaf_hashes)

PROOF_FORMAT = "consortium-evidence-proof/1"
#: test-only fault injection: the service SIGKILLs itself at this named point (see _crash_point)
CRASH_POINT_ENV = "CONSORTIUM_EVIDENCE_CRASH_AT"


@dataclass(frozen=True)
class EvidenceSettings:
    max_batch_size: int = 100_000          # a batch closes when it holds this many leaves ...
    max_batch_age: float = 2.0             # ... or when its first leaf is this many seconds old
    poll_interval: float = 0.05            # how often the anchorer looks for due batches
    retry_base: float = 0.5                # chain failures: wait base * 2**(attempts-1), at most retry_cap
    retry_cap: float = 30.0
    tx_timeout: float = 60.0
    expected_mining_seconds: float = 2.0   # added to the batch deadline in receipts
    document_dir: Path | None = None       # keep uploaded documents here; None keeps hashes only
    max_document_bytes: int = 20 * 1024 * 1024
    max_hashes_per_request: int = 200_000


@dataclass(frozen=True)
class EvidenceReceipt:
    claim_id: str
    doc_type: str
    doc_sha256: str
    leaf_hash: str
    leaf_index: int
    batch_id: str
    expected_anchor_by: float

    def to_json(self) -> dict:
        return dict(self.__dict__)


@dataclass
class AnchorPass:
    closed: list[int] = field(default_factory=list)
    anchored: list[int] = field(default_factory=list)
    failed: list[tuple[int, str]] = field(default_factory=list)


def batch_id_for(evidence_address: str, member_address: str, store_id: bytes, batch_seq: int) -> bytes:
    """keccak(contract || member || store id || batch number): fixed before sending, unique per store."""
    return Web3.keccak(b"consortium-evidence-batch/v1" + bytes.fromhex(evidence_address[2:]) +
                       bytes.fromhex(member_address[2:]) + store_id + batch_seq.to_bytes(8, "big"))


def _crash_point(name: str) -> None:
    if os.environ.get(CRASH_POINT_ENV) == name:
        log.warning("crash point %s reached: killing the process", name)
        os.kill(os.getpid(), signal.SIGKILL)


class EvidenceService(BackgroundLoop):
    thread_name = "evidence-anchorer"

    """Evidence intake and anchoring for one member. ``start()`` runs the anchorer in a thread."""

    def __init__(self, engine: Engine, ledger: Ledger, settings: EvidenceSettings | None = None):
        self.settings = settings or EvidenceSettings()
        if self.settings.max_batch_size < 1 or self.settings.max_batch_age <= 0:
            raise InvalidEvidenceInput("evidence batches need max_batch_size >= 1 and max_batch_age > 0",
                                       reason="config")
        self.ledger = ledger
        evidence_address = ledger.evidence.address
        self.store = EvidenceStore(engine, lambda store_id, seq: batch_id_for(evidence_address, ledger.address, store_id, seq))
        self._init_loop()
        self._trees: OrderedDict[int, MerkleTree] = OrderedDict()
        self._trees_lock = threading.Lock()
        self._open_leaves: dict[int, list[bytes]] = {}
        self._inflight: dict[int, tuple] = {}  # batch_seq -> (batch, root, sent, sent at): anchors the loop looks at
        self.last_error: str | None = None

    # ------------------------------------------------------------------ intake

    def accept(self, doc_sha256: bytes | str, claim_id: str, doc_type: str | int | DocType,
               doc_path: str | None = None) -> EvidenceReceipt:
        return self.accept_many([(doc_sha256, claim_id, doc_type)], doc_paths=[doc_path])[0]

    def accept_many(self, items: Sequence[tuple[bytes | str, str, str | int | DocType]],
                    doc_paths: Sequence[str | None] | None = None) -> list[EvidenceReceipt]:
        """Validate all, then commit all in one transaction; returns one receipt per item, in order.

        All or nothing: one bad item refuses the whole request and nothing is stored.
        """
        leaves, spans = self._accept(items, doc_paths)
        extra = self.settings.max_batch_age + self.settings.expected_mining_seconds
        out = []
        for sp in spans:
            bid, by = sp.batch_id.hex(), sp.batch_opened_at + extra
            for k in range(sp.count):
                lf = leaves[sp.first_item + k]
                out.append(EvidenceReceipt(lf[2], DocType(lf[3]).label, lf[1].hex(), lf[0].hex(), sp.first_leaf_index + k,
                                           bid, by))
        return out

    def accept_bulk(self, items: Sequence[tuple[bytes | str, str, str | int | DocType]]) -> dict:
        """Like :meth:`accept_many` but answers with compact spans instead of one receipt per item.

        Item ``i`` is in the span with ``first_item <= i < first_item + count`` at leaf
        ``first_leaf_index + (i - first_item)`` of batch ``batch_id``.
        """
        leaves, spans = self._accept(items, None)
        extra = self.settings.max_batch_age + self.settings.expected_mining_seconds
        return {"accepted": len(leaves),
                "spans": [{"batch_id": sp.batch_id.hex(), "first_item": sp.first_item, "first_leaf_index": sp.first_leaf_index,
                           "count": sp.count, "expected_anchor_by": sp.batch_opened_at + extra} for sp in spans]}

    def _accept(self, items, doc_paths):
        if len(items) > self.settings.max_hashes_per_request:
            raise InvalidEvidenceInput(f"{len(items)} hashes in one request, at most {self.settings.max_hashes_per_request}",
                                       hint="split the request", reason="too_many_hashes")
        if not items:
            raise InvalidEvidenceInput("no hashes given", hint="send at least one", reason="empty_request")
        claim_hashes: dict[str, bytes] = {}
        kinds: dict[object, int] = {}
        sha256 = hashlib.sha256
        leaves = []
        append = leaves.append
        n = 0
        try:
            for digest, claim_id, doc_type in items:
                if not (type(digest) is bytes and len(digest) == 32):
                    digest = parse_sha256(digest)
                try:
                    ch = claim_hashes[claim_id]
                except KeyError:
                    ch = claim_hashes[claim_id] = claim_id_hash(claim_id)
                try:
                    kind = kinds[doc_type]
                except KeyError:
                    kind = int(DocType.parse(doc_type))
                    if type(doc_type) is str:  # only str keys: True == 1 must not hit a cached 1
                        kinds[doc_type] = kind
                # == evidence_leaf_hash(digest, claim_id, kind), inlined: this loop runs once per hash
                append((sha256(b"\x00" + digest + ch + _TYPE_BYTE[kind]).digest(), digest, claim_id, kind,
                        doc_paths[n] if doc_paths else None))
                n += 1
        except InvalidEvidenceInput as exc:
            raise InvalidEvidenceInput(f"item {n}: {exc}", hint=exc.hint, reason=exc.reason) from None
        except (TypeError, ValueError):  # not a triple, or an unhashable claim id / type
            raise InvalidEvidenceInput(f"item {n} is not (sha256, claim id, document type)", reason="invalid_input") from None
        spans = self.store.append(leaves, max_batch_size=self.settings.max_batch_size)
        self._remember_open_leaves(leaves, spans)
        if spans[-1].first_leaf_index + spans[-1].count >= self.settings.max_batch_size or len(spans) > 1:
            self.wake()  # a batch filled up: anchor now rather than at the next poll
        return leaves, spans

    def _remember_open_leaves(self, leaves, spans) -> None:
        """Keep the leaf hashes of unanchored batches in memory, so closing a batch needs no re-read.

        Only a contiguous run from leaf 0 is kept (what this process accepted since the batch opened);
        after a restart the anchorer reads the batch from the store instead.
        """
        with self._trees_lock:
            for sp in spans:
                known = self._open_leaves.get(sp.batch_seq)
                if known is None and sp.first_leaf_index == 0:
                    known = self._open_leaves[sp.batch_seq] = []
                if known is not None and len(known) == sp.first_leaf_index:
                    known.extend(lf[0] for lf in leaves[sp.first_item:sp.first_item + sp.count])
                else:
                    self._open_leaves.pop(sp.batch_seq, None)

    def accept_document(self, chunks: Iterable[bytes], claim_id: str, doc_type: str | int | DocType) -> EvidenceReceipt:
        """Hash a streamed document (refusing it past ``max_document_bytes``); keep it if configured."""
        sink = self.document_sink()
        try:
            for chunk in chunks:
                sink.write(chunk)
            return sink.finish(claim_id, doc_type)
        finally:
            sink.discard()

    def document_sink(self) -> "DocumentSink":
        return DocumentSink(self)

    # ------------------------------------------------------------------ anchoring

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_once(wait=False)
            except Exception as exc:  # never let the anchorer die: the outbox is retried next pass
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.exception("evidence anchorer pass failed")
            self._pause(self.settings.poll_interval)

    def run_once(self, now: float | None = None, *, wait: bool = True) -> AnchorPass:
        """One anchorer pass: close a due batch, send every closed or sent batch that is due, settle what was sent.

        Every due batch is sent before any is waited for, so several batches share a block. ``wait``: settle each
        anchor sent in this pass (or an earlier one) before returning (tools, tests). The background loop passes
        False: an anchor in flight is looked at once per pass (every 50 ms) and settled when its block (and the
        confirmations) arrived, so a batch that closes meanwhile is sent at once instead of after the earlier ones'
        block periods (on 1 s Clique blocks that waiting left a million hashes' anchoring 5 s behind the intake).
        """
        result = AnchorPass()
        if not self._inflight and not self.store.has_work():
            return result
        closed = self.store.close_due(max_batch_size=self.settings.max_batch_size,
                                      max_age=self.settings.max_batch_age, now=now)
        if closed is not None:
            result.closed.append(closed)
            _crash_point("after_close")
        known = []  # anchored already (found on chain) or refused as anchored: settled from the chain, no waiting
        for batch in self.store.pending_batches(now):
            if batch["batch_seq"] in self._inflight:
                continue  # sent by an earlier pass: looked at below
            try:
                root, onchain, sent = self._send(batch)
            except ChainError as exc:
                self._retry_later(batch, exc.one_line())
                result.failed.append((batch["batch_seq"], exc.one_line()))
                break  # the chain is likely down for the later batches too; keep their order
            if sent is None:
                known.append((batch, root, onchain))
            else:
                self._inflight[batch["batch_seq"]] = (batch, root, sent, time.monotonic())
        for batch, root, onchain in known:
            self._settle_pass(result, batch, lambda b=batch, r=root, o=onchain: self._finish(b, r, o, None))
        for seq, (batch, root, sent, since) in list(self._inflight.items()):
            look = ("wait", None) if wait else self._look(sent, since)
            if look is None:
                continue
            del self._inflight[seq]
            state, receipt = look
            # timed out: finished from what the chain holds (nothing: retried later), without another wait
            sent = None if state == "timed out" else sent
            # settled from its receipt's event when it shows the anchoring (two contract calls fewer, see batch_in_receipt)
            onchain = batch_in_receipt(self.ledger.gateway, receipt, bytes(batch["batch_id"])) if receipt is not None else None
            self._settle_pass(result, batch, lambda b=batch, r=root, o=onchain, t=sent: self._finish(b, r, o, t))
        return result

    def _settle_pass(self, result: AnchorPass, batch: dict, finish) -> None:
        try:
            finish()
            result.anchored.append(batch["batch_seq"])
        except ChainError as exc:
            self._retry_later(batch, exc.one_line())
            result.failed.append((batch["batch_seq"], exc.one_line()))

    def _look(self, sent, since: float) -> tuple[str, dict | None] | None:
        """One look at an anchor in flight: ("settled", its receipt) once the receipt and confirmations are on chain,
        ("timed out", None) past ``tx_timeout``, or None (look again next pass)."""
        gateway = self.ledger.gateway
        if gateway.rpc_url is None:
            return "settled", None  # the in-process chain mines at once
        try:
            receipt = gateway.confirmed_receipt("0x" + bytes(sent.tx_hash).hex(), raw=sent.raw)
            if receipt is not None:
                return "settled", receipt
        except ChainError:
            pass  # the chain node is unreachable: look again next pass (the timeout still runs), without a traceback
        return ("timed out", None) if time.monotonic() - since > self.settings.tx_timeout else None

    def close_open_batch(self) -> int | None:
        """Close the open batch now, whatever its age (tests, benchmarks, shutdown)."""
        return self.store.close_due(max_batch_size=self.settings.max_batch_size, max_age=0.0,
                                    now=time.time() + 1e9)

    def _retry_later(self, batch: dict, error: str) -> None:
        attempts = batch["attempts"] + 1
        delay = min(self.settings.retry_cap, self.settings.retry_base * 2 ** (attempts - 1))
        self.last_error = error
        log.warning("anchoring batch %s failed (attempt %d), retrying in %.1f s: %s", batch["batch_seq"], attempts, delay, error)
        self.store.update_batch(batch["batch_seq"], attempts=attempts, next_attempt_at=time.time() + delay, last_error=error)

    def _root_of(self, batch: dict) -> bytes:
        """The batch's root from its leaves (kept as a tree for proofs); stored once computed."""
        seq = batch["batch_seq"]
        with self._trees_lock:
            hashes = self._open_leaves.get(seq)
        if hashes is None or len(hashes) != batch["size"]:
            hashes = self.store.batch_leaf_hashes(seq)
        if len(hashes) != batch["size"]:
            raise EvidenceError(f"batch {seq} has {len(hashes)} leaves, expected {batch['size']}",
                                hint="the store is inconsistent; restore it from backup", reason="store_corrupt")
        tree = build_tree(hashes)
        self._cache_tree(seq, tree)
        with self._trees_lock:
            self._open_leaves.pop(seq, None)
        root = tree.root()
        if batch["root"] is not None and bytes(batch["root"]) != root:
            raise EvidenceError(f"batch {seq} leaves give root {root.hex()}, the store recorded {bytes(batch['root']).hex()}",
                                hint="the store is inconsistent; restore it from backup", reason="store_corrupt")
        return root  # stored with the batch's next state (sent or anchored): one write, not two, behind the intake

    def _metadata_hash(self, batch: dict) -> bytes:
        meta = {"batch_seq": batch["batch_seq"], "size": batch["size"], "first_seq": batch["first_seq"],
                "last_seq": batch["last_seq"], "opened_at": batch["opened_at"], "closed_at": batch["closed_at"]}
        return hashlib.sha256(json.dumps(meta, sort_keys=True).encode()).digest()

    def _chain_batch(self, batch_id: bytes, root: bytes) -> dict | None:
        """This member's anchoring of the batch: under its own id, else under an earlier batch with the same root."""
        found = find_batch(self.ledger.gateway, self.ledger.address, batch_id=batch_id)
        if found is None:
            found = find_batch(self.ledger.gateway, self.ledger.address, root=root)
        return found

    def _send(self, batch: dict) -> tuple[bytes, dict | None, object | None]:
        """Send the batch's anchor unless the chain has it: (root, its anchoring if found, the sent transaction)."""
        seq, batch_id = batch["batch_seq"], bytes(batch["batch_id"])
        root = self._root_of(batch)
        # Looked up only when an earlier attempt may have landed. A first attempt's anchor after a crash between
        # sending and recording it (or the same leaves anchored before) is refused at gas estimation with
        # BatchIdAlreadyUsed / RootAlreadyAnchored, handled below: the look-up's two calls, made while the intake
        # holds the interpreter lock, held each batch back by up to 0.3 s.
        onchain = self._chain_batch(batch_id, root) if batch["attempts"] else None
        if onchain is not None:
            return root, onchain, None
        try:
            sent = self.ledger.submit_anchor_batch(root, batch["size"], batch_id, self._metadata_hash(batch))
        except ContractRevert as exc:
            if exc.name not in ("RootAlreadyAnchored", "BatchIdAlreadyUsed"):
                raise
            return root, None, None  # anchored meanwhile (a resend after a crash): settled from the chain
        _crash_point("after_send")
        self.store.update_batch(seq, state=SENT, tx_hash=bytes(sent.tx_hash), attempts=batch["attempts"] + 1, root=root)
        _crash_point("after_sent_recorded")
        return root, None, sent

    def _finish(self, batch: dict, root: bytes, onchain: dict | None, sent) -> None:
        """Wait for a sent anchor, then settle the batch against what the chain holds."""
        if onchain is None:
            if sent is not None:
                try:
                    sent.wait(self.settings.tx_timeout)
                except ContractRevert:
                    pass  # e.g. an earlier send of the same batch was mined first: the chain decides below
            onchain = self._chain_batch(bytes(batch["batch_id"]), root)
            if onchain is None:
                raise ChainError(f"batch {batch['batch_seq']} is not anchored after its transaction was mined",
                                 hint="the anchorer retries it")
        self._settle(batch, root, onchain)

    def _settle(self, batch: dict, root: bytes, onchain: dict) -> None:
        ours = Web3.to_checksum_address(onchain["submitter"]) == self.ledger.address
        if onchain["root"] != root or onchain["size"] != batch["size"] or not ours:
            # only a corrupt store gets here: ids and roots live in this member's own namespace on chain
            error = (f"batch id {onchain['batch_id'].hex()} is anchored on chain with root {onchain['root'].hex()}, "
                     f"size {onchain['size']} by {onchain['submitter']}, not ours (root {root.hex()}, size {batch['size']})")
            log.error(error)
            self.store.update_batch(batch["batch_seq"], state=CONFLICT, last_error=error)
            return
        if onchain["batch_id"] != bytes(batch["batch_id"]):
            log.info("batch %s has the root of batch %s anchored earlier: settled against that anchoring",
                     batch["batch_seq"], onchain["batch_id"].hex())
        self.store.update_batch(batch["batch_seq"], state=ANCHORED, root=root, block_number=onchain["block_number"],
                                block_time=onchain["timestamp"], submitter=self.ledger.address,
                                anchored_batch_id=onchain["batch_id"], last_error=None)

    def wait_until_anchored(self, timeout: float = 30.0) -> bool:
        """Block until no batch is open with leaves, closed or sent (tests and benchmarks)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            # batches only: counting a million leaves 50 times a second took a core from the anchorer
            if not self.store.unanchored_batches():
                return True
            time.sleep(0.02)
        return False

    # ------------------------------------------------------------------ receipts and proofs

    def receipts(self, claim_id: str) -> list[dict]:
        rows = self.store.leaves_for_claim(check_claim_id(claim_id))
        if not rows:
            raise UnknownClaim(f"no evidence for claim {claim_id!r} at this node", hint="check the claim id")
        extra = self.settings.max_batch_age + self.settings.expected_mining_seconds
        return [{"claim_id": r["claim_id"], "doc_type": DocType(r["doc_type"]).label, "doc_sha256": r["doc_sha256"].hex(),
                 "leaf_hash": r["leaf_hash"].hex(), "leaf_index": r["leaf_index"], "batch_id": r["batch_id"].hex(),
                 "state": r["state"], "accepted_at": r["accepted_at"], "expected_anchor_by": r["opened_at"] + extra,
                 "block_number": r["block_number"], "block_time": r["block_time"],
                 "anchored_batch_id": bytes(r["anchored_batch_id"]).hex() if r["anchored_batch_id"] else None}
                for r in rows]

    def _tree(self, batch_seq: int) -> MerkleTree:
        with self._trees_lock:
            tree = self._trees.get(batch_seq)
            if tree is not None:
                self._trees.move_to_end(batch_seq)
                return tree
        tree = build_tree(self.store.batch_leaf_hashes(batch_seq))
        self._cache_tree(batch_seq, tree)
        return tree

    def _cache_tree(self, batch_seq: int, tree: MerkleTree) -> None:
        with self._trees_lock:
            self._trees[batch_seq] = tree
            while len(self._trees) > 8:  # ~64 bytes a leaf: a few big batches at most
                self._trees.popitem(last=False)

    def proofs(self, claim_id: str) -> list[dict]:
        """Inclusion proofs of a claim's anchored documents (pending ones are listed with their state)."""
        out = []
        for r in self.store.leaves_for_claim(check_claim_id(claim_id)):
            entry = {"format": PROOF_FORMAT, "claim_id": r["claim_id"], "doc_type": DocType(r["doc_type"]).label,
                     "doc_sha256": r["doc_sha256"].hex(), "batch_id": r["batch_id"].hex(), "state": r["state"]}
            if r["state"] == ANCHORED:
                if r["anchored_batch_id"]:  # the id the chain holds the root under (see _settle)
                    entry["batch_id"] = bytes(r["anchored_batch_id"]).hex()
                tree = self._tree(r["batch_seq"])
                root = bytes(r["root"])
                if tree.root() != root:
                    raise EvidenceError(f"batch {r['batch_seq']} leaves no longer give its anchored root",
                                        hint="the store is corrupt; restore it from backup", reason="store_corrupt")
                entry["proof"] = proof_to_json(r["leaf_index"], r["size"], bytes(r["leaf_hash"]),
                                               tree.inclusion_proof(r["leaf_index"]), root)
                entry["anchor"] = {"block_number": r["block_number"], "block_time": r["block_time"],
                                   "submitter": r["submitter"], "tx_hash": "0x" + bytes(r["tx_hash"]).hex() if r["tx_hash"] else None}
            out.append(entry)
        if not out:
            raise UnknownClaim(f"no evidence for claim {claim_id!r} at this node", hint="check the claim id")
        return out

    def status(self) -> dict:
        return {**self.store.counts(), "last_error": self.last_error,
                "running": self.running}


class DocumentSink:
    """Hashes a document as its chunks arrive; writes it to ``document_dir`` only when configured."""

    def __init__(self, service: EvidenceService):
        self.service = service
        self.limit = service.settings.max_document_bytes
        self.sha = hashlib.sha256()
        self.size = 0
        self._file = None
        self._tmp: str | None = None
        folder = service.settings.document_dir
        if folder is not None:
            Path(folder).mkdir(parents=True, exist_ok=True)
            fd, self._tmp = tempfile.mkstemp(dir=folder, suffix=".part")
            self._file = os.fdopen(fd, "wb")

    def write(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self.limit:
            raise DocumentTooLarge(f"document exceeds {self.limit} bytes",
                                   hint="send its SHA-256 to /evidence/hashes instead, or raise max_document_bytes")
        self.sha.update(chunk)
        if self._file is not None:
            self._file.write(chunk)

    def finish(self, claim_id: str, doc_type: str | int | DocType) -> EvidenceReceipt:
        if self.size == 0:
            raise InvalidEvidenceInput("the document is empty", hint="send the file's bytes", reason="empty_document")
        digest = self.sha.digest()
        path = None
        if self._file is not None:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            self._file = None
            final = Path(self._tmp).with_name(digest.hex())
            os.replace(self._tmp, final)  # content-addressed: the same document is stored once
            self._tmp, path = None, str(final)
        return self.service.accept(digest, claim_id, doc_type, doc_path=path)

    def discard(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._tmp is not None:
            try:
                os.unlink(self._tmp)
            except OSError:
                pass
            self._tmp = None
