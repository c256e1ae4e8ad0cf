"""Joint statistics between member nodes (DESIGN.md flows 2-4): the node side of privacy/.

- ``spec``        job specs: parsing a request (TOML/JSON), the canonical public spec and its hash
- ``local``       a member's local part of a job, computed over its own dataset tables
- ``store``       job rows, received contributions, the participant's own contributions, DP budget
- ``peer``        signed node-to-node requests (JSON and binary bodies)
- ``participant`` answering a job: chain check, grant check, compute, commit, log
- ``service``     the requester: open on chain, collect, validate commitments, aggregate, release, publish
"""
