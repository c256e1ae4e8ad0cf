"""The shared worker pool: answers equal to one core, order kept, the threshold rule, the caller stepping in,
and workers that die with their parent."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from privacy import paillier, workers
from privacy.paillier import (
    Ciphertext,
    CrtFixedBaseEncryptor,
    FixedBaseEncryptor,
    ObfuscatorPool,
    parallel_encrypt,
    parallel_obfuscators,
    prepare_workers,
)
from tests.privacy_fixtures import keypair

ROOT = Path(__file__).resolve().parents[2]


def _square(x: int) -> int:
    return x * x


def _tagged_square(x: int) -> tuple[str, int]:
    return "worker", x * x


def _slow_square(x: int) -> tuple[str, int]:
    time.sleep(3)
    return "worker", x * x


@pytest.fixture(scope="module")
def keys():
    return keypair(2048)


@pytest.fixture(scope="module")
def pool():
    """A warm two-worker pool for the module (its round trip measured), stopped at the end."""
    workers.warm(2, wait=True)
    yield
    workers.shutdown()


@pytest.fixture
def no_threshold(monkeypatch):
    """Send any work to a running pool: these tests check the workers' answers, not the threshold."""
    monkeypatch.setattr(workers, "PAYOFF_ROUND_TRIPS", 0)


def test_map_helping_keeps_order_and_values(pool):
    chunks = list(range(40))
    assert workers.map_helping(_square, chunks, _square, processes=2) == [c * c for c in chunks]
    assert workers.map_helping(_square, chunks, _square, processes=2, chunk_seconds=0.001) == [c * c for c in chunks]


def test_the_caller_only_waits_while_workers_keep_pace(pool):
    chunks = list(range(12))
    stats: dict = {}
    out = workers.map_helping(_tagged_square, chunks, lambda x: ("caller", x * x), processes=2, chunk_seconds=30, stats=stats)
    assert out == [("worker", c * c) for c in chunks]
    assert stats == {"chunks": 12, "workers": 12, "caller": 0, "redone": 0, "stepped_in": False}


def test_the_caller_steps_in_when_workers_fall_behind(pool):
    chunks = list(range(8))
    stats: dict = {}
    out = workers.map_helping(_slow_square, chunks, lambda x: ("caller", x * x), processes=2, chunk_seconds=0.01, stats=stats)
    assert [v for _, v in out] == [c * c for c in chunks]
    assert stats["stepped_in"] and stats["caller"] + stats["redone"] >= 6  # at most the two started chunks from workers
    assert sum(who == "caller" for who, _ in out) == stats["caller"] + stats["redone"]
    time.sleep(3.5)  # let the sleeping workers finish before the next test


def test_a_call_does_not_start_the_pool(pool, keys):
    public, private = keys
    workers.shutdown()
    try:
        enc = FixedBaseEncryptor(public, window_bits=6)
        stats: dict = {}
        values = list(range(150))
        cts = parallel_encrypt(enc, values, processes=2, stats=stats)
        assert [private.decrypt(c) for c in cts] == values
        assert stats == {} and not workers.running(2)  # no pool: the caller alone, and none was started
        assert not workers.worth_parallel(1e6, processes=2)
    finally:
        workers.warm(2, wait=True)  # the module's pool back for the next tests


def test_the_threshold_comes_from_the_measured_round_trip(pool, keys):
    trip = workers.round_trip_seconds()
    assert trip is not None and trip > 0
    assert workers.threshold_seconds() == pytest.approx(workers.PAYOFF_ROUND_TRIPS * trip)
    assert workers.worth_parallel(2 * workers.threshold_seconds(), processes=2)
    assert not workers.worth_parallel(0.5 * workers.threshold_seconds(), processes=2)
    assert not workers.worth_parallel(1e6, processes=1)
    public, private = keys
    stats: dict = {}
    cts = parallel_encrypt(FixedBaseEncryptor(public, window_bits=6), [5, 6], processes=2, stats=stats)
    assert stats == {} and [private.decrypt(c) for c in cts] == [5, 6]  # two values: the caller's probe did them


