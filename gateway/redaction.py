"""Keeping secrets out of logs: every resolved secret value is masked by the log formatter.

The formatters themselves and ``configure_logging`` live in ``gateway.log_format``.
"""

from __future__ import annotations

import json
import logging
import threading

MASK = "[redacted]"
# Shorter values would mask ordinary words; no real key, token or passphrase is this short.
_MIN_SECRET_LENGTH = 6


class SecretRedactor:
    """The set of secret values that must never appear in a log line."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: tuple[str, ...] = ()

    def add(self, value: str) -> None:
        """Remember a secret value (longest first, so a secret inside another is masked whole).

        Its escaped forms are masked too: ``repr()`` (a ``%r`` in a message or exception)
        and JSON (an error body quoting a request) write quotes and backslashes otherwise.
        """
        if len(value) < _MIN_SECRET_LENGTH:
            return
        forms = {value, repr(value)[1:-1], json.dumps(value)[1:-1]}
        with self._lock:
            if not forms <= set(self._values):
                self._values = tuple(sorted({*self._values, *forms}, key=len, reverse=True))

    def redact(self, text: str) -> str:
        """``text`` with every known secret replaced by ``[redacted]``."""
        for value in self._values:
            if value in text:
                text = text.replace(value, MASK)
        return text


class RedactingFormatter(logging.Formatter):
    """Formats as usual (message, arguments, traceback), then masks every known secret."""

    def __init__(self, fmt: str, *, redactor: SecretRedactor) -> None:
        super().__init__(fmt)
        self._redactor = redactor

    def format(self, record: logging.LogRecord) -> str:
        return self._redactor.redact(super().format(record))


LOG_FORMAT = "%(asctime)s level=%(levelname)s logger=%(name)s %(message)s"
