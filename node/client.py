"""A client that signs every request to a node with the caller's member key."""
from __future__ import annotations

import json
import ssl
from typing import Any

import httpx
from eth_account.signers.local import LocalAccount

from node.access.auth import canonical_target, sign_request


def signed_target(base_url: httpx.URL, url: httpx.URL) -> str:
    """What a node verifies for ``url``: the percent-encoded path and query as they go on the wire.

    A base URL with a path (a node behind a reverse proxy at ``/consortium``) is not part of it: the
    node sees the path after the proxy strips its prefix.
    """
    raw_path, _, query = url.raw_path.partition(b"?")
    prefix = base_url.raw_path.split(b"?")[0].rstrip(b"/")
    if prefix and raw_path.startswith(prefix + b"/"):
        raw_path = raw_path[len(prefix):]
    return canonical_target(raw_path, query)


class NodeClient:
    def __init__(self, base_url: str, account: LocalAccount, audience: str, chain_id: int, timeout: float = 30.0,
                 verify: bool | str = True):
        """``verify``: TLS verification, True for the system CAs or the path of the consortium's CA bundle."""
        self.base_url = base_url.rstrip("/")
        self.account = account
        self.audience = audience
        self.chain_id = chain_id
        if isinstance(verify, str):
            verify = ssl.create_default_context(cafile=verify)
        self.http = httpx.Client(base_url=self.base_url, timeout=timeout, verify=verify)

    def request(self, method: str, path: str, body: Any = None, params: dict | None = None, *, sign: bool = True,
                headers: dict | None = None, content: bytes | None = None) -> httpx.Response:
        """``body`` is sent as JSON; ``content`` as raw bytes (a document upload). Signed unless ``sign=False``."""
        raw = content if content is not None else b"" if body is None else json.dumps(body).encode()
        h = {"content-type": "application/json"} if body is not None else {}
        request = self.http.build_request(method, path, params=params, content=raw, headers=h)
        if sign:
            # Sign the target exactly as httpx will send it (percent-encoded), which is what the node checks.
            request.headers.update(sign_request(self.account, self.chain_id, self.audience, method,
                                                signed_target(self.http.base_url, request.url), raw))
        request.headers.update(headers or {})
        return self.http.send(request)

    def query(self, dataset: str, purpose: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", "/data/query", {"dataset": dataset, "purpose": purpose, **kwargs})

    def close(self) -> None:
        self.http.close()
