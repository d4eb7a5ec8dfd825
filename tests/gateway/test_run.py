"""``switchboard run`` as a real process: refuses an old schema, serves, stops cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from gateway.cli import main
from tests.gateway.conftest import admin_token, free_port

pytestmark = pytest.mark.slow


def start(config: Path, *extra: str) -> tuple[subprocess.Popen[str], int]:
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gateway",
            "run",
            "--config",
            str(config),
            "--port",
            str(port),
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    return process, port


def wait_healthy(process: subprocess.Popen[str], port: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output = process.stdout.read() if process.stdout else ""
            raise AssertionError(f"gateway exited with {process.returncode}:\n{output}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    process.kill()
    process.wait()  # reaped here, not by the garbage collector during another test
    if process.stdout is not None:
        process.stdout.close()
    raise AssertionError(f"gateway did not become healthy within {timeout:.0f} s")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_serves_then_stops_cleanly_on_signal(workspace: Path, sig: signal.Signals) -> None:
    process, port = start(workspace)
    try:
        wait_healthy(process, port)
        token = admin_token(workspace)
        status = httpx.get(
            f"http://127.0.0.1:{port}/api/status", headers={"Authorization": f"Bearer {token}"}
        )
        assert status.json()["default_provider"] == "echo"
        process.send_signal(sig)
        output, _ = process.communicate(timeout=15)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, output
    assert "event=stopped" in output
    assert token not in output


def test_refuses_an_unmigrated_database_and_says_what_to_do(tmp_path: Path) -> None:
    assert main(["init", "--dir", str(tmp_path)]) == 0
    process, _ = start(tmp_path / "switchboard.toml")
    output, _ = process.communicate(timeout=30)
    assert process.returncode == 2
    assert "run `switchboard migrate`" in output


def test_migrate_flag_upgrades_then_serves(tmp_path: Path) -> None:
    assert main(["init", "--dir", str(tmp_path)]) == 0
    process, port = start(tmp_path / "switchboard.toml", "--migrate")
    try:
        wait_healthy(process, port)
        assert httpx.get(f"http://127.0.0.1:{port}/readyz").json()["status"] == "ok"
    finally:
        process.terminate()
        process.communicate(timeout=15)
    assert process.returncode == 0


def test_bad_config_exits_2_naming_the_key(tmp_path: Path) -> None:
    assert main(["init", "--dir", str(tmp_path)]) == 0
    config = tmp_path / "switchboard.toml"
    config.write_text(config.read_text().replace("port = 8080", "port = 99999"))
    process, _ = start(config)
    output, _ = process.communicate(timeout=30)
    assert process.returncode == 2
    assert "gateway.port:" in output
