"""Processes that `network up` and the member hosts start detached, found again by their PIDs."""
from __future__ import annotations

import os


def alive(pid: int) -> bool:
    """Whether a process with this PID exists (signal 0 checks without sending anything)."""
    try:
        os.kill(pid, 0)
        return True
    except OSError:
        return False
