"""``http_get`` (medium): fetch one web page for the model, behind a host allowlist.

What keeps it from being a way into the gateway's own network (SSRF):

* only ``http`` and ``https`` URLs, without credentials, to a host on
  ``tools.http_get.allow_hosts`` (exact name, or ``*.example.com`` for any subdomain);
  an empty allowlist refuses everything;
* the host is resolved here and every address it resolves to must be public: private,
  loopback, link-local, multicast, reserved and unspecified addresses are refused (IPv4,
  IPv6 and IPv4 inside IPv6: mapped, 6to4, Teredo, NAT64) unless ``allow_private``;
* the connection is pinned to the address that was checked: the request goes to the IP,
  with the real name in ``Host`` and in TLS SNI (httpcore's ``sni_hostname`` extension,
  so the certificate is still verified for the name). A second DNS answer, the trick of
  DNS rebinding, is never asked for. With a transport other than httpx's own the SNI
  extension is ignored and HTTPS fails closed (the certificate does not name the IP);
* redirects are followed by hand, at most ``MAX_REDIRECTS``, and every hop is checked
  and pinned again exactly like the first URL;
* the body is streamed and reading stops at ``max_bytes`` (decompressed size, decoded
  here with a bound so a small gzip bomb cannot expand in memory); the whole exchange,
  redirects included, has one deadline of ``timeout_s``.

The shared ``httpx.AsyncClient`` is injected. Requests are built by hand and sent with
``auth=None``, so the client's default headers, cookies and auth never reach the site.
"""

from __future__ import annotations

import asyncio
import codecs
import ipaddress
import socket
import zlib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import httpx

from core.config import HttpGetTool
from core.errors import ToolError
from core.types import SecurityLevel, ToolContext

MAX_REDIRECTS = 3
USER_AGENT = "Switchboard-http_get/0.1"
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_TEXT_TYPES = frozenset(
    {
        "application/json",
        "application/xml",
        "application/javascript",
        "application/ecmascript",
        "application/x-www-form-urlencoded",
        "application/yaml",
        "application/x-yaml",
        "application/toml",
        "application/x-ndjson",
    }
)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[Sequence[str]]]


async def resolve_host(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to, through the event loop's resolver (no blocking)."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def host_allowed(host: str, allow_hosts: Sequence[str]) -> bool:
    """``host`` equals an entry, or is a subdomain of a ``*.domain`` entry (not ``domain``)."""
    host = _normal_host(host)
    for entry in allow_hosts:
        pattern = _normal_host(entry)
        if pattern.startswith("*."):
            suffix = pattern[1:]
            # A wildcard names domains: "*.0.0.1" must not admit the address 127.0.0.1.
            if host.endswith(suffix) and len(host) > len(suffix) and not _is_ip(host):
                return True
        elif host == pattern:
            return True
    return False


def blocked_reason(address: IPAddress) -> str | None:
    """Why ``address`` is not public (``"loopback"``, ``"private"``...), or ``None``."""
    candidates: list[IPAddress] = [address]
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            candidates = [address.ipv4_mapped]
        elif address in _NAT64:
            # NAT64 addresses are reserved as IPv6; what counts is the IPv4 host inside.
            candidates = [ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)]
        else:
            if address.sixtofour is not None:
                candidates.append(address.sixtofour)
            if address.teredo is not None:
                candidates.extend(address.teredo)
    for candidate in candidates:
        reason = _single_reason(candidate)
        if reason is not None:
            return reason
    return None


