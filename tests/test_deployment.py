"""docker-compose.yml brings up the gateway configured for PostgreSQL."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from core.config import secret_refs
from gateway.config_loader import load_config

ROOT = Path(__file__).resolve().parent.parent


def compose() -> dict[str, object]:
    data: dict[str, object] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return data


def test_compose_runs_the_gateway_on_postgres_with_its_config() -> None:
    services = compose()["services"]
    assert isinstance(services, dict)
    gateway, postgres = services["gateway"], services["postgres"]
    assert gateway["build"] == "."
    assert gateway["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert postgres["image"].startswith("postgres:")
    assert "./deploy:/etc/switchboard:ro" in gateway["volumes"]
    loaded = load_config(ROOT / "deploy" / "switchboard.toml")
    assert loaded.config.storage.url.startswith("postgresql+asyncpg://switchboard@postgres:5432/")
    # Every env: reference of the config is passed into the container.
    env_refs = {ref.target for _, ref in secret_refs(loaded.config) if ref.scheme == "env"}
    assert env_refs <= set(gateway["environment"])
    assert env_refs == {
        "SWITCHBOARD_ADMIN_TOKEN",
        "SWITCHBOARD_VAULT_KEY",
        "SWITCHBOARD_DB_PASSWORD",
    }


def test_dockerfile_installs_every_package_and_migrates_on_start() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    for package in ("core", "channels", "gateway", "migrations"):
        assert re.search(rf"^COPY {package} {package}$", dockerfile, re.M), package
    assert 'CMD ["switchboard", "run", "--migrate"]' in dockerfile


def _has_compose() -> bool:
    if shutil.which("docker") is None:
        return False
    probe = subprocess.run(["docker", "compose", "version"], capture_output=True, check=False)
    return probe.returncode == 0


@pytest.mark.skipif(not _has_compose(), reason="the docker compose plugin is not installed")
def test_docker_compose_config_accepts_the_file() -> None:
    env = {
        "SWITCHBOARD_ADMIN_TOKEN": "t" * 32,
        "SWITCHBOARD_VAULT_KEY": "k" * 32,
        "SWITCHBOARD_DB_PASSWORD": "p" * 16,
    }
    result = subprocess.run(
        ["docker", "compose", "-f", str(ROOT / "docker-compose.yml"), "config", "--quiet"],
        capture_output=True,
        text=True,
        env={**env, "PATH": "/usr/bin:/bin:/usr/local/bin"},
        check=False,
    )
    assert result.returncode == 0, result.stderr
