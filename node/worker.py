"""The one shape shared by the node's background loops (access-log flusher, evidence anchorer, audit indexer)."""
from __future__ import annotations

import threading


class BackgroundLoop:
    """A daemon thread that runs ``_run`` until ``stop()``; ``wake()`` cuts the current pause short.

    Subclasses call ``_init_loop()`` in their constructor, loop ``while not self._stop.is_set()`` in
    ``_run`` and wait with ``_pause(seconds)``, so a stop or a wake never waits out a full interval.
    """

    thread_name = "background-loop"

    def _init_loop(self) -> None:
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self):
        if not self.running:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def wake(self) -> None:
        self._wake.set()

    def _pause(self, seconds: float) -> None:
        self._wake.wait(seconds)
        self._wake.clear()

    def _run(self) -> None:  # pragma: no cover - every subclass defines its loop
        raise NotImplementedError
