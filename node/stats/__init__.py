"""Joint statistics between member nodes (DESIGN.md flows 2-4): the node side of privacy/.

- ``spec``        job specs: parsing a request (TOML/JSON), the canonical public spec and its hash
- ``local``       a member's local part of a job, computed over its own dataset tables
- ``store``       job rows, received contributions, the participant's own contributions, DP budget
- ``peer``        signed node-to-node requests (JSON and binary bodies), answer size limits
- ``errors``      refusals, each with its reason and HTTP status
- ``participant`` answering a job: chain check, grant check, compute, commit, log
- ``keys``        the node's Paillier key: unlocked, registered on the registry
- ``jobs``        what the requester's runners share: chain clock, process pool, failing and opening a job
- ``collect``     runners of horizontal and fraud jobs (one committed answer per participant)
- ``vertical``    runner of a vertical job (the exchange with the platform)
- ``release``     the release step: aggregate, decrypt, check, suppress, publish the result hash
- ``housekeeping`` aborting failed jobs on chain once their deadline has passed
- ``service``     the requester's jobs (submit, re-run, view) wiring the parts above, built without the node context
"""
