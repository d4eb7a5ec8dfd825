"""``switchboard run``: serve the app with uvicorn until SIGTERM or SIGINT, then exit 0."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
from collections.abc import Generator

import uvicorn

from gateway.config_loader import LoadedConfig
from gateway.redaction import SecretRedactor
from gateway.runtime import Runtime
from gateway.secrets import database_url
from gateway.sqlite_guard import one_gateway_per_sqlite_file
from gateway.wiring import build_app
from gateway.write_coalescing import CoalescingHttpToolsProtocol

log = logging.getLogger("switchboard.server")


class _Server(uvicorn.Server):
    """uvicorn re-raises a captured signal after shutdown (exit by signal); we stop quietly."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


async def serve(
    loaded: LoadedConfig,
    *,
    redactor: SecretRedactor,
    migrate: bool = False,
    host: str | None = None,
    port: int | None = None,
) -> None:
    """Open the runtime (reporting start-up errors before binding), then serve."""
    with one_gateway_per_sqlite_file(database_url(loaded, redactor=redactor)):
        await _serve(loaded, redactor=redactor, migrate=migrate, host=host, port=port)


async def _serve(
    loaded: LoadedConfig,
    *,
    redactor: SecretRedactor,
    migrate: bool,
    host: str | None,
    port: int | None,
) -> None:
    runtime = await Runtime.open(loaded, redactor=redactor, migrate=migrate)
    try:
        app = build_app(loaded, runtime=runtime)
        settings = loaded.config.gateway
        config = uvicorn.Config(
            app,
            host=host or settings.host,
            port=port if port is not None else settings.port,
            log_config=None,
            access_log=False,
            lifespan="on",
            server_header=False,
            http=CoalescingHttpToolsProtocol,
        )
        server = _Server(config)
        loop = asyncio.get_running_loop()

        def stop(sig: signal.Signals) -> None:
            log.info("event=stopping signal=%s", sig.name)
            if server.should_exit:  # a second signal: do not wait for open connections
                server.force_exit = True
            server.should_exit = True

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop, sig)
        # Everything built at start-up lives as long as the process: keep it out of the
        # collector's way, so full collections stay short under load (p99 latency).
        gc.collect()
        gc.freeze()
        try:
            await server.serve()
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
        if not server.started:
            raise OSError(f"could not listen on {config.host}:{config.port}")
        log.info("event=stopped")
    finally:
        await runtime.close()
