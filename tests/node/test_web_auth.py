"""Web login tokens and page sessions (node/audit/web_auth.py): single use, expiry, only hashes at rest, CSRF per session.

The pages that use them are driven in a real browser in tests/browser/; here each rule is checked on its own.
"""
from __future__ import annotations

import hashlib
import stat
import threading

import pytest

from node.audit import web_auth
from node.audit.web_auth import WebSessions, issue_login_token, login_dir, redeem_login_token


def test_a_token_works_once(tmp_path):
    token = issue_login_token(tmp_path)
    assert redeem_login_token(tmp_path, token)
    assert not redeem_login_token(tmp_path, token)


def test_a_token_expires_whether_used_or_not(tmp_path):
    token = issue_login_token(tmp_path, 300, now=1000.0)
    assert not redeem_login_token(tmp_path, token, now=1300.5)
    assert not redeem_login_token(tmp_path, token, now=1000.0)  # the failed attempt used it up
    edge = issue_login_token(tmp_path, 300, now=1000.0)
    assert redeem_login_token(tmp_path, edge, now=1300.0)  # valid up to its expiry second


def test_only_the_hash_and_expiry_are_stored_in_private_files(tmp_path):
    token = issue_login_token(tmp_path, 300, now=1000.0)
    folder = login_dir(tmp_path)
    files = list(folder.iterdir())
    assert [f.name for f in files] == [hashlib.sha256(token.encode()).hexdigest()]
    assert files[0].read_text() == "1300.0\n"
    assert token not in files[0].read_text()
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE(files[0].stat().st_mode) == 0o600


@pytest.mark.parametrize("token", [None, "", "short", "a" * 129, "../../etc/passwd-aaaaaaaaaaaaaaa", "x y" * 10,
                                   "a" * 40])  # the last is well formed but never issued
def test_malformed_or_unknown_tokens_are_refused(tmp_path, token):
    issue_login_token(tmp_path)
    assert not redeem_login_token(tmp_path, token)


def test_issuing_sweeps_expired_and_unreadable_token_files(tmp_path):
    old = issue_login_token(tmp_path, 10, now=1000.0)
    live = issue_login_token(tmp_path, 10_000, now=1000.0)
    (login_dir(tmp_path) / "garbage").write_text("not a number")
    issue_login_token(tmp_path, 300, now=2000.0)
    names = {f.name for f in login_dir(tmp_path).iterdir()}
    assert hashlib.sha256(old.encode()).hexdigest() not in names
    assert hashlib.sha256(live.encode()).hexdigest() in names
    assert "garbage" not in names and len(names) == 2


def test_of_concurrent_logins_with_one_token_exactly_one_succeeds(tmp_path):
    token = issue_login_token(tmp_path)
    results, start = [], threading.Barrier(8)

    def attempt():
        start.wait()
        results.append(redeem_login_token(tmp_path, token))

    threads = [threading.Thread(target=attempt) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [False] * 7 + [True]


def test_a_session_starts_from_a_token_and_ends_at_logout(tmp_path):
    sessions = WebSessions(tmp_path)
    sessions.ensure_token()
    assert stat.S_IMODE(login_dir(tmp_path).stat().st_mode) == 0o700
    token = issue_login_token(tmp_path)
    sid = sessions.login(token)
    assert sid and sessions.valid(sid)
    assert sessions.login(token) is None  # the token is spent
    assert not sessions.valid(None) and not sessions.valid("") and not sessions.valid("forged")
    sessions.logout(sid)
    assert not sessions.valid(sid)


def test_a_session_expires(tmp_path, monkeypatch):
    sessions = WebSessions(tmp_path)
    clock = [1_000_000.0]
    monkeypatch.setattr(web_auth.time, "time", lambda: clock[0])
    sid = sessions.login(issue_login_token(tmp_path))
    clock[0] += web_auth.SESSION_SECONDS - 1
    assert sessions.valid(sid)
    clock[0] += 1
    assert not sessions.valid(sid)


def test_csrf_tokens_are_bound_to_the_session_and_the_node_process(tmp_path):
    sessions = WebSessions(tmp_path)
    a = sessions.login(issue_login_token(tmp_path))
    b = sessions.login(issue_login_token(tmp_path))
    assert sessions.check_csrf(a, sessions.csrf(a))
    assert not sessions.check_csrf(a, sessions.csrf(b))
    assert not sessions.check_csrf(a, None) and not sessions.check_csrf(a, "")
    restarted = WebSessions(tmp_path)  # a new process has a new key: old forms do not carry over
    assert not restarted.check_csrf(a, sessions.csrf(a))
