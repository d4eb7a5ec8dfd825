"""Builds the object graph and the FastAPI app from a config: no module-level singletons."""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Response
from fastapi_offline import FastAPIOffline

import gateway
from gateway.api.auth import AdminTokenMiddleware, is_protected
from gateway.api.errors import install_error_handlers
from gateway.api.fast_body import install_body_components
from gateway.api.hot_path import HotPathMiddleware
from gateway.api.openapi_docs import complete_openapi
from gateway.api.routes import (
    approvals,
    audit,
    channels,
    chat,
    chat_multi,
    health,
    providers,
    status,
)
from gateway.api.routes import config as config_routes
from gateway.api.routes import conversations as conversation_routes
from gateway.api.routes import replicas as replica_routes
from gateway.api.routes import slack as slack_routes
from gateway.api.routes import usage as usage_routes
from gateway.api.routes.openai_compat import install_openai_compat
from gateway.channel_host import GatewayChannelHost
from gateway.config_loader import LoadedConfig
from gateway.console.routes import install_console
from gateway.http_metrics import HttpMetricsMiddleware
from gateway.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from gateway.metrics import GatewayMetrics
from gateway.redaction import SecretRedactor
from gateway.reload import ConfigWatcher
from gateway.replicas import recover_forever, take_over_dead
from gateway.runtime import Runtime
from gateway.supervisor import Supervisor

log = logging.getLogger("switchboard.gateway")
DOCS_ASSETS_URL = "/docs-assets"


def start_channels(rt: Runtime, supervisor: Supervisor) -> GatewayChannelHost:
    """Every enabled chat platform of the config, with its delivery worker."""
    host = GatewayChannelHost(rt)
    telegram = rt.config.config.channels.telegram
    if telegram is not None and telegram.enabled:
        # Only when configured: importing aiogram rebuilds every Telegram type's pydantic
        # model, which takes seconds (5 s here) of every start-up otherwise.
        from channels.telegram import TelegramChannel  # noqa: PLC0415

        host.add(TelegramChannel(telegram))
    discord_settings = rt.config.config.channels.discord
    if discord_settings is not None and discord_settings.enabled:
        from channels.discord import DiscordChannel  # noqa: PLC0415 - only when configured

        host.add(DiscordChannel(discord_settings))
    slack_settings = rt.config.config.channels.slack
    if slack_settings is not None and slack_settings.enabled:
        from channels.slack import SlackChannel  # noqa: PLC0415 - only when configured

        host.add(SlackChannel(slack_settings))
    rt.channels = host
    host.start(supervisor)
    return host


def build_app(
    loaded: LoadedConfig,
    *,
    runtime: Runtime | None = None,
    redactor: SecretRedactor | None = None,
    migrate: bool = False,
) -> FastAPI:
    """The admin API for ``loaded``.

    With ``runtime`` given, the caller owns it (``switchboard run`` opens it first so that
    start-up errors are reported before serving); otherwise the lifespan opens and closes it.
    """
    supervisor = Supervisor()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = runtime is None
        rt = runtime or await Runtime.open(
            loaded, redactor=redactor or SecretRedactor(), migrate=migrate
        )
        app.state.runtime = rt
        app.state.supervisor = supervisor
        watcher = ConfigWatcher(rt)
        app.state.config_watcher = watcher
        supervisor.start("config-watcher", watcher.run)
        channel_host = start_channels(rt, supervisor)
        # What a crashed process (this one's predecessor, or another replica) left undone.
        answered = await take_over_dead(rt)
        if answered:
            log.warning("event=messages_recovered count=%d", answered)
        supervisor.start("replica-recovery", functools.partial(recover_forever, rt))
        supervisor.start("approval-sweeper", rt.orchestrator.run_sweeper)
        if rt.config.config.gateway.admin_token is None:
            log.warning("event=no_admin_token detail='the API is open to every local user'")
        try:
            yield
        finally:
            await supervisor.stop()
            await channel_host.close()
            rt.channels = None
            if owned:
                await rt.close()

    # /docs and /redoc with Swagger UI and ReDoc served by the gateway itself (the
    # fastapi-offline package ships them): FastAPI's defaults load them from a CDN, which
    # leaves the pages blank on a server without internet access.
    app = FastAPIOffline(
        title="Switchboard",
        version=gateway.__version__,
        summary="Admin API of the Switchboard chat bot gateway",
        lifespan=lifespan,
        static_url=DOCS_ASSETS_URL,
    )

    def runtime_source() -> Runtime | None:
        """The runtime once the lifespan has opened it."""
        rt: Runtime | None = getattr(app.state, "runtime", None)
        return rt

    token_cache: list[tuple[object, bytes]] = []  # (the SecretRef in force, its bytes)

    def current_token() -> bytes | None:
        rt = runtime_source()
        ref = (rt.config if rt else loaded).config.gateway.admin_token
        if ref is None:
            return None
        if not token_cache or token_cache[0][0] is not ref:  # a reload brings a new ref
            # reveal() raises on an unresolved reference: a configured token never fails open.
            token_cache[:] = [(ref, ref.reveal().encode())]
        return token_cache[0][1]

    # Added first, so it runs inside the admin-token check (middlewares wrap outwards).
    app.add_middleware(HotPathMiddleware, runtime_source=runtime_source)
    install_openai_compat(app, runtime_source=runtime_source)
    app.add_middleware(AdminTokenMiddleware, token_source=current_token)
    gateway_metrics = GatewayMetrics(runtime_source)
    # Added last, so it is the outermost: it counts and times every request, 401s included.
    app.add_middleware(
        HttpMetricsMiddleware, metrics=gateway_metrics.http, openapi=lambda: app.openapi()
    )
    build_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            spec = install_body_components(build_openapi())
            app.openapi_schema = complete_openapi(spec, is_protected=is_protected)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    install_error_handlers(app)
    # The hot path first: routes are matched in order, router by router.
    app.include_router(chat_multi.router)
    app.include_router(health.router)
    app.include_router(status.router)
    app.include_router(config_routes.router)
    app.include_router(providers.router)
    app.include_router(audit.router)
    app.include_router(chat.router)
    app.include_router(approvals.router)
    app.include_router(usage_routes.router)
    app.include_router(conversation_routes.router)
    app.include_router(replica_routes.router)

    @app.get(
        "/metrics",
        include_in_schema=True,
        tags=["health"],
        summary="Prometheus metrics",
        response_class=Response,
        responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
    )
    async def metrics() -> Response:
        """Prometheus text format (needs the admin token, like every route but the probes)."""
        return Response(await gateway_metrics.render(), media_type=METRICS_CONTENT_TYPE)

    app.include_router(channels.router)
    app.include_router(slack_routes.router)
    install_console(app)
    return app
