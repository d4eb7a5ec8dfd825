"""The provider_overhead upstream fake, served with a long keep-alive.

Same app (bench.provider_overhead.upstream.app), one difference: uvicorn's default 5 s
keep-alive. A slow proxy is measured at a low rate, and the direct calls that take turns
with it then leave each of the load generator's 64 pooled connections idle for longer
than 5 s; the upstream closing them would show up as failed requests.
Run: ``python -m bench.proxy_compare.upstream_server PORT``.
"""

from __future__ import annotations

import sys

import uvicorn

from bench.provider_overhead.upstream import app

KEEP_ALIVE_S = 120


def serve(port: int) -> None:
    """Serve the upstream fake on 127.0.0.1:``port`` until stopped."""
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        http="httptools",
        loop="uvloop",
        lifespan="off",
        backlog=4096,
        timeout_keep_alive=KEEP_ALIVE_S,
    )


if __name__ == "__main__":
    serve(int(sys.argv[1]))
