"""One shared ``httpx.AsyncClient`` per API host, so connections are pooled and reused.

The clients keep httpx's API (what every provider module is written against) over our
own HTTP/1.1 transport (``core.providers.http1_transport``, which says why).
"""

from __future__ import annotations

from typing import Any

import httpx

from core.providers.http1_transport import DEFAULT_LIMITS, Http1Transport

# Per-request timeouts are always passed explicitly by the providers; this is the backstop.
_BACKSTOP_TIMEOUT = httpx.Timeout(120.0, connect=10.0)


def host_key(base_url: str) -> tuple[str, str, int | None]:
    """``(scheme, host, port)`` of a base URL: providers on one host share a client."""
    url = httpx.URL(base_url)
    return (url.scheme, url.host, url.port)


class UpstreamClient(httpx.AsyncClient):
    """An ``AsyncClient`` for LLM APIs: requests go straight to the transport.

    LLM APIs authenticate with a header, never redirect an API call and need no cookies,
    so ``send`` skips httpx's auth flow, redirect loop and cookie jar. Not keeping cookies
    is deliberate, not only faster: the Set-Cookie of a CDN in front of an API (Cloudflare's
    ``__cf_bm``) would otherwise be replayed on every later request of every conversation.
    In ``bench/provider_overhead`` those layers were a quarter of the gateway's CPU per
    request (the cookie jar alone a tenth: it copies every request and response header into
    urllib objects even when there is no cookie). Anything that asks for auth or redirects
    gets httpx's full path.
    """

    def __init__(self, *, transport: httpx.AsyncBaseTransport, **kwargs: Any) -> None:
        super().__init__(transport=transport, follow_redirects=False, **kwargs)
        self._upstream = transport

    async def send(
        self,
        request: httpx.Request,
        *,
        stream: bool = False,
        auth: Any = httpx.USE_CLIENT_DEFAULT,
        follow_redirects: Any = httpx.USE_CLIENT_DEFAULT,
    ) -> httpx.Response:
        """Send ``request`` on the pooled transport (the timeout travels in its extensions)."""
        if auth is not httpx.USE_CLIENT_DEFAULT or follow_redirects is True:
            return await super().send(
                request, stream=stream, auth=auth, follow_redirects=follow_redirects
            )
        if self.is_closed:
            raise RuntimeError("Cannot send a request, as the client has been closed.")
        response = await self._upstream.handle_async_request(request)
        response.request = request
        if not stream:
            try:
                await response.aread()
            except BaseException:
                await response.aclose()
                raise
        return response


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
            client = UpstreamClient(
                timeout=_BACKSTOP_TIMEOUT,
                transport=self._transport or Http1Transport(limits=DEFAULT_LIMITS),
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
