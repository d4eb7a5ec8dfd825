"""http_get against a real loopback server, and the refusals that must not connect at all.

Host names are resolved by an injected resolver (no DNS); the server runs on 127.0.0.1,
so the fetching tests allow private addresses and the refusal tests do not.
"""

from __future__ import annotations

import asyncio
import gzip
import socket
import time
from collections.abc import AsyncIterator, Sequence

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import (
    PlainTextResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Route

from core.config import HttpGetTool
from core.errors import ToolError
from core.tools import HttpGet
from core.tools.http_get import MAX_REDIRECTS, blocked_reason, host_allowed
from core.types import ToolContext
from tests.fakes.server import serve_app

LOOPBACK_NAMES = ("api.allowed.test", "a.wild.test", "x.y.wild.test", "evil.test")


async def resolve_loopback(host: str, port: int) -> Sequence[str]:
    """Every test name lives on 127.0.0.1; anything else does not exist."""
    if host in LOOPBACK_NAMES:
        return ["127.0.0.1"]
    raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")


async def text(request: Request) -> Response:
    return PlainTextResponse(f"host={request.headers['host']} ua={request.headers['user-agent']}")


async def big(request: Request) -> Response:
    return PlainTextResponse("a" * 10_000)


async def bomb(request: Request) -> Response:
    body = gzip.compress(b"z" * 5_000_000)  # ~5 KB on the wire
    return Response(body, media_type="text/plain", headers={"content-encoding": "gzip"})


async def gzipped(request: Request) -> Response:
    body = gzip.compress("grüße".encode())
    headers = {"content-encoding": "gzip"}
    return Response(body, media_type="text/plain; charset=utf-8", headers=headers)


async def binary(request: Request) -> Response:
    return Response(b"\x89PNG\r\n\x1a\n" + bytes(range(256)), media_type="image/png")


async def chain(request: Request) -> Response:
    left = int(request.path_params["left"])
    if left == 0:
        return PlainTextResponse("end of the chain")
    return RedirectResponse(f"/chain/{left - 1}", status_code=302)


async def away(request: Request) -> Response:
    port = request.url.port
    return RedirectResponse(f"http://{request.query_params['to']}:{port}/text", status_code=301)


async def slow(request: Request) -> Response:
    async def trickle() -> AsyncIterator[bytes]:
        for _ in range(100):  # each piece is quick, the whole body is not
            yield b"."
            await asyncio.sleep(0.1)

    return StreamingResponse(trickle(), media_type="text/plain")


APP = Starlette(
    routes=[
        Route("/text", text),
        Route("/big", big),
        Route("/bomb", bomb),
        Route("/gzipped", gzipped),
        Route("/binary", binary),
        Route("/chain/{left}", chain),
        Route("/away", away),
        Route("/slow", slow),
    ]
)


@pytest.fixture
async def base() -> AsyncIterator[str]:
    """``http://PORT`` of the loopback server, without the host (tests pick the name)."""
    async with serve_app(APP) as url:
        yield url.rsplit(":", 1)[1]


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(trust_env=False) as shared:
        yield shared


def loopback_tool(client: httpx.AsyncClient, **settings: object) -> HttpGet:
    options: dict[str, object] = {
        "enabled": True,
        "allow_hosts": ("api.allowed.test", "*.wild.test"),
        "allow_private": True,
    }
    options.update(settings)
    return HttpGet(HttpGetTool.model_validate(options), client=client, resolver=resolve_loopback)


async def test_an_allowed_host_is_fetched(
    base: str, client: httpx.AsyncClient, context: ToolContext
) -> None:
    result = await loopback_tool(client).run(
        {"url": f"http://api.allowed.test:{base}/text"}, context=context
    )
    # The connection went to the checked address; the name still reached the server.
    assert result == (
        "HTTP 200 OK\n"
        "Content-Type: text/plain; charset=utf-8\n"
        "\n"
        f"host=api.allowed.test:{base} ua=Switchboard-http_get/0.1"
    )


async def test_a_host_off_the_allowlist_is_refused(
    base: str, client: httpx.AsyncClient, context: ToolContext
) -> None:
    with pytest.raises(ToolError) as caught:
        await loopback_tool(client).run({"url": f"http://evil.test:{base}/text"}, context=context)
    assert str(caught.value) == (
        "http_get: host 'evil.test' is not in tools.http_get.allow_hosts "
        "(allowed: api.allowed.test, *.wild.test)"
    )


async def test_an_empty_allowlist_refuses_everything(
    client: httpx.AsyncClient, context: ToolContext
) -> None:
    with pytest.raises(ToolError, match="no host is allowed yet") as caught:
        await loopback_tool(client, allow_hosts=()).run(
            {"url": "http://api.allowed.test/text"}, context=context
        )
    assert "tools.http_get.allow_hosts" in str(caught.value)


async def test_a_wildcard_admits_subdomains(
    base: str, client: httpx.AsyncClient, context: ToolContext
) -> None:
    tool = loopback_tool(client)
    for name in ("a.wild.test", "x.y.wild.test", "A.Wild.Test."):
        result = await tool.run({"url": f"http://{name}:{base}/text"}, context=context)
        assert result.startswith("HTTP 200 OK")


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("a.example.com", True),
        ("deep.a.example.com", True),
        ("example.com", False),  # *.example.com names subdomains only
        ("badexample.com", False),
        ("example.com.evil.net", False),
        ("exact.org", True),
        ("sub.exact.org", False),
        ("127.0.0.1", False),  # "*.0.0.1" must not admit an address
    ],
)
def test_host_matching(host: str, allowed: bool) -> None:
    assert host_allowed(host, ("*.example.com", "exact.org", "*.0.0.1")) is allowed


