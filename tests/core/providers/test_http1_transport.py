"""``Http1Transport`` through ``httpx.AsyncClient``, against scripted loopback servers.

Each test scripts the server's bytes exactly (keep-alive, chunking, broken answers, TLS)
and counts the TCP connections it accepts and the ones the client closed
(``tests.fakes.scripted_http``), so connection reuse and release are asserted from the
wire, not from the transport's internals.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import os
import socket
import ssl
import time
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Iterator,
)
from typing import cast

import httpx
import pytest
import trustme

from core.providers.http1_transport import Http1Transport
from tests.fakes.scripted_http import Conn, Loopback, Received, answer_ok, chunk, response
from tests.fakes.server import closed_port_url

BROKEN = (httpx.ReadError, httpx.RemoteProtocolError)
CHUNKED_HEAD = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
LAST_CHUNK = b"0\r\n\r\n"
ONE_CONNECTION = httpx.Limits(max_connections=1)


def make_client(
    *, limits: httpx.Limits | None = None, ssl_context: ssl.SSLContext | None = None
) -> httpx.AsyncClient:
    """A client on a new ``Http1Transport``; a 1 s backstop turns a hang into a failure."""
    transport = (
        Http1Transport(ssl_context=ssl_context)
        if limits is None
        else Http1Transport(limits=limits, ssl_context=ssl_context)
    )
    return httpx.AsyncClient(transport=transport, timeout=httpx.Timeout(1.0), trust_env=False)


async def first_piece(response: httpx.Response) -> bytes:
    """The first body bytes of a streamed response, leaving the rest unread."""
    pieces = cast(AsyncGenerator[bytes, None], response.aiter_raw())
    try:
        return await asyncio.wait_for(anext(pieces), 1.0)
    finally:
        await pieces.aclose()


async def test_post_round_trip_carries_method_target_headers_and_body() -> None:
    reply = response(
        b"created",
        status="201 Created",
        headers=[("Set-Cookie", "a=1"), ("Set-Cookie", "b=2"), ("X-Reply", "yes")],
    )

    async def respond(request: Received, conn: Conn) -> None:
        await conn.send(reply)

    async with Loopback(respond) as server, make_client() as client:
        result = await client.post(
            f"{server.url}/v1/chat?stream=false&x=1",
            headers={"Authorization": "Bearer k", "X-Trace": "t-1"},
            content=b'{"hello": 1}',
        )
    [seen] = server.received
    assert (seen.method, seen.target) == ("POST", "/v1/chat?stream=false&x=1")
    assert seen.headers["host"] == server.url.removeprefix("http://")
    assert seen.headers["content-length"] == "12"
    assert seen.headers["authorization"] == "Bearer k"
    assert seen.headers["x-trace"] == "t-1"
    assert seen.body == b'{"hello": 1}'
    assert result.status_code == 201
    assert result.headers.get_list("set-cookie") == ["a=1", "b=2"]
    assert result.headers["x-reply"] == "yes"
    assert result.content == b"created"


async def test_reason_phrase_comes_from_the_status_line() -> None:
    async def respond(request: Received, conn: Conn) -> None:
        await conn.send(response(b"", status="503 Temporarily Closed"))

    async with Loopback(respond) as server, make_client() as client:
        assert (await client.get(server.url)).reason_phrase == "Temporarily Closed"


async def test_sequential_requests_reuse_one_connection() -> None:
    async with Loopback() as server, make_client() as client:
        texts = [(await client.get(f"{server.url}/{i}")).text for i in range(5)]
    assert texts == ["ok"] * 5
    assert server.accepts == 1
    assert [r.path for r in server.received] == [f"/{i}" for i in range(5)]


async def test_chunked_body_is_reassembled() -> None:
    async def respond(request: Received, conn: Conn) -> None:
        # Separate writes, and a chunk header split across two of them.
        await conn.send(CHUNKED_HEAD + chunk(b"hello "))
        await conn.send(b"5\r")
        await conn.send(b"\nworld\r\n" + LAST_CHUNK)

    async with Loopback(respond) as server, make_client() as client:
        assert (await client.get(server.url)).content == b"hello world"
        assert (await client.get(server.url)).content == b"hello world"
    assert server.accepts == 1


@pytest.mark.parametrize("iterate", ["aiter_bytes", "aiter_raw"])
async def test_streamed_chunk_arrives_before_the_server_sends_the_next(iterate: str) -> None:
    proceed = asyncio.Event()

    async def respond(request: Received, conn: Conn) -> None:
        await conn.send(CHUNKED_HEAD + chunk(b"first"))
        await proceed.wait()
        await conn.send(chunk(b"second") + LAST_CHUNK)

    async with Loopback(respond) as server, make_client() as client:
        async with client.stream("GET", server.url) as streamed:
            pieces = cast(AsyncGenerator[bytes, None], getattr(streamed, iterate)())
            try:
                first = await asyncio.wait_for(anext(pieces), 1.0)
            except TimeoutError:
                pytest.fail("the first chunk was held back until the body ended")
            proceed.set()
            rest = b"".join([piece async for piece in pieces])
    assert (first, rest) == (b"first", b"second")


async def test_body_delimited_by_close_is_read_whole_and_next_request_reconnects() -> None:
    piece = os.urandom(50_000)

    async def respond(request: Received, conn: Conn) -> None:
        await conn.send(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n\r\n")
        for _ in range(4):
            await conn.send(piece)
        conn.close()

    async with Loopback(routes={"/until-close": respond}) as server, make_client() as client:
        assert (await client.get(f"{server.url}/until-close")).content == piece * 4
        assert (await client.get(server.url)).text == "ok"
    assert server.accepts == 2


async def test_connection_close_response_is_not_reused() -> None:
    async def respond(request: Received, conn: Conn) -> None:
        await conn.send(response(b"bye", headers=[("Connection", "close")]))
        await conn.hold()  # a request sent on this connection anyway is never answered

    async with Loopback(routes={"/last": respond}) as server, make_client() as client:
        assert (await client.get(f"{server.url}/last")).text == "bye"
        assert (await client.get(server.url)).text == "ok"
        assert server.accepts == 2
        assert await server.client_closed(1), "closing socket leaked"


async def test_idle_connection_closed_by_server_is_replaced_silently() -> None:
    async def respond(request: Received, conn: Conn) -> None:
        await answer_ok(request, conn)
        await asyncio.sleep(0.01)
        conn.close()

    async with Loopback(respond) as server, make_client() as client:
        assert (await client.get(server.url)).text == "ok"
        await asyncio.sleep(0.05)
        assert (await client.get(server.url)).text == "ok"
    assert server.accepts == 2


async def test_server_that_never_answers_raises_read_timeout_on_time() -> None:
    async def respond(request: Received, conn: Conn) -> None:
        await conn.hold()

    async with Loopback(respond) as server, make_client() as client:
        started = time.monotonic()
        with pytest.raises(httpx.ReadTimeout):
            await client.get(server.url, timeout=httpx.Timeout(2.0, read=0.2))
        assert 0.15 < time.monotonic() - started < 1.2


async def test_silence_between_chunks_raises_read_timeout_while_iterating() -> None:
    async def respond(request: Received, conn: Conn) -> None:
        await conn.send(CHUNKED_HEAD + chunk(b"first"))
        await conn.hold()

    async with Loopback(respond) as server, make_client() as client:
        timeout = httpx.Timeout(2.0, read=0.2)
        async with client.stream("GET", server.url, timeout=timeout) as streamed:
            pieces = cast(AsyncGenerator[bytes, None], streamed.aiter_raw())
            assert await anext(pieces) == b"first"
            started = time.monotonic()
            with pytest.raises(httpx.ReadTimeout):
                await anext(pieces)
            assert time.monotonic() - started < 1.2


async def test_refused_connection_raises_connect_error() -> None:
    async with make_client() as client:
        with pytest.raises(httpx.ConnectError):
            await client.get(closed_port_url())


@pytest.fixture
def unaccepting_port() -> Iterator[int]:
    """A port whose accept queue is full, so Linux drops new SYNs and connects hang."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port: int = listener.getsockname()[1]
    fillers = [socket.socket() for _ in range(2)]
    for filler in fillers:
        filler.setblocking(False)
        try:
            filler.connect(("127.0.0.1", port))
        except BlockingIOError:
            pass  # still in SYN_SENT: the queue is full
    try:
        yield port
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


