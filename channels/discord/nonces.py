"""Idempotent sends: the same ``nonce`` on every attempt at the same outbox row.

Discord creates a message once per ``nonce`` when ``enforce_nonce`` is set (discord.py always
sets it) within a few minutes: a send whose answer was lost (a 5xx after the message was made,
a dropped connection, a timeout, a restart between the send and the outbox marking it sent)
and is tried again returns the message made the first time instead of posting it twice.

The nonce is derived from the row's content, so it is the same after a restart. Two rows with
the same content (the same chunk twice in one answer) must still be two messages: once a row
is sent, its next twin in this process gets the next nonce of the series. (After a restart
that counter starts again, so a twin whose first attempt died with the process could be taken
for its elder within Discord's few minutes; rare, and never a duplicate.)
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict

from core.types import OutboundItem

NONCE_LENGTH = 25  # Discord's limit
_REMEMBERED = 4096


def _fingerprint(item: OutboundItem, part: int) -> str:
    return hashlib.sha256(f"{item.model_dump_json()}\x00{part}".encode()).hexdigest()


class SendNonces:
    """The nonce of a row (and chunk): fixed by its content and how many twins went before."""

    def __init__(self) -> None:
        self._sent_twins: OrderedDict[str, int] = OrderedDict()

    def for_row(self, item: OutboundItem, part: int = 0) -> str:
        """The nonce of this attempt at ``item`` (chunk ``part``)."""
        key = _fingerprint(item, part)
        twins = self._sent_twins.get(key, 0)
        return hashlib.sha256(f"{key}:{twins}".encode()).hexdigest()[:NONCE_LENGTH]

    def done(self, item: OutboundItem, part: int = 0) -> None:
        """``item`` was sent: an identical row after it is another message."""
        key = _fingerprint(item, part)
        self._sent_twins[key] = self._sent_twins.get(key, 0) + 1
        self._sent_twins.move_to_end(key)
        while len(self._sent_twins) > _REMEMBERED:
            self._sent_twins.popitem(last=False)