class Recorder:
    """A transport that records what would have been sent, and answers from a script."""

    def __init__(self, *responses: httpx.Response) -> None:
        self.requests: list[httpx.Request] = []
        self._responses = list(responses)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self._responses.pop(0)


def reply(status: int, body: bytes = b"", **headers: str) -> httpx.Response:
    """A scripted response whose body is still a stream, as a real transport returns it."""
    named = {name.replace("_", "-"): value for name, value in headers.items()}
    return httpx.Response(status, headers=named, stream=httpx.ByteStream(body))


def recording_tool(
    recorder: Recorder, addresses: dict[str, list[str]], **settings: object
) -> tuple[HttpGet, httpx.AsyncClient]:
    async def resolve(host: str, port: int) -> Sequence[str]:
        return addresses[host]

    options: dict[str, object] = {"enabled": True, "allow_hosts": tuple(addresses)}
    options.update(settings)
    client = httpx.AsyncClient(transport=httpx.MockTransport(recorder))
    return HttpGet(HttpGetTool.model_validate(options), client=client, resolver=resolve), client


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("127.8.9.10", "loopback"),
        ("::1", "loopback"),
        ("10.1.2.3", "private"),
        ("192.168.0.10", "private"),
        ("172.16.5.4", "private"),
        ("169.254.169.254", "link-local"),  # the cloud metadata service
        ("fe80::1", "link-local"),
        ("fc00::1", "private"),
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:10.0.0.1", "private"),
        ("64:ff9b::a9fe:a9fe", "link-local"),  # NAT64 of 169.254.169.254
        ("2002:7f00:1::", "loopback"),  # 6to4 of 127.0.0.1
        ("0.0.0.0", "unspecified"),  # noqa: S104 - an address to refuse, not to bind
        ("::", "unspecified"),
        ("224.0.0.251", "multicast"),
        ("ff02::1", "multicast"),
        ("240.0.0.1", "private"),
        ("100.64.0.1", "non-public"),
    ],
)
async def test_non_public_addresses_are_refused_without_connecting(
    address: str, reason: str, context: ToolContext
) -> None:
    recorder = Recorder()
    tool, client = recording_tool(recorder, {"internal.test": [address]})
    async with client:
        with pytest.raises(ToolError) as caught:
            await tool.run({"url": "http://internal.test/"}, context=context)
    assert str(caught.value) == (
        f"http_get: 'internal.test' resolves to {address}, a {reason} address: refused "
        "(tools.http_get.allow_private = true allows it)"
    )
    assert recorder.requests == []


@pytest.mark.parametrize(
    ("url", "host"),
    [
        ("http://127.0.0.1/", "127.0.0.1"),
        ("http://[::1]:8080/", "::1"),
        ("http://[::ffff:127.0.0.1]/", "::ffff:127.0.0.1"),
        ("http://10.0.0.7/", "10.0.0.7"),
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254"),
    ],
)
async def test_address_literals_are_checked_too(url: str, host: str, context: ToolContext) -> None:
    recorder = Recorder()
    tool, client = recording_tool(recorder, {host: []})  # allowlisted; never resolved
    async with client:
        with pytest.raises(ToolError, match="address: refused"):
            await tool.run({"url": url}, context=context)
    assert recorder.requests == []


async def test_one_private_answer_among_public_ones_is_enough_to_refuse(
    context: ToolContext,
) -> None:
    recorder = Recorder()
    tool, client = recording_tool(recorder, {"mixed.test": ["93.184.216.34", "10.0.0.1"]})
    async with client:
        with pytest.raises(ToolError, match="resolves to 10.0.0.1, a private address"):
            await tool.run({"url": "http://mixed.test/"}, context=context)
    assert recorder.requests == []


def test_public_addresses_pass() -> None:
    import ipaddress

    for text_address in ("93.184.216.34", "2606:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808"):
        assert blocked_reason(ipaddress.ip_address(text_address)) is None


async def test_the_connection_is_pinned_to_the_checked_address(context: ToolContext) -> None:
    recorder = Recorder(reply(200, b"ok", content_type="text/plain"))
    tool, client = recording_tool(recorder, {"public.test": ["93.184.216.34"]})
    async with client:
        result = await tool.run({"url": "https://public.test/a?b=1"}, context=context)
    assert result == "HTTP 200 OK\nContent-Type: text/plain\n\nok"
    (sent,) = recorder.requests
    assert str(sent.url) == "https://93.184.216.34/a?b=1"
    assert sent.headers["host"] == "public.test"
    assert sent.extensions["sni_hostname"] == "public.test"  # the certificate is checked for it
    assert sent.headers["accept-encoding"] == "identity"