async def test_hanging_connect_raises_connect_timeout(unaccepting_port: int) -> None:
    async with make_client() as client:
        started = time.monotonic()
        with pytest.raises(httpx.ConnectTimeout):
            await client.get(
                f"http://127.0.0.1:{unaccepting_port}/", timeout=httpx.Timeout(2.0, connect=0.2)
            )
        assert time.monotonic() - started < 1.2


async def test_full_pool_raises_pool_timeout_until_the_held_response_closes() -> None:
    async def respond(request: Received, conn: Conn) -> None:
        await conn.send(CHUNKED_HEAD + chunk(b"first"))
        await conn.hold()

    async with (
        Loopback(routes={"/held": respond}) as server,
        make_client(limits=ONE_CONNECTION) as client,
    ):
        async with client.stream("GET", f"{server.url}/held"):
            with pytest.raises(httpx.PoolTimeout):
                await client.get(server.url, timeout=httpx.Timeout(2.0, pool=0.2))
        result = await client.get(server.url, timeout=httpx.Timeout(2.0, pool=0.5))
    assert result.text == "ok"


@pytest.mark.parametrize(
    "garbage",
    [
        b"NOT HTTP\r\n\r\n",
        b"HTTP/1.1 abc OK\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: ten\r\n\r\n",
    ],
    ids=["not-http", "bad-status", "bad-content-length"],
)
async def test_garbage_from_server_raises_protocol_error(garbage: bytes) -> None:
    async def respond(request: Received, conn: Conn) -> None:
        await conn.send(garbage)
        await conn.hold()  # the error must come from the bytes, not from a close

    async with Loopback(routes={"/bad": respond}) as server, make_client() as client:
        with pytest.raises(BROKEN):
            await client.get(f"{server.url}/bad")
        assert (await client.get(server.url)).text == "ok"
    assert server.accepts == 2