class HttpGet:
    """GETs one URL on the allowlist and returns status, content type and text."""

    name = "http_get"
    description = (
        "Fetch a web page or API response with HTTP GET and return its status, content type "
        "and text. Only hosts the operator allowed can be fetched; large bodies are cut."
    )
    parameters: Mapping[str, Any] = {
        "type": "object",
        "properties": {
            "url": {
                "type": "string",
                "minLength": 1,
                "maxLength": 2048,
                "description": "absolute http:// or https:// URL",
            }
        },
        "required": ["url"],
        "additionalProperties": False,
    }
    level = SecurityLevel.MEDIUM

    def __init__(
        self,
        settings: HttpGetTool,
        *,
        client: httpx.AsyncClient,
        resolver: Resolver = resolve_host,
    ) -> None:
        self._settings = settings
        self._client = client
        self._resolve = resolver

    async def run(self, arguments: Mapping[str, Any], *, context: ToolContext) -> str:
        """Fetch ``arguments["url"]``; refusals and failures raise ``ToolError``."""
        url = self._parse(str(arguments["url"]), what="URL")
        limit = self._settings.timeout_s
        try:
            async with asyncio.timeout(limit):
                return await self._fetch(url)
        except (TimeoutError, httpx.TimeoutException):
            raise self._error(f"{url} did not answer within {limit:g} s") from None
        except httpx.HTTPError as exc:
            raise self._error(f"cannot fetch {url}: {type(exc).__name__}: {exc}") from None

    async def _fetch(self, url: httpx.URL) -> str:
        current = url
        for hop in range(MAX_REDIRECTS + 1):
            address = await self._checked_address(current)
            response = await self._client.send(
                _pinned_request(current, address, self._settings.timeout_s),
                stream=True,
                auth=None,
                follow_redirects=False,
            )
            try:
                location = response.headers.get("location")
                if response.status_code in _REDIRECT_STATUSES and location:
                    if hop == MAX_REDIRECTS:
                        raise self._error(f"{url} redirects more than {MAX_REDIRECTS} times")
                    current = self._parse_redirect(current, location)
                    continue
                return await self._render(current, response, redirects=hop)
            finally:
                await response.aclose()
        raise AssertionError("unreachable: the loop returns or raises")

    def _parse(self, text: str, *, what: str) -> httpx.URL:
        try:
            url = httpx.URL(text)
        except httpx.InvalidURL as exc:
            raise self._error(f"{what} {text!r} is not valid: {exc}") from None
        if url.scheme not in ("http", "https") or not url.host:
            raise self._error(f"{what} {text!r} refused: only absolute http and https URLs")
        if url.userinfo:
            raise self._error(f"{what} refused: credentials in the URL are not allowed")
        return url

    def _parse_redirect(self, current: httpx.URL, location: str) -> httpx.URL:
        try:
            target = current.join(location)
        except httpx.InvalidURL as exc:
            raise self._error(f"{current} redirects to an invalid URL: {exc}") from None
        return self._parse(str(target), what="redirect to")

    async def _checked_address(self, url: httpx.URL) -> str:
        """Apply the allowlist and the address rules to one hop; the address to connect to."""
        host = _normal_host(url.host)
        allow = self._settings.allow_hosts
        if not allow:
            raise self._error(
                "no host is allowed yet: the operator must list hosts in "
                'tools.http_get.allow_hosts (for example ["example.com", "*.wikipedia.org"])'
            )
        if not host_allowed(host, allow):
            raise self._error(
                f"host {host!r} is not in tools.http_get.allow_hosts (allowed: {', '.join(allow)})"
            )
        port = url.port or (443 if url.scheme == "https" else 80)
        if _is_ip(host):
            addresses: Sequence[str] = [host]
        else:
            try:
                addresses = await self._resolve(host, port)
            except OSError as exc:
                raise self._error(f"cannot resolve {host!r}: {exc}") from None
        if not addresses:
            raise self._error(f"{host!r} resolves to no address")
        if not self._settings.allow_private:
            # Every answer must pass, not just the one we use: a mixed answer is a red flag.
            for text in addresses:
                reason = blocked_reason(ipaddress.ip_address(text.split("%", 1)[0]))
                if reason is not None:
                    raise self._error(
                        f"{host!r} resolves to {text}, a {reason} address: refused "
                        "(tools.http_get.allow_private = true allows it)"
                    )
        return addresses[0]

    async def _render(self, url: httpx.URL, response: httpx.Response, *, redirects: int) -> str:
        content_type = response.headers.get("content-type", "")
        lines = [f"HTTP {response.status_code} {response.reason_phrase}".rstrip()]
        if redirects:
            lines.append(f"URL: {url} (after {redirects} redirect{'s' * (redirects > 1)})")
        lines.append(f"Content-Type: {content_type or '(none)'}")
        lines.append("")
        encoding = response.headers.get("content-encoding", "").strip().lower()
        if encoding not in ("", "identity", "gzip", "x-gzip", "deflate"):
            lines.append(f"[body encoded with {encoding!r}: not decoded]")
            return "\n".join(lines)
        body, truncated = await self._read(response, compressed=encoding not in ("", "identity"))
        text = _as_text(body, content_type, response.charset_encoding, truncated=truncated)
        if text is None:
            size = f"{'at least ' * truncated}{len(body)} bytes"
            lines.append(f"[binary body ({content_type or 'unknown type'}), {size}: not shown]")
        else:
            lines.append(text if body else "[empty body]")
            if truncated:
                lines.append(f"[truncated: the body is longer than {len(body)} bytes]")
        return "\n".join(lines)

    async def _read(self, response: httpx.Response, *, compressed: bool) -> tuple[bytes, bool]:
        """At most ``max_bytes`` of the (decompressed) body, and whether there was more."""
        limit = self._settings.max_bytes
        # wbits 32+MAX_WBITS: accepts both a gzip and a zlib header ("deflate" in HTTP).
        decoder = zlib.decompressobj(32 + zlib.MAX_WBITS) if compressed else None
        body = bytearray()
        try:
            async for raw in response.aiter_raw():
                pending = raw
                while pending:
                    if decoder is None:
                        piece, pending = pending, b""
                    else:
                        # max_length bounds what one chunk may expand to.
                        piece = decoder.decompress(pending, limit + 1 - len(body))
                        pending = decoder.unconsumed_tail
                    body += piece
                    if len(body) > limit:
                        return bytes(body[:limit]), True
        except zlib.error as exc:
            encoding = response.headers["content-encoding"]
            raise self._error(f"the body is not valid {encoding}: {exc}") from None
        return bytes(body), False

    def _error(self, problem: str) -> ToolError:
        return ToolError(f"http_get: {problem}", tool=self.name)


