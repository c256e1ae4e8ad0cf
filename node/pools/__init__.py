"""Pooled risk on chain: the consortium risk pool (RiskPool) and mutual-aid apportionment (MutualAid).

The arithmetic and the share tree are pure (privacy/apportion.py); this package reads and writes the
files a member and its participants exchange, and talks to the chain through node/chain/ledger.py.
"""