@pytest.mark.parametrize(
    "sent",
    [
        b"",
        b"HTTP/1.1 200 OK\r\nContent-Le",
        response(b"x" * 100)[:-90],
        CHUNKED_HEAD + chunk(b"partial"),
    ],
    ids=["nothing", "half-headers", "10-of-100-bytes", "chunked-no-last-chunk"],
)
async def test_server_breaking_off_raises_read_error_and_next_request_works(sent: bytes) -> None:
    async def respond(request: Received, conn: Conn) -> None:
        await conn.send(sent)
        conn.close()

    async with Loopback(routes={"/broken": respond}) as server, make_client() as client:
        with pytest.raises(BROKEN):
            await client.get(f"{server.url}/broken")
        assert (await client.get(server.url)).text == "ok"


async def test_closing_a_half_read_stream_discards_its_connection() -> None:
    async def respond(request: Received, conn: Conn) -> None:
        await conn.send(CHUNKED_HEAD + chunk(b"one") + chunk(b"two"))
        await conn.hold()  # the rest never comes: draining it on close would hang

    async with Loopback(routes={"/long": respond}) as server, make_client() as client:
        async with client.stream("GET", f"{server.url}/long") as streamed:
            assert (await first_piece(streamed)).startswith(b"one")
            await asyncio.wait_for(streamed.aclose(), 0.5)
        assert (await client.get(server.url)).text == "ok"
        assert server.accepts == 2
        assert await server.client_closed(1), "half-read socket leaked"


