"""The providers' httpx transport: HTTP/1.1 keep-alive pools on asyncio and ``httptools``.

Why our own transport: on the latency path that issue #4 measures (``bench/provider_overhead``
at 200 requests/s) the client under the gateway's upstream call was the largest cost. In
an isolated loop on this 2-core machine (one request every 5 ms to the same loopback fake,
so caches go cold between requests the way they do in the gateway), each request cost
0.91 CPU-ms through httpx over httpx-aiohttp, 0.55 through aiohttp alone, and 0.15 through an
asyncio Protocol feeding ``httptools`` (the parser uvicorn uses); httpcore, httpx's own
transport, scans its whole pool on every request (a third of the gateway's CPU under
load). A transport is the seam httpx is made to be extended at, so providers keep httpx's
API, exceptions and streaming; only the wire underneath changes. What it supports is what
LLM APIs need: HTTP/1.1 over TCP or TLS, bodies by length, chunks or connection close,
per-host pools with ``httpx.Limits``, and httpx's connect/read/write/pool timeouts. No
proxies (the clients never read proxy settings from the environment), no HTTP/2.
A POST that fails on a reused connection is not retried (like httpcore and aiohttp): a
connection the server closed while idle is noticed when its FIN arrives and never reused.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque

import certifi
import httpx

from core.providers.http1_connection import Http1Connection, expire

DEFAULT_LIMITS = httpx.Limits(
    max_connections=256, max_keepalive_connections=64, keepalive_expiry=30
)
_ONE_WRITE_MAX = 64 * 1024  # smaller bodies go out in the same write as the head
_DEFAULT_PORTS = {b"http": 80, b"https": 443}

PoolKey = tuple[bytes, bytes, int]


class Http1Transport(httpx.AsyncBaseTransport):
    """An ``httpx.AsyncBaseTransport`` with one keep-alive pool per (scheme, host, port)."""

    def __init__(
        self, *, limits: httpx.Limits = DEFAULT_LIMITS, ssl_context: ssl.SSLContext | None = None
    ) -> None:
        self._limits = limits
        self._ssl_context = ssl_context
        self._pools: dict[PoolKey, _HostPool] = {}
        self._closed = False

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request`` and return once the answer's head is in; the body streams."""
        if self._closed:
            raise RuntimeError("the transport is closed")
        url = request.url
        scheme = url.raw_scheme
        if scheme not in _DEFAULT_PORTS:
            raise httpx.UnsupportedProtocol(f"unsupported URL scheme {url.scheme!r}")
        key = (scheme, url.raw_host, url.port or _DEFAULT_PORTS[scheme])
        pool = self._pools.get(key)
        if pool is None:
            tls = self._tls() if scheme == b"https" else None
            pool = self._pools[key] = _HostPool(url.host, key[2], tls=tls, limits=self._limits)
        timeouts = request.extensions.get("timeout", {})
        read_timeout = timeouts.get("read")
        head = request_head(request)  # refused before a connection is taken
        connection = await pool.acquire(
            pool_s=timeouts.get("pool"), connect_s=timeouts.get("connect")
        )
        try:
            await _send_request(connection, request, head, write_s=timeouts.get("write"))
            answer = await connection.read_head(read_timeout)
        except BaseException:
            pool.discard(connection)
            raise
        return httpx.Response(
            answer.status,
            headers=answer.headers,
            stream=_ResponseBody(pool, connection, read_timeout),
            extensions={"http_version": answer.http_version, "reason_phrase": answer.reason},
        )

    async def aclose(self) -> None:
        """Close every idle connection; connections in use close when their answer ends."""
        self._closed = True
        for pool in self._pools.values():
            pool.close()
        self._pools.clear()

    def _tls(self) -> ssl.SSLContext:
        if self._ssl_context is None:  # built on first use: loading the CA bundle takes ms
            self._ssl_context = ssl.create_default_context(cafile=certifi.where())
        return self._ssl_context


async def _send_request(
    connection: Http1Connection, request: httpx.Request, head: bytes, *, write_s: float | None
) -> None:
    head_request = request.method == "HEAD"
    try:
        body = request.content
    except httpx.RequestNotRead:  # a streamed body: httpx framed it as chunked
        connection.send(head, head_request=head_request)
        chunked = b"chunked" in request.headers.get("transfer-encoding", "").encode()
        async for part in request.stream:  # type: ignore[union-attr]  # an async stream here
            if part:
                framed = b"%x\r\n%s\r\n" % (len(part), part) if chunked else part
                connection.send_more(framed)
                await connection.drain(write_s)
        if chunked:
            connection.send_more(b"0\r\n\r\n")
    else:
        if len(body) <= _ONE_WRITE_MAX:
            connection.send(head + body, head_request=head_request)
        else:
            connection.send(head, head_request=head_request)
            connection.send_more(body)
    await connection.drain(write_s)


