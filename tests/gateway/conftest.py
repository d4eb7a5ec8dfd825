"""Fixtures for the gateway: a folder set up by ``switchboard init``, an app over it."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager

from gateway.cli import main
from gateway.config_loader import load_config
from gateway.redaction import SecretRedactor
from gateway.wiring import build_app


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """``switchboard init`` then ``switchboard migrate`` in a fresh folder; the config path."""
    assert main(["init", "--dir", str(tmp_path)]) == 0
    config = tmp_path / "switchboard.toml"
    assert main(["migrate", "--config", str(config)]) == 0
    return config


def admin_token(config: Path) -> str:
    return (config.parent / "data" / "admin.token").read_text().strip()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@asynccontextmanager
async def app_client(workspace: Path) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client on the app built from the workspace (lifespan run), admin token set."""
    app = build_app(load_config(workspace), redactor=SecretRedactor())
    # Start-up may import a chat platform's library and open a vault (scrypt): seconds on a
    # loaded CI machine, beyond asgi-lifespan's default 5 s.
    async with LifespanManager(app, startup_timeout=30, shutdown_timeout=30) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        headers = {"Authorization": f"Bearer {admin_token(workspace)}"}
        async with httpx.AsyncClient(
            transport=transport, base_url="http://gateway", headers=headers
        ) as client:
            yield client


@pytest.fixture
async def api(workspace: Path) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client on the app built from the workspace, with the admin token set."""
    async with app_client(workspace) as client:
        yield client