@pytest.mark.parametrize("path", ["/no-answer", "/half-body"])
async def test_cancelled_request_releases_its_pool_slot(path: str) -> None:
    async def half_body(request: Received, conn: Conn) -> None:
        await conn.send(response(b"x" * 100)[:-90])
        await conn.hold()

    async def no_answer(request: Received, conn: Conn) -> None:
        await conn.hold()

    routes = {"/half-body": half_body, "/no-answer": no_answer}
    async with (
        Loopback(routes=routes) as server,
        make_client(limits=ONE_CONNECTION) as client,
    ):
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(client.get(f"{server.url}{path}"), 0.1)
        result = await client.get(server.url, timeout=httpx.Timeout(1.0, pool=0.5))
        assert result.text == "ok"
        assert server.accepts == 2
        assert await server.client_closed(1), "cancelled socket leaked"


@pytest.fixture(scope="module")
def tls_ca() -> trustme.CA:
    return trustme.CA()


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
async def test_tls_with_trusted_ca_works_and_reuses_the_connection(
    tls_ca: trustme.CA, host: str
) -> None:
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls_ca.issue_cert("localhost", "127.0.0.1").configure_cert(server_ctx)
    client_ctx = ssl.create_default_context()
    tls_ca.configure_trust(client_ctx)
    async with Loopback(tls=server_ctx) as server, make_client(ssl_context=client_ctx) as client:
        url = server.url.replace("127.0.0.1", host)
        assert (await client.get(url)).text == "ok"
        assert (await client.get(url)).text == "ok"
    assert server.accepts == 1
    assert server.received[0].headers["host"] == url.removeprefix("https://")


async def test_default_tls_context_rejects_an_unknown_ca(tls_ca: trustme.CA) -> None:
    """``ssl_context=None`` verifies against certifi, which does not know the test CA."""
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls_ca.issue_cert("127.0.0.1").configure_cert(server_ctx)
    async with Loopback(tls=server_ctx) as server, make_client() as client:
        with pytest.raises(httpx.ConnectError, match="(?i)certificate"):
            await client.get(server.url)


async def test_large_request_body_arrives_intact() -> None:
    async def respond(request: Received, conn: Conn) -> None:
        await conn.send(response(hashlib.sha256(request.body).hexdigest().encode()))

    body = os.urandom(5 * 1024 * 1024)
    async with Loopback(respond) as server, make_client() as client:
        result = await client.post(server.url, content=body)
    assert result.text == hashlib.sha256(body).hexdigest()


async def test_large_response_body_arrives_intact() -> None:
    body = os.urandom(5 * 1024 * 1024)

    async def respond(request: Received, conn: Conn) -> None:
        await conn.send(response(body))  # one write

    async with Loopback(respond) as server, make_client() as client:
        result = await client.get(server.url)
    assert hashlib.sha256(result.content).digest() == hashlib.sha256(body).digest()


async def test_streamed_request_body_arrives_intact() -> None:
    """An async-iterator body has no length: httpx marks it chunked, so it must go out chunked."""

    async def echo(request: Received, conn: Conn) -> None:
        await conn.send(response(request.body))

    async def parts() -> AsyncIterator[bytes]:
        yield b"first part, "
        yield b"second part"

    async with Loopback(echo) as server, make_client() as client:
        result = await client.post(server.url, content=parts())
    assert result.content == b"first part, second part"


async def test_upload_the_server_does_not_read_raises_write_timeout() -> None:
    # Connected (the kernel queues it) but never accepted, so nothing reads the body.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/"
        async with make_client() as client:
            started = time.monotonic()
            with pytest.raises(httpx.WriteTimeout):
                await client.post(
                    url, content=bytes(64 * 1024 * 1024), timeout=httpx.Timeout(2.0, write=0.2)
                )
            assert time.monotonic() - started < 1.5


async def test_gzip_response_is_decoded() -> None:
    text = "compressible text " * 200

    async def respond(request: Received, conn: Conn) -> None:
        encoded = gzip.compress(text.encode())
        await conn.send(response(encoded, headers=[("Content-Encoding", "gzip")]))

    async with Loopback(respond) as server, make_client() as client:
        assert (await client.get(server.url)).text == text


