"""Pure cryptography and statistics for the consortium: no web, no chain, no database.

Modules (one object each, python-paillier style):

- ``errors``      the exception hierarchy (``PrivacyError`` and its ``reason`` codes)
- ``gmp``         the one gmpy2 helper
- ``paillier``    keys, ciphertexts, phe-compatible serialization, CRT / fixed-base / pool / parallel encryption
- ``encoding``    signed fixed-point encoding
- ``packing``     slot layouts and packed encrypted vectors (overflow detected, never wrapped)
- ``masking``     pairwise zero-sum masks from X25519 + HKDF
- ``aggregation`` horizontal secure aggregation rounds and statistics (flow 2)
- ``dropout``     dropout-tolerant aggregation: double masking with Shamir-shared seeds (Bonawitz et al. 2017)
- ``psi``         private set intersection cardinality by commutative X25519 blinding
- ``join``        private join-and-group-by, i.e. private intersection-sum with groups (flow 3)
- ``release``     minimum cohort k, Laplace / Gaussian noise, epsilon budget accountant
- ``fraud``       fraud signals: membership counts across members' sets through PSI (flow 4)
- ``merkle``      RFC 6962 Merkle trees (flow 5)
"""
