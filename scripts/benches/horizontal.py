"""Horizontal statistics: packed masked contributions vs one ciphertext per value; masking vs encryption cost."""
from __future__ import annotations

import random
import time

from privacy.aggregation import Aggregator, HorizontalSpec, contribute, local_vector
from privacy.masking import generate_masking_key, mask_vector, public_bytes
from privacy.paillier import FixedBaseEncryptor, PheEncryptor, generate_keypair

describe = "secure aggregation: 64-bucket histogram + sums from 5 parties, packed vs one ciphertext per value"


def add_arguments(parser):
    parser.add_argument("--parties", type=int, default=5)
    parser.add_argument("--buckets", type=int, default=64)
    parser.add_argument("--records", type=int, default=2000, help="records per party")
    parser.add_argument("--bits", type=int, default=2048)
    parser.add_argument("--encrypt-samples", type=int, default=20)
    parser.add_argument("--mask-repeats", type=int, default=50)
    parser.add_argument("--seed", type=int, default=11)


def run(args, progress):
    rng = random.Random(args.seed)
    public, private = generate_keypair(args.bits)
    parties = [f"member-{i}" for i in range(args.parties)]
    keys = {p: generate_masking_key() for p in parties}
    registry = {p: public_bytes(k) for p, k in keys.items()}
    spec = HorizontalSpec("bench-horizontal", tuple(parties), tuple(f"b{i}" for i in range(args.buckets)),
                          public.fingerprint, statistics=("count", "sum"), key_bits=args.bits)
    data = {p: [(f"b{rng.randrange(args.buckets)}", round(rng.uniform(0, 5000), 2)) for _ in range(args.records)] for p in parties}

    aggregator = Aggregator(spec, private)
    encryptor = FixedBaseEncryptor(public)
    task = progress.add_task("contributions", total=len(parties))
    start = time.perf_counter()
    ciphertexts = 0
    for p in parties:
        c = contribute(spec, p, keys[p], {q: registry[q] for q in parties if q != p}, public, records=data[p], encryptor=encryptor)
        ciphertexts += len(c.vector.ciphertexts)
        aggregator.add(c.to_dict())
        progress.advance(task)
    result = aggregator.finish()
    round_seconds = time.perf_counter() - start

    expected = {}
    for p in parties:
        vec = local_vector(spec, data[p])
        expected = {i: expected.get(i, 0) + v for i, v in enumerate(vec)}
    correct = all(
        result[b].count == expected[2 * i] and round(result[b].sum * 100) == expected[2 * i + 1]
        for i, b in enumerate(spec.buckets)
    )
    values_per_party = spec.layout.length
    naive_ciphertexts = values_per_party * len(parties)

    # cost of one Paillier encryption (plain phe, the one-per-value baseline) ...
    phe_encryptor = PheEncryptor(public)
    t = time.perf_counter()
    for i in range(args.encrypt_samples):
        phe_encryptor.encrypt(i)
    encrypt_seconds = (time.perf_counter() - t) / args.encrypt_samples
    # ... vs masking per value: X25519 agreements, HKDF, PRG expansion and modular addition, whole vector
    vector = local_vector(spec, data[parties[0]])
    peers = {q: registry[q] for q in parties if q != parties[0]}
    t = time.perf_counter()
    for _ in range(args.mask_repeats):
        mask_vector(vector, keys[parties[0]], parties[0], peers, spec.round_id, spec.layout.widths)
    mask_seconds_per_value = (time.perf_counter() - t) / args.mask_repeats / values_per_party

    return {
        "ciphertext_ratio": round(naive_ciphertexts / ciphertexts, 1),
        "mask_vs_encrypt_ratio": round(encrypt_seconds / mask_seconds_per_value, 1),
        "parties": len(parties),
        "buckets": args.buckets,
        "values_per_party": values_per_party,
        "ciphertexts_naive": naive_ciphertexts,
        "ciphertexts_ours": ciphertexts,
        "encrypt_ms": round(encrypt_seconds * 1e3, 3),
        "mask_us_per_value": round(mask_seconds_per_value * 1e6, 3),
        "round_seconds": round(round_seconds, 3),
        "correct": correct,
        "bits": args.bits,
    }
