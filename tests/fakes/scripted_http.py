"""A scripted HTTP/1.1 server on 127.0.0.1 for transport tests: each test writes the bytes.

It counts the TCP connections it accepts and the ones the client closed, so connection
reuse and release can be asserted from the wire.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass


def response(
    body: bytes = b"ok", *, status: str = "200 OK", headers: Sequence[tuple[str, str]] = ()
) -> bytes:
    """A complete HTTP/1.1 response with a Content-Length."""
    lines = [f"HTTP/1.1 {status}", f"Content-Length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


@dataclass
class Received:
    """One request as the server read it (header names lower-cased)."""

    method: str
    target: str
    headers: dict[str, str]
    body: bytes

    @property
    def path(self) -> str:
        return self.target.partition("?")[0]


class Conn:
    """The server's side of one accepted connection."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.closed_by_server = False

    async def read_request(self) -> Received | None:
        """The next request, or None when the client closed the connection."""
        line = await self.reader.readline()
        if not line:
            return None
        method, target, _ = line.decode().split(" ", 2)
        headers: dict[str, str] = {}
        while (header := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = header.decode().partition(":")
            headers[name.strip().lower()] = value.strip()
        if headers.get("transfer-encoding") != "chunked":
            body = await self.reader.readexactly(int(headers.get("content-length", "0")))
        else:
            body = b""
            while size := int((await self.reader.readline()).partition(b";")[0], 16):
                body += (await self.reader.readexactly(size + 2))[:-2]
            await self.reader.readline()  # the empty trailer
        return Received(method, target, headers, body)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def hold(self) -> None:
        """Answer nothing more; return once the client has closed the connection."""
        while await self.reader.read(65536):
            pass

    def close(self) -> None:
        self.closed_by_server = True
        self.writer.close()


Respond = Callable[[Received, Conn], Awaitable[None]]


async def answer_ok(request: Received, conn: Conn) -> None:
    await conn.send(response(b"ok"))


class Loopback:
    """A scripted HTTP/1.1 server on 127.0.0.1.

    ``routes`` answer the requests for their paths, ``respond`` all others.
    """

    def __init__(
        self,
        respond: Respond = answer_ok,
        *,
        routes: Mapping[str, Respond] | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self._respond = respond
        self._routes = dict(routes or {})
        self._tls = tls
        self.accepts = 0
        self.client_closes = 0  # connections the client closed (EOF or reset)
        self.received: list[Received] = []
        self._handlers: set[asyncio.Task[None]] = set()
        self._errors: list[BaseException] = []
        self._closes = asyncio.Condition()

    async def __aenter__(self) -> Loopback:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self._tls)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"{'https' if self._tls else 'http'}://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._server.close()
        for task in self._handlers:
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)  # each closes its socket
        await self._server.wait_closed()
        if self._errors and exc_info[0] is None:
            raise self._errors[0]

    async def client_closed(self, count: int) -> bool:
        """Whether exactly ``count`` connections were closed by the client, waiting up to 1 s."""
        try:
            async with asyncio.timeout(1.0), self._closes:
                await self._closes.wait_for(lambda: self.client_closes >= count)
        except TimeoutError:
            pass
        return self.client_closes == count

    async def _count_client_close(self) -> None:
        async with self._closes:
            self.client_closes += 1
            self._closes.notify_all()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        self.accepts += 1
        conn = Conn(reader, writer)
        try:
            while (request := await conn.read_request()) is not None:
                self.received.append(request)
                await self._routes.get(request.path, self._respond)(request, conn)
                if conn.closed_by_server:
                    return
            await self._count_client_close()
        except (ConnectionError, asyncio.IncompleteReadError):
            await self._count_client_close()
        except asyncio.CancelledError:
            pass  # stopped by __aexit__; a cancelled handler task makes 3.11's streams log
        except Exception as exc:  # a broken script fails the test in __aexit__
            self._errors.append(exc)
        finally:
            writer.close()
