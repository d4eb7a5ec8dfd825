"""A small HTTP/1.1 load generator over raw asyncio streams, with keep-alive.

Hand-written because a full client (httpx, aiohttp) spends more CPU per request than the
gateway under test, which would make the generator the bottleneck on a 2-core machine.
It speaks only what the benchmark needs: Content-Length and chunked bodies.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field


@dataclass
class Sample:
    """One request: total latency and time to the first body byte, in seconds."""

    total: float
    first_byte: float
    status: int


@dataclass
class Connection:
    """One keep-alive connection."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter


@dataclass
class Target:
    """Where to send, and what."""

    host: str
    port: int
    path: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)

    def request(self) -> bytes:
        lines = [f"POST {self.path} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        lines += [f"{k}: {v}" for k, v in self.headers.items()]
        lines += ["Content-Type: application/json", f"Content-Length: {len(self.body)}", "", ""]
        return "\r\n".join(lines).encode() + self.body


async def connect(target: Target) -> Connection:
    """Open a connection."""
    reader, writer = await asyncio.open_connection(target.host, target.port)
    return Connection(reader, writer)


async def one(conn: Connection, payload: bytes, *, start: float | None = None) -> Sample:
    """Send one request on ``conn`` and read the whole answer; latency counts from ``start``."""
    start = time.perf_counter() if start is None else start
    conn.writer.write(payload)
    head = await conn.reader.readuntil(b"\r\n\r\n")
    first = time.perf_counter()
    status = int(head.split(b" ", 2)[1])
    headers = head.lower()
    if b"transfer-encoding: chunked" in headers:
        first = 0.0
        while True:
            size_line = await conn.reader.readuntil(b"\r\n")
            size = int(size_line.strip().split(b";")[0], 16)
            if size and not first:
                first = time.perf_counter()
            await conn.reader.readexactly(size + 2)
            if size == 0:
                break
    else:
        marker = headers.index(b"content-length:") + len(b"content-length:")
        length = int(headers[marker : headers.index(b"\r\n", marker)])
        await conn.reader.readexactly(length)
    end = time.perf_counter()
    return Sample(total=end - start, first_byte=(first or end) - start, status=status)


class OpenLoop:
    """Open-loop load on one target: a request every 1/rate s regardless of answers.

    Latency counts from when a request was due, not when it was sent, so a stalled server
    shows (no coordinated omission). Connections are opened once and reused.
    """

    def __init__(self, target: Target) -> None:
        self.target = target
        self._payload = target.request()
        self._idle: asyncio.Queue[Connection] = asyncio.Queue()
        self.samples: list[Sample] = []

    async def open(self, pool: int = 64) -> None:
        for _ in range(pool):
            self._idle.put_nowait(await connect(self.target))

    async def _fire(self, scheduled: float) -> None:
        conn = await self._idle.get()
        self.samples.append(await one(conn, self._payload, start=scheduled))
        self._idle.put_nowait(conn)

    async def run(self, *, rate: float, seconds: float) -> None:
        """Fire ``rate * seconds`` requests on schedule and wait for every answer."""
        tasks: list[asyncio.Task[None]] = []
        start = time.perf_counter()
        for index in range(int(rate * seconds)):
            due = start + index / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(self._fire(due)))
        await asyncio.gather(*tasks)

    async def close(self) -> None:
        await _close(self._idle)


async def fixed_rate(
    target: Target, *, rate: float, seconds: float, pool: int = 64
) -> list[Sample]:
    """Open-loop load on one target for ``seconds``."""
    loop = OpenLoop(target)
    await loop.open(pool)
    try:
        await loop.run(rate=rate, seconds=seconds)
    finally:
        await loop.close()
    return loop.samples


async def interleaved(
    targets: list[Target], *, rate: float, seconds: float, block: float = 0.5
) -> list[list[Sample]]:
    """Each target at ``rate`` for ``seconds`` in all, taking turns in ``block``-second slices.

    On a shared machine the background load drifts within seconds; measuring two targets
    one after the other would credit one of them with a quiet minute. Taking turns every
    half second exposes both to the same conditions, and the upstream behind them still
    sees one target's rate at a time.
    """
    loops = [OpenLoop(target) for target in targets]
    for loop in loops:
        await loop.open()
    try:
        for _ in range(max(1, round(seconds / block))):
            for loop in loops:
                await loop.run(rate=rate, seconds=block)
    finally:
        for loop in loops:
            await loop.close()
    return [loop.samples for loop in loops]


async def saturate(target: Target, *, concurrency: int, seconds: float) -> tuple[int, float]:
    """Closed-loop load with ``concurrency`` connections; returns (requests, elapsed s)."""
    payload = target.request()
    done = 0
    stop_at = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal done
        conn = await connect(target)
        try:
            while time.perf_counter() < stop_at:
                sample = await one(conn, payload)
                if sample.status == 200:
                    done += 1
        finally:
            conn.writer.close()

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return done, time.perf_counter() - start


async def _close(idle: asyncio.Queue[Connection]) -> None:
    while not idle.empty():
        idle.get_nowait().writer.close()
