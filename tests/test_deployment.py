"""docker-compose.yml brings up the gateway configured for PostgreSQL."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

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


def compose_command() -> list[str]:
    """``docker compose`` (the plugin) when it is there, else Debian's ``docker-compose``.

    Neither needs a Docker engine to check a file: ``config`` parses, interpolates and
    validates it against the Compose schema. scripts/check installs ``docker-compose``.
    """
    if shutil.which("docker") is not None:
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, check=False)
        if probe.returncode == 0:
            return ["docker", "compose"]
    found = shutil.which("docker-compose")
    assert found is not None, "docker-compose is missing: scripts/check installs it"
    return [found]


COMPOSE_ENV = {
    "SWITCHBOARD_ADMIN_TOKEN": "t" * 32,
    "SWITCHBOARD_VAULT_KEY": "k" * 32,
    "SWITCHBOARD_DB_PASSWORD": "p" * 16,
    "PATH": "/usr/bin:/bin:/usr/local/bin",
}


def test_docker_compose_config_accepts_the_file() -> None:
    result = subprocess.run(
        [*compose_command(), "-f", str(ROOT / "docker-compose.yml"), "config", "--quiet"],
        capture_output=True,
        text=True,
        env=COMPOSE_ENV,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_docker_compose_refuses_to_start_without_the_secrets() -> None:
    env = {k: v for k, v in COMPOSE_ENV.items() if k != "SWITCHBOARD_ADMIN_TOKEN"}
    result = subprocess.run(
        [*compose_command(), "-f", str(ROOT / "docker-compose.yml"), "config", "--quiet"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert result.returncode != 0
    assert "set SWITCHBOARD_ADMIN_TOKEN in .env" in result.stderr


def test_prometheus_service_scrapes_the_gateway_with_the_admin_token() -> None:
    prometheus = compose()["services"]["prometheus"]  # type: ignore[index]
    assert "./deploy/prometheus.yml:/etc/prometheus/prometheus.yml:ro" in prometheus["volumes"]
    assert "SWITCHBOARD_ADMIN_TOKEN" in prometheus["environment"]
    assert "/prometheus/admin_token" in " ".join(prometheus["command"])
    scrape = yaml.safe_load((ROOT / "deploy" / "prometheus.yml").read_text())
    (job,) = scrape["scrape_configs"]
    assert job["static_configs"] == [{"targets": ["gateway:8080"]}]
    assert job["authorization"]["credentials_file"] == "/prometheus/admin_token"
