"""Log lines as ``key=value`` text or one JSON object per line, with secrets masked.

``switchboard run --log-format json`` (or ``[gateway] log_format``) picks the format; every
line goes through one handler on the root logger, ours and the libraries' alike (uvicorn,
SQLAlchemy, httpx).

Both formats add ``conversation`` and ``action_id`` when the line was logged while the
code handled one (``core.log_context``; read when the line is formatted, which happens in
the logging call itself: the handler is synchronous). A JSON line carries ``ts``,
``level``, ``logger``, ``event`` and ``message``, then the ``key=value`` pairs of our own
lines as fields (a pair named like one of those gets a trailing ``_``), the ``extra=``
fields of the call, and ``exception`` with the traceback.

Secrets are masked by the ``SecretRedactor`` in the arguments before they are formatted
into the message (so quoting by ``%r`` cannot hide one), then in the message, every
field and the traceback.
"""

from __future__ import annotations

import ast
import copy
import json
import logging
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal, TextIO

from core.log_context import current
from gateway.redaction import LOG_FORMAT, RedactingFormatter, SecretRedactor

LogFormat = Literal["text", "json"]

# Attributes every LogRecord has; anything else on a record came from ``extra=``, except
# uvicorn's ``color_message`` (the same message with terminal colours, for its formatter).
_STANDARD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message",
    "asctime",
    "taskName",
    "color_message",
}
_RESERVED = frozenset({"ts", "level", "logger", "event", "message", "exception", "stack"})
_PAIR = re.compile(r"""(?:^|(?<=\s))([a-z_][a-z0-9_]*)=("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|\S*)""")
OUR_LOGGERS = "switchboard"
# SQLAlchemy's ``echo`` gives this logger a plain stdout handler of its own (unredacted)
# when it has none; a do-nothing handler keeps it from doing so, so SQL reaches ours only.
_SQLALCHEMY_ECHO = "sqlalchemy.engine.Engine"


def parse_pairs(message: str) -> dict[str, str]:
    """The ``key=value`` pairs of a log message; quoted values (``%r``) are unquoted."""
    return {key: _unquote(raw) for key, raw in _PAIR.findall(message)}


def _unquote(raw: str) -> str:
    if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "'\"":
        try:
            value = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            return raw[1:-1]
        return value if isinstance(value, str) else raw[1:-1]
    return raw


def _field_name(key: str) -> str:
    return f"{key}_" if key in _RESERVED else key


def extra_fields(record: logging.LogRecord) -> dict[str, Any]:
    """What the logging call passed as ``extra=``."""
    return {k: v for k, v in vars(record).items() if k not in _STANDARD_ATTRIBUTES}


def redacted_record(record: logging.LogRecord, redactor: SecretRedactor) -> logging.LogRecord:
    """A copy of ``record`` whose string arguments are masked (the record is shared)."""
    args = record.args
    if not args:
        return record
    shown = copy.copy(record)
    if isinstance(args, Mapping):
        shown.args = {k: redactor.redact(v) if isinstance(v, str) else v for k, v in args.items()}
    else:
        shown.args = tuple(redactor.redact(a) if isinstance(a, str) else a for a in args)
    return shown


def _context_pairs(record: logging.LogRecord, message: str) -> list[tuple[str, str]]:
    """The context's conversation and action id, unless the line already names them."""
    conversation, action_id = current()
    pairs = []
    if conversation is not None and "conversation=" not in message:
        pairs.append(("conversation", conversation))
    if action_id is not None and "action_id=" not in message:
        pairs.append(("action_id", action_id))
    return pairs


def _text_value(text: str) -> str:
    return repr(text) if not text or any(c.isspace() for c in text) else text


class TextFormatter(RedactingFormatter):
    """``<time> level=.. logger=.. <message> conversation=.. action_id=.. <extra pairs>``."""

    def __init__(self, *, redactor: SecretRedactor) -> None:
        super().__init__(LOG_FORMAT, redactor=redactor)
        self._secrets = redactor

    def format(self, record: logging.LogRecord) -> str:
        """The line (and traceback), every known secret masked."""
        return super().format(redacted_record(record, self._secrets))

    def formatMessage(self, record: logging.LogRecord) -> str:
        """The first line, with the context and ``extra=`` fields appended."""
        line = super().formatMessage(record)
        pairs = _context_pairs(record, record.message)
        redact = self._secrets.redact
        pairs += [(k, _text_value(redact(str(v)))) for k, v in extra_fields(record).items()]
        if not pairs:
            return line
        return line + " " + " ".join(f"{k}={v}" for k, v in pairs)


class JsonFormatter(logging.Formatter):
    """One JSON object per line (see the module doc for its fields)."""

    def __init__(self, *, redactor: SecretRedactor) -> None:
        super().__init__()
        self._redactor = redactor

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line of JSON, every known secret masked."""
        redact = self._redactor.redact
        message = redact(redacted_record(record, self._redactor).getMessage())
        ts = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
        doc: dict[str, Any] = {
            "ts": ts.replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": None,
            "message": message,
        }
        if record.name == OUR_LOGGERS or record.name.startswith(OUR_LOGGERS + "."):
            for key, value in parse_pairs(message).items():
                if key == "event":
                    doc["event"] = value
                else:
                    doc[_field_name(key)] = value
        for key, value in _context_pairs(record, ""):
            doc.setdefault(key, value)
        for key, value in extra_fields(record).items():
            doc[_field_name(key)] = self._clean(value)
        if record.exc_info:
            doc["exception"] = redact(self.formatException(record.exc_info))
        elif record.exc_text:
            doc["exception"] = redact(record.exc_text)
        if record.stack_info:
            doc["stack"] = redact(self.formatStack(record.stack_info))
        # Each string was masked before encoding (JSON escapes could split a secret);
        # the last pass is for whatever a custom object's str() let through.
        return redact(json.dumps(doc, ensure_ascii=False, default=str))

    def _clean(self, value: Any) -> Any:
        """``value`` as JSON can hold it, every string in it masked."""
        if value is None or isinstance(value, bool | int | float):
            return value
        if isinstance(value, str):
            return self._redactor.redact(value)
        if isinstance(value, Mapping):
            return {str(k): self._clean(v) for k, v in value.items()}
        if isinstance(value, list | tuple | set | frozenset):
            return [self._clean(v) for v in value]
        return self._redactor.redact(str(value))


def configure_logging(
    *,
    level: str,
    redactor: SecretRedactor,
    log_format: LogFormat = "text",
    stream: TextIO | None = None,
) -> logging.Handler:
    """Route every log line (ours, uvicorn's, SQLAlchemy's) through one masking handler.

    Returns the handler (on the root logger, replacing any there) writing to ``stream``
    (standard error by default).
    """
    handler = logging.StreamHandler(stream)
    formatter: logging.Formatter
    if log_format == "json":
        formatter = JsonFormatter(redactor=redactor)
    else:
        formatter = TextFormatter(redactor=redactor)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
    logging.getLogger(_SQLALCHEMY_ECHO).handlers = [logging.NullHandler()]
    return handler