def test_workers_not_ready_for_a_key_get_no_small_work(pool, keys):
    public, private = keys
    enc = FixedBaseEncryptor(public)  # a table no worker has: building it costs more than 60 values
    assert not workers.ready_everywhere(enc.spec())
    stats: dict = {}
    values = list(range(60))
    assert [private.decrypt(c) for c in parallel_encrypt(enc, values, processes=2, stats=stats)] == values
    assert stats == {}


@pytest.mark.parametrize("make", [lambda pub, priv: FixedBaseEncryptor(pub), lambda pub, priv: CrtFixedBaseEncryptor(priv, window_bits=6)])
def test_worker_chunks_decrypt_to_the_inputs(pool, keys, make):
    public, private = keys
    enc = make(public, private)
    spec = enc.spec()
    chunks = [(spec, list(range(i, i + 7))) for i in range(-21, 21, 7)]
    out = workers.map_helping(paillier._encrypt_task, chunks, lambda job: (0, []), processes=2, chunk_seconds=60)
    assert all(pid for pid, _ in out)  # every chunk came from a worker
    cts = [Ciphertext(public, v) for v in paillier._gathered(out, spec, paillier.ciphertext_width(public))]
    assert [private.decrypt(c) for c in cts] == list(range(-21, 21))


def test_prepare_workers_builds_in_every_worker(pool, keys):
    public, _ = keys
    enc = FixedBaseEncryptor(public, window_bits=5)
    prepare_workers(enc, processes=2)
    assert workers.ready_everywhere(enc.spec())
    other = FixedBaseEncryptor(public, window_bits=4)
    prepare_workers(other, processes=2)
    third = FixedBaseEncryptor(public, window_bits=3)
    prepare_workers(third, processes=2)
    # workers keep two encryptors: the first one was dropped, and the parent knows it
    assert workers.ready_everywhere(third.spec()) and workers.ready_everywhere(other.spec())
    assert not workers.ready_everywhere(enc.spec())


@pytest.mark.parametrize("count", [0, 1, 3, 100, 300])
def test_parallel_encrypt_decrypts_to_the_inputs_at_every_size(pool, no_threshold, keys, count):
    public, private = keys
    enc = FixedBaseEncryptor(public, window_bits=6)
    prepare_workers(enc, processes=2)
    values = [(i * 7919) % 100_003 - 50_000 for i in range(count)]
    stats: dict = {}
    cts = parallel_encrypt(enc, values, processes=2, stats=stats)
    assert [private.decrypt(c) for c in cts] == values
    if count >= 100:
        assert stats["chunks"] >= 1  # it went through the pool
    if count >= 300:
        assert stats["chunks"] > 1


def test_parallel_obfuscators_are_nth_residues_and_distinct(pool, no_threshold, keys):
    public, private = keys
    enc = FixedBaseEncryptor(public, window_bits=6)
    prepare_workers(enc, processes=2)
    stats: dict = {}
    obfuscators = parallel_obfuscators(enc.spec(), 300, processes=2, stats=stats, local=enc)
    assert len(obfuscators) == 300 and len(set(obfuscators)) == 300 and stats["chunks"] > 1
    # an obfuscator r^n encrypts zero: decrypting it as a ciphertext gives 0
    assert all(private.decrypt(Ciphertext(public, o)) == 0 for o in obfuscators[::30])
    filled = ObfuscatorPool(enc, fallback=False)
    filled.fill(50, processes=2)
    assert filled.remaining == 50 and private.decrypt(filled.encrypt(9)) == 9


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


def test_pool_if_running_starts_the_pool_in_the_background():
    workers.shutdown()
    assert workers.pool_if_running(2) is None  # this call: one core, no waiting for workers to start
    deadline = time.monotonic() + 60
    while not workers.running(2) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert workers.running(2) and workers.pool_if_running(2) is workers.shared_pool(2)
    workers.shutdown()
    assert not workers.running(2)


def test_shutdown_leaves_no_worker_behind():
    workers.warm(2, wait=True)
    pids = list(workers.shared_pool(2)._processes)
    assert len(pids) == 2 and all(_alive(p) for p in pids)
    workers.shutdown()
    assert not [p for p in pids if _alive(p)]
    assert not workers.running(2) and not workers.ready_everywhere("anything")


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
