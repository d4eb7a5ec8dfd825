"""deploy/prometheus.yml, run by a real Prometheus against a real ``switchboard run``.

Only the target address and the token file's path differ from what docker compose runs.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from tests.gateway.conftest import admin_token, free_port
from tests.gateway.test_run import start, wait_healthy

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def prometheus_binary(name: str) -> str:
    found = shutil.which(name)
    assert found is not None, f"{name} is missing: scripts/check installs Debian's prometheus"
    return found


def local_scrape_config(tmp: Path, *, gateway_port: int, token: str) -> Path:
    """deploy/prometheus.yml aimed at this test's gateway, scraping every second."""
    config = yaml.safe_load((ROOT / "deploy" / "prometheus.yml").read_text())
    token_file = tmp / "admin_token"
    token_file.write_text(token)
    token_file.chmod(0o600)
    config["global"]["scrape_interval"] = "1s"
    (job,) = config["scrape_configs"]
    job["authorization"]["credentials_file"] = str(token_file)
    job["static_configs"] = [{"targets": [f"127.0.0.1:{gateway_port}"]}]
    path = tmp / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture
def gateway(workspace: Path) -> Iterator[int]:
    process, port = start(workspace)
    try:
        wait_healthy(process, port)
        yield port
    finally:
        process.terminate()
        process.communicate(timeout=15)


def query(prom_port: int, expr: str) -> list[dict[str, object]]:
    answer = httpx.get(
        f"http://127.0.0.1:{prom_port}/api/v1/query", params={"query": expr}, timeout=5
    )
    answer.raise_for_status()
    result: list[dict[str, object]] = answer.json()["data"]["result"]
    return result


def test_the_shipped_prometheus_config_checks_out(tmp_path: Path) -> None:
    config = local_scrape_config(tmp_path, gateway_port=8080, token="t" * 32)
    result = subprocess.run(
        [prometheus_binary("promtool"), "check", "config", str(config)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_prometheus_scrapes_the_running_gateway(
    tmp_path: Path, workspace: Path, gateway: int
) -> None:
    config = local_scrape_config(tmp_path, gateway_port=gateway, token=admin_token(workspace))
    prom_port = free_port()
    binary = prometheus_binary("prometheus")  # before the log is opened: nothing to leak
    log = (tmp_path / "prometheus.log").open("w")
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{prom_port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 45
        up: list[dict[str, object]] = []
        while time.monotonic() < deadline:
            assert process.poll() is None, (tmp_path / "prometheus.log").read_text()
            try:
                up = query(prom_port, 'up{job="switchboard"}')
            except httpx.HTTPError:
                up = []
            if up and up[0]["value"][1] == "1":  # type: ignore[index]
                break
            time.sleep(0.5)
        assert up and up[0]["value"][1] == "1", f"never scraped successfully: {up}"  # type: ignore[index]
        # The gateway's own series arrived, not only Prometheus' synthetic "up".
        names = httpx.get(
            f"http://127.0.0.1:{prom_port}/api/v1/label/__name__/values", timeout=5
        ).json()["data"]
        assert any(name.startswith("switchboard_") for name in names), names
    finally:
        process.terminate()
        process.wait(timeout=15)
        log.close()
