"""The shared worker pool: answers equal to one core, order kept, and workers that die with their parent."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from privacy import workers
from privacy.paillier import FixedBaseEncryptor, generate_keypair, parallel_encrypt, parallel_obfuscators

ROOT = Path(__file__).resolve().parents[1]


def _square(x: int) -> int:
    return x * x


@pytest.fixture(scope="module")
def keys():
    return generate_keypair(2048)


def test_map_helping_keeps_order_and_values():
    chunks = list(range(40))
    assert workers.map_helping(_square, chunks, _square, processes=2) == [c * c for c in chunks]


@pytest.mark.parametrize("count", [0, 1, 3, 100, 700])
def test_parallel_encrypt_decrypts_to_the_inputs_at_every_size(keys, count):
    public, private = keys
    values = [(i * 7919) % 100_003 for i in range(count)]
    cts = parallel_encrypt(FixedBaseEncryptor(public), values, processes=2)
    assert [private.decrypt(c) for c in cts] == values


def test_parallel_obfuscators_are_nth_residues_and_distinct(keys):
    public, private = keys
    enc = FixedBaseEncryptor(public)
    obfuscators = parallel_obfuscators(enc.spec(), 300, processes=2)
    assert len(set(obfuscators)) == 300
    # an obfuscator r^n encrypts zero: decrypting it as a ciphertext gives 0
    from privacy.paillier import Ciphertext
    assert all(private.decrypt(Ciphertext(public, o)) == 0 for o in obfuscators[:5])


_CHILD = """
import sys, time
sys.path.insert(0, {root!r})
from privacy import workers
workers.warm(2)
pool = workers.shared_pool(2)
while len(pool._processes) < 2:
    time.sleep(0.05)
print(' '.join(str(p) for p in pool._processes), flush=True)
time.sleep(600)
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie waiting for its reaper counts as gone
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_workers_exit_when_their_parent_dies(sig):
    child = subprocess.Popen([sys.executable, "-c", _CHILD.format(root=str(ROOT))], stdout=subprocess.PIPE, text=True)
    try:
        pids = [int(p) for p in child.stdout.readline().split()]
        assert len(pids) == 2 and all(_alive(p) for p in pids)
        child.send_signal(sig)
        child.wait(timeout=30)
        deadline = time.monotonic() + 20
        while any(_alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not [p for p in pids if _alive(p)], f"workers outlived their parent after {sig.name}"
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
