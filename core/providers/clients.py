"""One shared ``httpx.AsyncClient`` per API host, so connections are pooled and reused.

The clients keep httpx's API (what every provider module is written against) over
aiohttp's connection pool (``httpx-aiohttp``): httpcore's pool scans every pooled
connection on each request, which cost a third of the gateway's CPU under load in
``bench/provider_overhead``; with aiohttp underneath, requests/s per core tripled.
"""

from __future__ import annotations

import httpx
from httpx_aiohttp import AiohttpTransport

# Per-request timeouts are always passed explicitly by the providers; this is the backstop.
_BACKSTOP_TIMEOUT = httpx.Timeout(120.0, connect=10.0)
_LIMITS = httpx.Limits(max_connections=256, max_keepalive_connections=64, keepalive_expiry=30)


def host_key(base_url: str) -> tuple[str, str, int | None]:
    """``(scheme, host, port)`` of a base URL: providers on one host share a client."""
    url = httpx.URL(base_url)
    return (url.scheme, url.host, url.port)


class ClientPool:
    """Creates clients on demand and closes the ones no provider uses any more."""

    def __init__(self, *, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self._transport = transport
        self._clients: dict[tuple[str, str, int | None], httpx.AsyncClient] = {}

    def client_for(self, base_url: str) -> httpx.AsyncClient:
        """The client for ``base_url``'s host."""
        key = host_key(base_url)
        client = self._clients.get(key)
        if client is None:
            client = httpx.AsyncClient(
                timeout=_BACKSTOP_TIMEOUT,
                limits=_LIMITS,
                transport=self._transport or AiohttpTransport(limits=_LIMITS, trust_env=False),
                follow_redirects=False,
                trust_env=False,
            )
            self._clients[key] = client
        return client

    async def retain(self, base_urls: set[str]) -> None:
        """Close the clients of hosts no longer in ``base_urls``."""
        keep = {host_key(u) for u in base_urls}
        for key in [k for k in self._clients if k not in keep]:
            await self._clients.pop(key).aclose()

    async def close(self) -> None:
        """Close every client."""
        for client in self._clients.values():
            await client.aclose()
        self._clients.clear()