def request_head(request: httpx.Request) -> bytes:
    """The request line and headers; a CR or LF inside a header is refused (no smuggling)."""
    lines = [request.method.encode("ascii"), b" ", request.url.raw_path, b" HTTP/1.1\r\n"]
    for name, value in request.headers.raw:
        if b"\r" in value or b"\n" in value or b"\r" in name or b"\n" in name:
            shown = name.decode(errors="replace")
            raise httpx.LocalProtocolError(f"header {shown!r} has a line break")
        lines += (name, b": ", value, b"\r\n")
    lines.append(b"\r\n")
    return b"".join(lines)


class _ResponseBody(httpx.AsyncByteStream):
    """The body of one answer; its connection goes back to the pool once it is read."""

    def __init__(self, pool: _HostPool, connection: Http1Connection, read_s: float | None) -> None:
        self._pool = pool
        self._connection: Http1Connection | None = connection
        self._read_s = read_s

    async def __aiter__(self):  # type: ignore[no-untyped-def]  # httpx's own signature
        connection = self._connection
        if connection is None:
            raise httpx.StreamClosed()
        try:
            while (chunk := await connection.read_body(self._read_s)) is not None:
                yield chunk
        except BaseException:
            self._release()
            raise
        self._release()

    async def aclose(self) -> None:
        self._release()

    def _release(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            self._pool.put_back(connection)


class _HostPool:
    """Connections to one origin: idle ones reused newest first, at most ``max_connections``."""

    def __init__(
        self, host: str, port: int, *, tls: ssl.SSLContext | None, limits: httpx.Limits
    ) -> None:
        self._host = host
        self._port = port
        self._tls = tls
        self._max = limits.max_connections
        self._max_idle = limits.max_keepalive_connections
        self._expiry = limits.keepalive_expiry
        self._idle: list[Http1Connection] = []
        self._open = 0  # idle and in use
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._closed = False

    async def acquire(self, *, pool_s: float | None, connect_s: float | None) -> Http1Connection:
        """An idle connection, a new one, or the next one released within ``pool_s``."""
        loop = asyncio.get_running_loop()
        deadline = None if pool_s is None else loop.time() + pool_s
        while True:
            connection = self._take_idle(loop.time())
            if connection is not None:
                return connection
            if self._max is None or self._open < self._max:
                break
            await self._wait_turn(loop, deadline)
        self._open += 1
        try:
            return await self._connect(loop, connect_s)
        except BaseException:
            self._open -= 1
            self._wake_one()
            raise

    def put_back(self, connection: Http1Connection) -> None:
        """Keep a connection whose answer was read to the end; close any other."""
        if (
            connection.reusable
            and not self._closed
            and (self._max_idle is None or len(self._idle) < self._max_idle)
        ):
            connection.idle_since = asyncio.get_running_loop().time()
            self._idle.append(connection)
            self._wake_one()
        else:
            self.discard(connection)

    def discard(self, connection: Http1Connection) -> None:
        """Close a connection that cannot be reused and free its place."""
        connection.close()
        self._open -= 1
        self._wake_one()

    def close(self) -> None:
        """Close the idle connections and refuse to keep any more."""
        self._closed = True
        while self._idle:
            self.discard(self._idle.pop())

    def _take_idle(self, now: float) -> Http1Connection | None:
        while self._idle:
            connection = self._idle.pop()
            expired = self._expiry is not None and now - connection.idle_since > self._expiry
            if connection.closed or expired:
                self.discard(connection)
                continue
            return connection
        return None

    async def _wait_turn(self, loop: asyncio.AbstractEventLoop, deadline: float | None) -> None:
        waiter: asyncio.Future[None] = loop.create_future()
        self._waiters.append(waiter)
        timer = None
        if deadline is not None:
            error = httpx.PoolTimeout("timed out waiting for a free connection")
            timer = loop.call_at(deadline, expire, waiter, error)
        try:
            await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                self._wake_one()  # woken and cancelled at once: pass the turn on
            raise
        finally:
            if timer is not None:
                timer.cancel()
            if waiter in self._waiters:
                self._waiters.remove(waiter)

    def _wake_one(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    async def _connect(
        self, loop: asyncio.AbstractEventLoop, connect_s: float | None
    ) -> Http1Connection:
        where = f"{self._host}:{self._port}"
        try:
            async with asyncio.timeout(connect_s):
                _, connection = await loop.create_connection(
                    lambda: Http1Connection(loop),
                    self._host,
                    self._port,
                    ssl=self._tls,
                    server_hostname=self._host if self._tls is not None else None,
                )
        except TimeoutError as exc:
            raise httpx.ConnectTimeout(f"timed out connecting to {where}") from exc
        except OSError as exc:  # ssl.SSLError included
            raise httpx.ConnectError(f"cannot connect to {where}: {exc}") from exc
        return connection