async def test_a_redirect_is_checked_against_the_address_rules(context: ToolContext) -> None:
    recorder = Recorder(reply(302, location="http://internal.test/admin"))
    tool, client = recording_tool(
        recorder, {"public.test": ["93.184.216.34"], "internal.test": ["10.0.0.1"]}
    )
    async with client:
        with pytest.raises(ToolError, match="'internal.test' resolves to 10.0.0.1, a private"):
            await tool.run({"url": "http://public.test/"}, context=context)
    assert len(recorder.requests) == 1  # the private hop was never contacted


async def test_a_redirect_to_a_host_off_the_allowlist_is_refused(
    base: str, client: httpx.AsyncClient, context: ToolContext
) -> None:
    with pytest.raises(ToolError, match="host 'evil.test' is not in tools.http_get.allow_hosts"):
        await loopback_tool(client).run(
            {"url": f"http://api.allowed.test:{base}/away?to=evil.test"}, context=context
        )
    followed = await loopback_tool(client).run(
        {"url": f"http://api.allowed.test:{base}/away?to=a.wild.test"}, context=context
    )
    assert f"URL: http://a.wild.test:{base}/text (after 1 redirect)" in followed


async def test_at_most_three_redirects_are_followed(
    base: str, client: httpx.AsyncClient, context: ToolContext
) -> None:
    tool = loopback_tool(client)
    url = f"http://api.allowed.test:{base}/chain/{MAX_REDIRECTS}"
    result = await tool.run({"url": url}, context=context)
    assert result.endswith("\nend of the chain")
    assert "(after 3 redirects)" in result
    with pytest.raises(ToolError, match="redirects more than 3 times"):
        await tool.run({"url": f"http://api.allowed.test:{base}/chain/4"}, context=context)


async def test_a_redirect_to_another_scheme_is_refused(context: ToolContext) -> None:
    recorder = Recorder(reply(301, location="file:///etc/passwd"))
    tool, client = recording_tool(recorder, {"public.test": ["93.184.216.34"]})
    async with client:
        with pytest.raises(ToolError, match="only absolute http and https URLs"):
            await tool.run({"url": "http://public.test/"}, context=context)


async def test_the_body_stops_at_max_bytes(
    base: str, client: httpx.AsyncClient, context: ToolContext
) -> None:
    result = await loopback_tool(client, max_bytes=1000).run(
        {"url": f"http://api.allowed.test:{base}/big"}, context=context
    )
    body = result.split("\n\n", 1)[1]
    assert body == "a" * 1000 + "\n[truncated: the body is longer than 1000 bytes]"


async def test_a_compressed_body_is_decoded_within_the_cap(
    base: str, client: httpx.AsyncClient, context: ToolContext
) -> None:
    tool = loopback_tool(client, max_bytes=2000)
    result = await tool.run({"url": f"http://api.allowed.test:{base}/bomb"}, context=context)
    assert result.endswith("z" * 2000 + "\n[truncated: the body is longer than 2000 bytes]")
    small = await tool.run({"url": f"http://api.allowed.test:{base}/gzipped"}, context=context)
    assert small.endswith("\n\ngrüße")


async def test_a_binary_body_is_described_not_dumped(
    base: str, client: httpx.AsyncClient, context: ToolContext
) -> None:
    result = await loopback_tool(client).run(
        {"url": f"http://api.allowed.test:{base}/binary"}, context=context
    )
    assert result.endswith("[binary body (image/png), 264 bytes: not shown]")


async def test_a_slow_server_hits_the_total_timeout(
    base: str, client: httpx.AsyncClient, context: ToolContext
) -> None:
    url = f"http://api.allowed.test:{base}/slow"
    started = time.monotonic()
    with pytest.raises(ToolError) as caught:
        await loopback_tool(client, timeout_s=0.5).run({"url": url}, context=context)
    assert str(caught.value) == f"http_get: {url} did not answer within 0.5 s"
    assert time.monotonic() - started < 3


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("file:///etc/passwd", "only absolute http and https URLs"),
        ("ftp://api.allowed.test/x", "only absolute http and https URLs"),
        ("/relative/path", "only absolute http and https URLs"),
        ("http://user:secret@api.allowed.test/", "credentials in the URL are not allowed"),
        ("http://unknown.test/", "host 'unknown.test' is not in"),
    ],
)
async def test_bad_urls_are_refused(
    url: str, message: str, client: httpx.AsyncClient, context: ToolContext
) -> None:
    with pytest.raises(ToolError, match=message) as caught:
        await loopback_tool(client).run({"url": url}, context=context)
    assert "secret" not in str(caught.value)


async def test_an_unresolvable_host_is_reported(
    client: httpx.AsyncClient, context: ToolContext
) -> None:
    tool = loopback_tool(client, allow_hosts=("nowhere.test",))
    with pytest.raises(ToolError, match="cannot resolve 'nowhere.test'"):
        await tool.run({"url": "http://nowhere.test/"}, context=context)
