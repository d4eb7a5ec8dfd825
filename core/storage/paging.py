"""Keyset positions for lists read page by page, newest first, without ``OFFSET``.

A page ends at its last row; the next page is everything that sorts after that row.
Unlike ``OFFSET``, rows added at the front meanwhile neither shift nor repeat what the
next page holds, and the database seeks the index instead of counting rows to skip.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, or_


@dataclass(frozen=True, slots=True)
class PagePosition:
    """The sort key of the last row of a page: a timestamp and a unique tie-breaker."""

    at: datetime
    id: str


def after_position(
    time_column: Any, id_column: Any, position: PagePosition, *, ids_descending: bool
) -> Any:
    """``WHERE`` clause of the rows after ``position`` in ``time DESC, id (DESC|ASC)`` order.

    Spelled out as ``OR``/``AND`` instead of a row-value comparison so that every bound
    value goes through its column's type (UTC timestamps are stored as text on SQLite).
    """
    later_id = id_column < position.id if ids_descending else id_column > position.id
    return or_(time_column < position.at, and_(time_column == position.at, later_id))
