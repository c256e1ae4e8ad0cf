"""Test support for evidence: a TCP proxy that can cut the chain off, and the exactly-once audit."""
from __future__ import annotations

import socket
import threading

from node.evidence.store import ANCHORED, EvidenceStore, create_store_engine
from privacy.merkle import root_from_leaf_hashes


class TcpProxy:
    """Forwards 127.0.0.1:port to a target; ``cut()`` drops every connection and refuses new ones."""

    def __init__(self, target_host: str, target_port: int):
        self.target = (target_host, target_port)
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        self._up = threading.Event()
        self._up.set()
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self._closed = False
        threading.Thread(target=self._accept_loop, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept_loop(self) -> None:
        while not self._closed:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            if not self._up.is_set():
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def cut(self) -> None:
        self._up.clear()
        with self._lock:
            conns, self._conns = self._conns, []
        for s in conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
                s.close()
            except OSError:
                pass

    def restore(self) -> None:
        self._up.set()

    def close(self) -> None:
        self._closed = True
        self.cut()
        self._server.close()


def audit_exactly_once(db_path, gateway, member_address: str, from_block: int = 0) -> dict:
    """Check the store against the chain: every stored leaf is in exactly one batch anchored exactly once.

    Events are read from ``from_block`` on (earlier ones may belong to other stores of the same member).
    Returns counts; raises AssertionError naming the first violation.
    """
    engine = create_store_engine(db_path)
    store = EvidenceStore(engine, lambda store_id, seq: b"")
    batches = [b for b in store.batches() if b["size"]]
    evidence = gateway.contract("EvidenceRegistry")
    events = evidence.events.BatchAnchored.get_logs(from_block=from_block, argument_filters={"submitter": member_address})
    onchain = {bytes(e["args"]["batchId"]): e for e in events}
    assert len(onchain) == len(events), "a batch id was anchored twice"
    leaves = 0
    with engine.connect() as conn:
        seqs = [r[0] for r in conn.exec_driver_sql("SELECT seq FROM evidence_leaves ORDER BY seq")]
        total = len(seqs)
        assert len(set(seqs)) == total
    used: set[bytes] = set()
    for b in batches:
        assert b["state"] == ANCHORED, f"batch {b['batch_seq']} is {b['state']}, not anchored"
        hashes = store.batch_leaf_hashes(b["batch_seq"])
        assert len(hashes) == b["size"], f"batch {b['batch_seq']} holds {len(hashes)} leaves, recorded {b['size']}"
        # a batch is anchored under its own id, or settled against an earlier batch of this member with the same root
        anchored_id = bytes(b["anchored_batch_id"] or b["batch_id"])
        event = onchain.get(anchored_id)
        assert event is not None, f"batch {b['batch_seq']} is marked anchored but no BatchAnchored event exists"
        if anchored_id == bytes(b["batch_id"]):
            assert anchored_id not in used, f"batch {b['batch_seq']}'s own id serves another batch too"
        used.add(anchored_id)
        assert bytes(event["args"]["root"]) == root_from_leaf_hashes(hashes) == bytes(b["root"])
        assert event["args"]["size"] == b["size"]
        leaves += b["size"]
    unknown = set(onchain) - used
    assert not unknown, f"{len(unknown)} batches anchored on chain that the store does not know"
    assert leaves == total, f"{total} leaves stored, {leaves} in anchored batches"
    engine.dispose()
    return {"leaves": total, "batches": len(batches)}


def evidence_app(service, operator_address: str):
    """The evidence router alone, with the node's refusal handler, answering every caller as ``operator_address``.

    The node authenticates each route's caller (node/api/deps.py); this app has no registry-backed verifier, so
    the routes' caller dependencies are overridden. For tests only, never a deployment.
    """
    from fastapi import FastAPI

    from node.api.deps import REFUSALS, Caller, member, operator, refusal_handler
    from node.evidence.api import router

    app = FastAPI(title="consortium evidence (test)")
    app.state.evidence = service
    app.include_router(router)
    trusted = Caller(operator_address)
    app.dependency_overrides[operator] = app.dependency_overrides[member] = lambda: trusted
    for refusal in REFUSALS:
        app.add_exception_handler(refusal, refusal_handler)
    return app
