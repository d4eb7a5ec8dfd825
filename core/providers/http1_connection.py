"""One HTTP/1.1 client connection: an asyncio Protocol with the ``httptools`` response parser.

A connection carries one request at a time (no pipelining). Its owner writes a request,
awaits the response head, then reads the body chunk by chunk as the parser delivers it;
reading pauses the socket when more than ``_HIGH_WATER`` bytes wait unread, so a slow
consumer of a large answer does not buffer it all. Every wait has a deadline: a timer on
the loop fails the wait with httpx's own timeout class, which is cheaper than a timeout
context per chunk. Errors are httpx's exception classes, so providers handle this
transport exactly like any other httpx transport.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import NamedTuple

import httptools
import httpx

_HIGH_WATER = 256 * 1024
_NO_BODY_STATUSES = frozenset({204, 304})


class ResponseHead(NamedTuple):
    """What precedes an answer's body."""

    status: int
    headers: list[tuple[bytes, bytes]]
    http_version: bytes
    reason: bytes


class Http1Connection(asyncio.Protocol):
    """A client connection; see the module docstring for its life cycle."""

    # The state of the answer in flight, reset by ``_begin_response`` for each request.
    _head_request: bool
    _in_flight: bool
    _status: int | None
    _version: bytes
    _reason: bytes
    _headers: list[tuple[bytes, bytes]]
    _chunks: deque[bytes]
    _buffered: int
    _paused_reading: bool
    _complete: bool
    _keep_alive: bool
    _until_eof: bool
    _unsolicited: bool

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._transport: asyncio.Transport | None = None
        self._parser = httptools.HttpResponseParser(self)
        self._waiter: asyncio.Future[None] | None = None
        self._error: httpx.TransportError | None = None
        self._paused_writing = False
        self._drained: asyncio.Future[None] | None = None
        self.closed = False
        self.idle_since = 0.0
        self._begin_response(head_request=False)

    # -- the owner's side ---------------------------------------------------------------

    def send(self, data: bytes, *, head_request: bool) -> None:
        """Write a whole request; the answer is read with ``read_head`` and ``read_body``."""
        self._begin_response(head_request=head_request)
        self._in_flight = True
        self._socket().write(data)

    def send_more(self, data: bytes) -> None:
        """Write more of the request ``send`` began (a large body after its head)."""
        self._socket().write(data)

    async def drain(self, wait_s: float | None) -> None:
        """Wait until the kernel took what ``send`` wrote (a large body on a slow link)."""
        if self._paused_writing and not self.closed:
            self._drained = self._loop.create_future()
            await self._wait(self._drained, wait_s, httpx.WriteTimeout("timed out writing"))

    async def read_head(self, wait_s: float | None) -> ResponseHead:
        """Status code, raw headers, HTTP version and reason of the answer (1xx skipped)."""
        while self._status is None:
            await self._wait_for_data(wait_s)
        return ResponseHead(self._status, self._headers, self._version, self._reason)

    async def read_body(self, wait_s: float | None) -> bytes | None:
        """The next piece of the body, or None at its end."""
        while not self._chunks:
            if self._complete:
                return None
            await self._wait_for_data(wait_s)
        chunk = self._chunks.popleft()
        self._buffered -= len(chunk)
        if self._paused_reading and self._buffered < _HIGH_WATER // 2:
            self._paused_reading = False
            if self._transport is not None and not self.closed:
                self._transport.resume_reading()
        return chunk

    @property
    def reusable(self) -> bool:
        """True when the last answer was read to its end and the server keeps the connection."""
        return self._complete and self._keep_alive and not self.closed and not self._unsolicited

    def close(self) -> None:
        """Close the socket (idempotent)."""
        self.closed = True
        if self._transport is not None:
            self._transport.close()

    # -- asyncio.Protocol ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]  # a stream transport

    def data_received(self, data: bytes) -> None:
        if not self._in_flight or self._complete:
            self.close()  # bytes nobody asked for: this connection cannot be trusted again
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(httpx.RemoteProtocolError("the server switched protocols"))
        except httptools.HttpParserError as exc:
            self._fail(httpx.RemoteProtocolError(f"malformed HTTP answer: {exc}"))
        self._wake()

    def eof_received(self) -> bool:
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._status is not None and self._until_eof and not self._complete and exc is None:
            self._complete = True  # a body delimited by the end of the connection
            self._in_flight = False
        elif self._error is None and not self._complete and self._in_flight:
            what = "before answering" if self._status is None else "mid-answer"
            error = httpx.ReadError if exc is not None else httpx.RemoteProtocolError
            self._error = error(f"the server closed the connection {what}")
        self._wake()
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)

    def pause_writing(self) -> None:
        self._paused_writing = True

    def resume_writing(self) -> None:
        self._paused_writing = False
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)

    # -- httptools callbacks ------------------------------------------------------------

    def on_message_begin(self) -> None:
        if self._complete:  # a second answer nobody asked for
            self._unsolicited = True

    def on_status(self, reason: bytes) -> None:
        if not self._complete:
            self._reason += reason  # may come in pieces, like every httptools callback

    def on_header(self, name: bytes, value: bytes) -> None:
        if not self._complete:
            self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        if self._complete:
            return
        status = self._parser.get_status_code()
        if 100 <= status < 200:  # an interim answer (100 Continue): the real one follows
            self._headers = []
            self._reason = b""
            return
        self._status = status
        self._version = b"HTTP/" + self._parser.get_http_version().encode()
        self._keep_alive = self._parser.should_keep_alive()
        if self._head_request or status in _NO_BODY_STATUSES:
            # httptools cannot be told that a HEAD answer has no body, so such a connection
            # is not reused: the parser would take the next answer's bytes for this body.
            self._complete = True
            self._keep_alive = self._keep_alive and not self._head_request
            return
        names = {name.lower() for name, _ in self._headers}
        self._until_eof = b"content-length" not in names and b"transfer-encoding" not in names

    def on_body(self, body: bytes) -> None:
        if self._complete:
            return
        self._chunks.append(body)
        self._buffered += len(body)
        if self._buffered > _HIGH_WATER and not self._paused_reading and self._transport:
            self._paused_reading = True
            self._transport.pause_reading()

    def on_message_complete(self) -> None:
        if self._status is not None:
            self._complete = True
            self._in_flight = False

    # -- internals ----------------------------------------------------------------------

    def _begin_response(self, *, head_request: bool) -> None:
        self._head_request = head_request
        self._in_flight = False
        self._status = None
        self._version = b"HTTP/1.1"
        self._reason = b""
        self._headers = []
        self._chunks = deque()
        self._buffered = 0
        self._paused_reading = False
        self._complete = False
        self._keep_alive = False
        self._until_eof = False
        self._unsolicited = False

    def _socket(self) -> asyncio.Transport:
        if self._transport is None or self.closed:
            raise httpx.ReadError("the connection is closed")
        return self._transport

    def _fail(self, error: httpx.TransportError) -> None:
        if self._error is None:
            self._error = error
        self.close()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _wait_for_data(self, wait_s: float | None) -> None:
        if self._error is not None:
            raise self._error
        if self.closed:
            raise httpx.ReadError("the connection is closed")
        self._waiter = self._loop.create_future()
        await self._wait(self._waiter, wait_s, httpx.ReadTimeout("timed out reading"))
        self._waiter = None  # an error found now is raised by the next wait, after what
        # arrived with it (an answer complete before the junk that follows it) is read

    async def _wait(
        self, future: asyncio.Future[None], wait_s: float | None, error: httpx.TimeoutException
    ) -> None:
        if wait_s is None:
            await future
            return
        timer = self._loop.call_later(wait_s, expire, future, error)
        try:
            await future
        finally:
            timer.cancel()


def expire(future: asyncio.Future[None], error: Exception) -> None:
    """Fail ``future`` with ``error`` unless it is already done (a deadline's timer)."""
    if not future.done():
        future.set_exception(error)
