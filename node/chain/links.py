"""Loopback TCP links between chain nodes that a test can cut: the fallback for hosts without namespaces.

Each directed peer link (node i dialing node j) goes through one :class:`LinkProxy`. ``pause()`` stops
forwarding in both directions without closing anything, as a real partition drops packets while TCP
connections wait: a short partition heals with the connections intact, a long one makes geth time the
peer out and dial again. ``resume()`` heals it.
"""
from __future__ import annotations

import select
import socket
import threading


class LinkProxy:
    def __init__(self, target_port: int, *, host: str = "127.0.0.1"):
        self.host = host
        self.target_port = target_port
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind((host, 0))
        self._listener.listen(16)
        self.port = self._listener.getsockname()[1]
        self._open = threading.Event()
        self._open.set()
        self._closed = threading.Event()
        self._sockets: set[socket.socket] = set()
        self._guard = threading.Lock()
        threading.Thread(target=self._accept_loop, name=f"link-{self.port}", daemon=True).start()

    @property
    def paused(self) -> bool:
        return not self._open.is_set()

    def pause(self) -> None:
        self._open.clear()

    def resume(self) -> None:
        self._open.set()

    def close(self) -> None:
        self._closed.set()
        self._open.set()
        try:
            self._listener.close()
        except OSError:
            pass
        with self._guard:
            for sock in list(self._sockets):
                try:
                    sock.close()
                except OSError:
                    pass
            self._sockets.clear()

    def _accept_loop(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection((self.host, self.target_port), timeout=5)
        except OSError:
            client.close()
            return
        upstream.settimeout(None)
        with self._guard:
            self._sockets.update((client, upstream))
        peers = {client: upstream, upstream: client}
        try:
            while not self._closed.is_set():
                if not self._open.wait(0.2):
                    continue  # partitioned: leave the bytes in the kernel buffers, like dropped packets
                ready, _, _ = select.select(list(peers), [], [], 0.2)
                for sock in ready:
                    data = sock.recv(65536)
                    if not data:
                        return
                    peers[sock].sendall(data)
        except OSError:
            return
        finally:
            with self._guard:
                self._sockets.discard(client)
                self._sockets.discard(upstream)
            for sock in (client, upstream):
                try:
                    sock.close()
                except OSError:
                    pass