async def test_connection_idle_past_keepalive_expiry_is_replaced() -> None:
    limits = httpx.Limits(keepalive_expiry=0.1)
    async with Loopback() as server, make_client(limits=limits) as client:
        assert (await client.get(server.url)).text == "ok"
        await asyncio.sleep(0.3)
        assert (await client.get(server.url)).text == "ok"
        assert server.accepts == 2
        assert await server.client_closed(1), "expired socket leaked"


async def test_only_max_keepalive_connections_stay_idle() -> None:
    """Three requests at once open three connections; only one survives to the next round."""
    together = asyncio.Barrier(3)

    async def respond(request: Received, conn: Conn) -> None:
        await together.wait()  # all three connections are open at once
        await answer_ok(request, conn)

    limits = httpx.Limits(max_connections=10, max_keepalive_connections=1)
    async with Loopback(respond) as server, make_client(limits=limits) as client:
        await asyncio.gather(*(client.get(server.url) for _ in range(3)))
        assert server.accepts == 3
        assert await server.client_closed(2), "surplus idle sockets kept"
        await asyncio.gather(*(client.get(server.url) for _ in range(3)))
        assert server.accepts == 5  # the idle one reused, two new


@pytest.mark.parametrize(
    ("method", "head", "reused"),
    [
        # Not reused after HEAD, by design: httptools cannot be told the answer has no body.
        ("HEAD", b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", False),
        ("GET", b"HTTP/1.1 204 No Content\r\n\r\n", True),
        ("GET", b"HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n", True),
    ],
    ids=["head", "204", "304"],
)
async def test_bodiless_response_returns_at_once_and_next_request_works(
    method: str, head: bytes, reused: bool
) -> None:
    async def bodiless(request: Received, conn: Conn) -> None:
        await conn.send(head)

    async with Loopback(routes={"/bodiless": bodiless}) as server, make_client() as client:
        first = await client.request(method, f"{server.url}/bodiless")
        assert first.content == b""
        assert (await client.get(server.url)).text == "ok"
    assert server.accepts == (1 if reused else 2)


async def test_concurrent_requests_each_get_their_own_answer() -> None:
    async def respond(request: Received, conn: Conn) -> None:
        ident = request.headers["x-id"]
        await asyncio.sleep(int(ident) % 5 * 0.002)  # answers finish out of order
        await conn.send(response(ident.encode(), headers=[("X-Id", ident)]))

    async with (
        Loopback(respond) as server,
        make_client(limits=httpx.Limits(max_connections=10)) as client,
    ):
        results = await asyncio.gather(
            *(client.get(server.url, headers={"X-Id": str(i)}) for i in range(50))
        )
    assert [(r.text, r.headers["x-id"]) for r in results] == [(str(i), str(i)) for i in range(50)]
    assert server.accepts <= 10


async def test_aclose_closes_idle_connections() -> None:
    together = asyncio.Barrier(2)

    async def respond(request: Received, conn: Conn) -> None:
        await together.wait()  # two connections, both idle afterwards
        await answer_ok(request, conn)

    async with Loopback(respond) as server:
        client = make_client()
        await asyncio.gather(client.get(server.url), client.get(server.url))
        assert server.client_closes == 0
        await client.aclose()
        assert await server.client_closed(2), "idle sockets left open"


async def test_answer_complete_before_junk_in_the_same_segment_is_returned() -> None:
    async def respond(request: Received, conn: Conn) -> None:
        await conn.send(response(b"ok") + b"EXTRA")

    async with Loopback(respond) as server, make_client() as client:
        first = await client.get(f"{server.url}/junk")
        second = await client.get(f"{server.url}/again")
    assert first.content == b"ok"
    assert second.content == b"ok"
    assert server.accepts == 2  # the connection that carried junk is not reused


async def test_line_break_in_a_header_value_is_refused_before_sending() -> None:
    async with Loopback() as server, make_client() as client:
        with pytest.raises(httpx.LocalProtocolError, match="line break"):
            await client.get(server.url, headers={"X-Note": "a\r\nX-Injected: yes"})
    assert server.received == []
