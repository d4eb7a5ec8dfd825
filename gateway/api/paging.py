"""One way to page every list of the admin API: ``limit``, ``cursor`` and next-page headers.

A list answers at most ``limit`` items (1..1000, default 100). When more follow, the
answer carries ``X-Next-Cursor: <cursor>`` and ``Link: <url>; rel="next"``; the URL is
the same request (path and filters) with ``cursor`` set, relative to the server, so it
stays right behind a reverse proxy. The last page has neither header.

The cursor is opaque to clients: base64url of the sort key of the last item of the page
(keyset paging, no ``OFFSET``), tagged with the list it belongs to, so a cursor of one
list is refused by another (422 ``invalid_cursor``). Items added at the front meanwhile
never shift what the next page holds.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any, TypeVar
from urllib.parse import quote, urlencode

from fastapi import Query, Request, Response

from core.errors import SwitchboardError
from core.storage.paging import PagePosition

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
CURSOR_MAX_CHARS = 1024
MAX_POSITION = 2**63 - 1  # the largest row id or seq the databases store
NEXT_CURSOR_HEADER = "X-Next-Cursor"
# Query parameters a next-page link replaces (audit's ``after_seq`` is superseded by ``cursor``).
_POSITION_PARAMS = frozenset({"cursor", "after_seq"})

Limit = Annotated[
    int,
    Query(ge=1, le=MAX_LIMIT, description="items per page, 1..1000", examples=[DEFAULT_LIMIT]),
]
Cursor = Annotated[
    str | None,
    Query(
        max_length=CURSOR_MAX_CHARS,
        description="opaque; the `X-Next-Cursor` header of the previous page",
    ),
]

PAGING_DESCRIPTION = (
    "\n\nPaging: at most `limit` items (1..1000, default 100). When more follow, the answer "
    'has the headers `X-Next-Cursor: <cursor>` and `Link: <url>; rel="next"` (the same '
    "request with `cursor` set); the last page has neither. Keyset paging: items added "
    "meanwhile never shift or repeat what the next page holds."
)
PAGED_HEADERS: dict[str, Any] = {
    NEXT_CURSOR_HEADER: {
        "description": "cursor of the next page; absent on the last page",
        "schema": {"type": "string"},
    },
    "Link": {
        "description": 'the next page as `<url>; rel="next"`; absent on the last page',
        "schema": {"type": "string"},
    },
}

Item = TypeVar("Item")


class InvalidCursor(SwitchboardError):
    """A cursor that no page of this list handed out."""

    code = "invalid_cursor"
    http_status = 422


def encode_cursor(list_name: str, *position: str | int) -> str:
    """The opaque cursor of ``position`` in the list ``list_name``."""
    raw = json.dumps([list_name, *position], separators=(",", ":"), ensure_ascii=True)
    return base64.urlsafe_b64encode(raw.encode()).rstrip(b"=").decode()


def decode_cursor(cursor: str, list_name: str) -> list[Any]:
    """The position a cursor of ``list_name`` holds; raises ``InvalidCursor``."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        decoded = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
    except (ValueError, UnicodeError, binascii.Error):
        decoded = None
    if not isinstance(decoded, list) or not decoded or decoded[0] != list_name:
        raise InvalidCursor(f"cursor: not a cursor of this list ({list_name}); start without one")
    return decoded[1:]


def time_cursor(list_name: str, position: PagePosition) -> str:
    """The cursor after an item sorted by (timestamp, id)."""
    return encode_cursor(list_name, position.at.isoformat(), position.id)


def decode_time_cursor(cursor: str | None, list_name: str) -> PagePosition | None:
    """The (timestamp, id) position of a cursor of ``list_name``; None without a cursor."""
    if cursor is None:
        return None
    values = decode_cursor(cursor, list_name)
    if len(values) == 2 and all(isinstance(v, str) for v in values):
        try:
            at = datetime.fromisoformat(values[0])
        except ValueError:
            at = None
        if at is not None and at.tzinfo is not None:
            return PagePosition(at=at, id=values[1])
    raise InvalidCursor(f"cursor: not a cursor of this list ({list_name}); start without one")


def decode_int_cursor(cursor: str | None, list_name: str) -> int | None:
    """The integer position (a row id or ``seq``) of a cursor; None without a cursor."""
    if cursor is None:
        return None
    values = decode_cursor(cursor, list_name)
    if len(values) == 1 and type(values[0]) is int and 0 <= values[0] <= MAX_POSITION:
        return values[0]
    raise InvalidCursor(f"cursor: not a cursor of this list ({list_name}); start without one")


def split_page(items: Sequence[Item], limit: int) -> tuple[list[Item], bool]:
    """(the page, whether more follow) from ``limit + 1`` fetched items."""
    return list(items[:limit]), len(items) > limit


def next_page_link(request: Request, cursor: str) -> str:
    """The path and query of the next page: this request with ``cursor`` set."""
    params = [(k, v) for k, v in request.query_params.multi_items() if k not in _POSITION_PARAMS]
    params.append(("cursor", cursor))
    return f"{quote(request.scope['path'], safe='/:@')}?{urlencode(params)}"


def announce_next_page(request: Request, response: Response, cursor: str | None) -> None:
    """Set ``X-Next-Cursor`` and ``Link`` when there is a next page."""
    if cursor is None:
        return
    response.headers[NEXT_CURSOR_HEADER] = cursor
    response.headers["Link"] = f'<{next_page_link(request, cursor)}>; rel="next"'
