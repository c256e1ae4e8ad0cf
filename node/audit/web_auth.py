"""Who may open the regulator's and auditor's web pages.

A browser cannot sign each request with the member's key (EIP-712, as the API requires), so the pages
are served to the node's own operator only, by a second secret: ``consortium audit web-url --config
node.toml`` mints a fresh login token each time it runs and prints a URL carrying it. Only the token's
SHA-256 and expiry are written into the node's home (a 0700 folder, 0600 files), so the node and the
CLI (separate processes) share it without a network call. A token

- works once: the login deletes its file, and of two concurrent logins only one deletion succeeds;
- expires after ``web_login_seconds`` (5 minutes by default) whether used or not;
- is never consumed by a GET: the link shows a form that POSTs it (a script on the page submits it and
  takes it out of the address bar), so a prefetch, a proxy log or the history cannot log anyone in
  after the operator did, and nothing follows the token in a Referer.

The login swaps the token for a session cookie (HttpOnly, SameSite=Strict, path /web); logout ends the
session. Anyone who can write the node's home folder can already use its keys' files, so the token
folder adds no new trust. On top of the session, each page checks on chain that this node's member is
a regulator (or, for the evidence check, an auditor or regulator) in good standing. Forms that change
state carry a CSRF token bound to the session.
"""
from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
import threading
import time
from pathlib import Path

LOGIN_DIR = "web_logins"
COOKIE = "consortium_web"
SESSION_SECONDS = 8 * 3600
DEFAULT_LOGIN_SECONDS = 300
_TOKEN_SHAPE = re.compile(r"^[A-Za-z0-9_-]{20,128}$")


def login_dir(home: Path) -> Path:
    return Path(home) / LOGIN_DIR


def _token_file(home: Path, token: str) -> Path:
    return login_dir(home) / hashlib.sha256(token.encode()).hexdigest()


def issue_login_token(home: Path, lifetime_seconds: int = DEFAULT_LOGIN_SECONDS, *, now: float | None = None) -> str:
    """A new single-use login token; only its hash and expiry are stored (and expired ones are swept)."""
    folder = login_dir(home)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    now = time.time() if now is None else now
    for old in folder.iterdir():
        try:
            if float(old.read_text().strip() or 0) < now:
                old.unlink(missing_ok=True)
        except (OSError, ValueError):
            old.unlink(missing_ok=True)
    token = secrets.token_urlsafe(32)
    fd = os.open(_token_file(home, token), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(f"{now + lifetime_seconds}\n")
    return token


def redeem_login_token(home: Path, token: str | None, *, now: float | None = None) -> bool:
    """True once for a token that was issued and has not expired; it can never be redeemed again."""
    if not token or not _TOKEN_SHAPE.match(token.strip()):
        return False
    path = _token_file(home, token.strip())
    try:
        expires = float(path.read_text().strip())
        path.unlink()  # the single use: a concurrent second login finds no file
    except (OSError, ValueError):
        return False
    return expires >= (time.time() if now is None else now)


class WebSessions:
    def __init__(self, home: Path):
        self.home = Path(home)
        self._csrf_key = secrets.token_bytes(32)  # sessions live in memory: so does the key binding their forms
        self._sessions: dict[str, float] = {}
        self._lock = threading.Lock()

    def ensure_token(self) -> None:
        """Make the login folder (private) so `audit web-url` and the node agree on it from the start."""
        login_dir(self.home).mkdir(mode=0o700, parents=True, exist_ok=True)

    def login(self, token: str | None) -> str | None:
        """A new session id for a valid, unused, unexpired login token, else None."""
        if not redeem_login_token(self.home, token):
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
        return hmac.new(self._csrf_key, b"csrf:" + sid.encode(), hashlib.sha256).hexdigest()

    def check_csrf(self, sid: str, value: str | None) -> bool:
        return bool(value) and hmac.compare_digest(self.csrf(sid), value)
