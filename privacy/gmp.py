"""The one place that touches gmpy2 (python-paillier style: speed-ups behind a small helper).

gmpy2 is a hard dependency here: without it every Paillier operation is about 8x slower and the
benchmarks would be meaningless. Values leave this module as plain Python ``int`` where they cross a
protocol boundary, so phe and JSON can read them.
"""
from __future__ import annotations

import gmpy2

mpz = gmpy2.mpz


def powmod(base: int, exponent: int, modulus: int) -> int:
    """``base ** exponent % modulus`` through GMP."""
    return gmpy2.powmod(base, exponent, modulus)


def invert(value: int, modulus: int) -> int:
    """Multiplicative inverse of ``value`` modulo ``modulus``; ZeroDivisionError if none exists."""
    return gmpy2.invert(value, modulus)


def gcd(a: int, b: int) -> int:
    return int(gmpy2.gcd(a, b))


def crt_pair(residue_p: int, residue_q: int, modulus_p: int, modulus_q: int, inverse_p_mod_q: int) -> int:
    """Chinese remaindering (Garner): the x < mp*mq with x = rp mod mp and x = rq mod mq."""
    return residue_p + modulus_p * (((residue_q - residue_p) * inverse_p_mod_q) % modulus_q)
