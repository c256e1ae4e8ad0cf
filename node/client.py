"""A client that signs every request to a node with the caller's member key."""
from __future__ import annotations

import json
import ssl
from typing import Any
from urllib.parse import urlencode

import httpx
from eth_account.signers.local import LocalAccount

from node.auth import sign_request


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
                headers: dict | None = None) -> httpx.Response:
        raw = b"" if body is None else json.dumps(body).encode()
        full_path = path + (f"?{urlencode(params)}" if params else "")
        h = {"content-type": "application/json"} if body is not None else {}
        if sign:
            h.update(sign_request(self.account, self.chain_id, self.audience, method, full_path, raw))
        h.update(headers or {})
        return self.http.request(method, full_path, content=raw, headers=h)

    def query(self, dataset: str, purpose: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", "/data/query", {"dataset": dataset, "purpose": purpose, **kwargs})

    def close(self) -> None:
        self.http.close()
