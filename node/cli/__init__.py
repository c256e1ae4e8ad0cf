"""The `consortium` command line: one module per command group, every group registered in node/cli/main.py.

Shared options, the one way a command connects (``--config``, or ``--rpc``/``--deployment``/``--keys``) and
how it prints live in node/cli/options.py.

Imports inside commands: the chain, store, HTTP and table libraries (web3, eth-account, sqlalchemy, pydantic
settings, fastapi, httpx, rich) are imported inside the commands that use them, because every command,
and ``consortium --help``, first builds the whole parser, which imports every group module. Measured on
this machine (min of 5): the parser alone loads in about 0.17 s; web3 adds about 1.4 s, the ledger or
member directory about 1.8 s, node settings 0.15 s, httpx 0.1 s, rich 0.03-0.04 s. Everything cheaper
than that is imported at the top of its module.
"""
