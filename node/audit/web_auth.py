"""Who may open the regulator's and auditor's web pages.

A browser cannot sign each request with the member's key (EIP-712, as the API requires), so the pages
are served to the node's own operator only, by a second secret: a random token the node writes into
its home folder (mode 0600) on first start. ``consortium audit web-url --config node.toml`` prints a
login URL carrying it; the login swaps the token for a session cookie (HttpOnly, SameSite=Strict,
path /web) and redirects, so the token leaves the address bar. Anyone who can read the node's home
folder can already use its keys' files, so the token adds no new trust. On top of the session, each
page checks on chain that this node's member is a regulator (or, for the evidence check, an auditor
or regulator) in good standing: a member node serves no audit pages at all. Forms that change state
carry a CSRF token bound to the session.
"""
from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import threading
import time
from pathlib import Path

TOKEN_FILE = "audit_web_token"
COOKIE = "consortium_web"
SESSION_SECONDS = 8 * 3600


def token_path(home: Path) -> Path:
    return Path(home) / TOKEN_FILE


def ensure_token(home: Path) -> str:
    """The node's web token, created (0600, never overwritten) when missing."""
    path = token_path(home)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as fh:
        token = secrets.token_urlsafe(32)
        fh.write(token + "\n")
    return token


class WebSessions:
    def __init__(self, home: Path):
        self.home = Path(home)
        self._token: str | None = None
        self._sessions: dict[str, float] = {}
        self._lock = threading.Lock()

    def ensure_token(self) -> str:
        if self._token is None:
            self._token = ensure_token(self.home)
        return self._token

    def login(self, token: str) -> str | None:
        """A new session id for the right token, else None (constant-time comparison)."""
        if not token or not hmac.compare_digest(token.strip().encode(), self.ensure_token().encode()):
            return None
        sid = secrets.token_urlsafe(32)
        with self._lock:
            now = time.time()
            self._sessions = {k: v for k, v in self._sessions.items() if v > now}
            self._sessions[sid] = now + SESSION_SECONDS
        return sid

    def valid(self, sid: str | None) -> bool:
        if not sid:
            return False
        with self._lock:
            expires = self._sessions.get(sid)
        return expires is not None and expires > time.time()

    def logout(self, sid: str | None) -> None:
        with self._lock:
            self._sessions.pop(sid or "", None)

    def csrf(self, sid: str) -> str:
        return hmac.new(self.ensure_token().encode(), b"csrf:" + sid.encode(), hashlib.sha256).hexdigest()

    def check_csrf(self, sid: str, value: str | None) -> bool:
        return bool(value) and hmac.compare_digest(self.csrf(sid), value)