def _pinned_request(url: httpx.URL, address: str, timeout_s: float) -> httpx.Request:
    # The name stays in Host and SNI; only the TCP connection goes to the checked address.
    extensions: dict[str, Any] = {"timeout": httpx.Timeout(timeout_s).as_dict()}
    if url.scheme == "https":
        extensions["sni_hostname"] = url.raw_host.decode("ascii")
    headers = {
        "Host": url.netloc.decode("ascii"),
        "User-Agent": USER_AGENT,
        "Accept": "*/*",
        # Asked for so that the size cap is a size cap; gzip is still decoded, bounded.
        "Accept-Encoding": "identity",
    }
    return httpx.Request("GET", url.copy_with(host=address), headers=headers, extensions=extensions)


def _as_text(body: bytes, content_type: str, charset: str | None, *, truncated: bool) -> str | None:
    """The body as text, or ``None`` when it is binary."""
    mime = content_type.split(";", 1)[0].strip().lower()
    if mime and not _is_textual(mime):
        return None
    codec = "utf-8"
    if charset:
        try:
            codec = codecs.lookup(charset).name
        except LookupError:
            pass  # an unknown charset label: UTF-8 with replacement is the best guess
    if not mime:
        # No declared type: call it text only when it looks like UTF-8 without NULs.
        if b"\x00" in body[:4096]:
            return None
        try:
            codecs.getincrementaldecoder("utf-8")().decode(body, final=not truncated)
        except UnicodeDecodeError:
            return None
    # final=False when cut: a character split by the cap is dropped, not replaced.
    return codecs.getincrementaldecoder(codec)(errors="replace").decode(body, final=not truncated)


def _is_textual(mime: str) -> bool:
    return (
        mime.startswith("text/")
        or mime in _TEXT_TYPES
        or mime.endswith(("+json", "+xml"))  # image/svg+xml, application/ld+json...
    )


def _single_reason(address: IPAddress) -> str | None:
    if address.is_unspecified:
        return "unspecified"
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local"
    if address.is_multicast:
        return "multicast"
    if address.is_private:
        return "private"
    if address.is_reserved:
        return "reserved"
    if not address.is_global:
        return "non-public"  # shared address space 100.64.0.0/10 and the like
    return None


def _normal_host(host: str) -> str:
    return host.strip().strip("[]").rstrip(".").lower()


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    return True
