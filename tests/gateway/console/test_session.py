"""The console's cookie scheme: signed with the admin token, 12 hours, CSRF bound to it."""

from __future__ import annotations

from gateway.console.session import (
    SESSION_TTL_S,
    csrf_matches,
    csrf_token,
    issue_session,
    session_expiry,
    session_valid,
)

TOKEN = b"admin-token-0123456789"
NOW = 1_800_000_000.0


def test_a_session_is_valid_for_12_hours_with_the_token_that_issued_it() -> None:
    value = issue_session(TOKEN, now=NOW).encode()
    assert session_valid(value, TOKEN, now=NOW)
    assert session_valid(value, TOKEN, now=NOW + SESSION_TTL_S - 1)
    assert not session_valid(value, TOKEN, now=NOW + SESSION_TTL_S)
    assert session_expiry(value) == int(NOW) + 12 * 60 * 60


def test_a_new_admin_token_ends_every_session() -> None:
    value = issue_session(TOKEN, now=NOW).encode()
    assert not session_valid(value, b"the-new-token", now=NOW)


def test_forged_or_garbled_values_are_refused() -> None:
    issued, _, mac = issue_session(TOKEN, now=NOW).partition(".")
    later = str(int(NOW) + 3600)
    candidates = [
        f"{later}.{mac}",  # a longer life with the old signature
        f"{issued}.{'0' * len(mac)}",
        f"{issued}.",
        issued,
        "",
        "abc.def",
        "9" * 40 + "." + mac,
        f"{issued}.{mac}\u00e9",
    ]
    for candidate in candidates:
        assert not session_valid(candidate.encode(), TOKEN, now=NOW), candidate
    future = issue_session(TOKEN, now=NOW + 3600).encode()
    assert not session_valid(future, TOKEN, now=NOW)  # issued an hour from now: forged clock


def test_the_csrf_token_belongs_to_one_session_and_one_key() -> None:
    one = issue_session(TOKEN, now=NOW).encode()
    other = issue_session(TOKEN, now=NOW + 5).encode()
    token = csrf_token(one, TOKEN)
    assert csrf_matches(token, session=one, key=TOKEN)
    assert not csrf_matches(token, session=other, key=TOKEN)
    assert not csrf_matches(token, session=one, key=b"another-key")
    assert not csrf_matches("", session=one, key=TOKEN)
    assert not csrf_matches("\u00e9" * 64, session=one, key=TOKEN)
    assert token != one.decode().partition(".")[2]  # not the session signature itself
