"""Installs the peer proxies into a git-ignored cache folder, once, on first use.

Nothing of them is committed: LiteLLM gets its own virtualenv, Portkey's gateway its own
npm folder, both at pinned versions under ``bench/proxy_compare/.peers/``. A folder counts
as installed only once its ``.complete`` marker exists, so an interrupted install is redone.

Pins, and why:
- LiteLLM 1.108.7 with the ``proxy`` extra: newer releases with that extra need
  ``litellm-proxy``, ``litellm-proxy-extras`` or ``litellm-enterprise`` versions that the
  reachable registry does not have (1.108.8 up to 1.110.2 fail to resolve). 1.82.7 and
  1.82.8 were compromised releases and are refused outright.
- Portkey gateway 1.15.2 with ``@hono/node-server`` held at 1.13.5, the version its own
  lockfile resolved: with 1.19.x every streamed answer fails with "TypeError: immutable"
  (the gateway appends headers to the upstream fetch Response; Portkey-AI/gateway#1389).
  Install scripts are skipped: the only one is ``patch-package`` for the repo's own patches,
  which the published package does not ship.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

LITELLM_VERSION = "1.108.7"
PORTKEY_VERSION = "1.15.2"
PORTKEY_NODE_SERVER = "1.13.5"
COMPROMISED_LITELLM = frozenset({"1.82.7", "1.82.8"})
PEERS_DIR = Path(__file__).resolve().with_name(".peers")
MARKER = ".complete"


class PeerUnavailable(Exception):
    """A peer proxy cannot be installed or run here; the message says what failed."""


@dataclass(frozen=True)
class LiteLLMInstall:
    """An installed LiteLLM proxy: its CLI and exact version."""

    cli: Path
    version: str


@dataclass(frozen=True)
class PortkeyInstall:
    """An installed Portkey gateway: its server script, version and the Node that runs it."""

    server: Path
    version: str
    node_server_version: str
    node: str


def progress(message: str) -> None:
    """One progress line, flushed at once (installs take a minute)."""
    print(f"proxy_compare: {message}", flush=True)


def ensure_litellm(peers_dir: Path = PEERS_DIR, version: str = LITELLM_VERSION) -> LiteLLMInstall:
    """LiteLLM's proxy in its own venv, installing it first if needed."""
    if version in COMPROMISED_LITELLM:
        raise PeerUnavailable(f"litellm {version} is a compromised release; refusing it")
    home = peers_dir / f"litellm-{version}"
    if not (home / MARKER).exists():
        shutil.rmtree(home, ignore_errors=True)
        progress(f"installing litellm[proxy]=={version} into {home} (about a minute)")
        _run([sys.executable, "-m", "venv", str(home)], what="python -m venv")
        _run(
            [str(home / "bin" / "pip"), "install", "--quiet", f"litellm[proxy]=={version}"],
            what=f"pip install 'litellm[proxy]=={version}'",
        )
        (home / MARKER).write_text(version + "\n")
        progress(f"litellm {version} installed")
    installed = _run(
        [
            str(home / "bin" / "python"),
            "-c",
            "import importlib.metadata as m; print(m.version('litellm'))",
        ],
        what="reading litellm's version",
    ).strip()
    if installed != version:
        raise PeerUnavailable(f"{home} holds litellm {installed}, expected {version}")
    return LiteLLMInstall(cli=home / "bin" / "litellm", version=installed)


def ensure_portkey(peers_dir: Path = PEERS_DIR, version: str = PORTKEY_VERSION) -> PortkeyInstall:
    """Portkey's open-source gateway in its own npm folder, installing it first if needed."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        raise PeerUnavailable("node and npm are needed for Portkey's gateway (not on PATH)")
    home = peers_dir / f"portkey-{version}"
    package = home / "node_modules" / "@portkey-ai" / "gateway"
    if not (home / MARKER).exists():
        shutil.rmtree(home, ignore_errors=True)
        home.mkdir(parents=True)
        manifest = {
            "name": "proxy-compare-portkey",
            "private": True,
            "dependencies": {"@portkey-ai/gateway": version},
            "overrides": {"@hono/node-server": PORTKEY_NODE_SERVER},
        }
        (home / "package.json").write_text(json.dumps(manifest, indent=2) + "\n")
        progress(f"installing @portkey-ai/gateway@{version} into {home} (npm install)")
        _run(
            [npm, "install", "--no-audit", "--no-fund", "--ignore-scripts", "--loglevel=error"],
            what=f"npm install @portkey-ai/gateway@{version}",
            cwd=home,
        )
        (home / MARKER).write_text(version + "\n")
        progress(f"@portkey-ai/gateway {version} installed")
    installed = _package_version(package)
    node_server = _package_version(home / "node_modules" / "@hono" / "node-server")
    if installed != version:
        raise PeerUnavailable(f"{home} holds @portkey-ai/gateway {installed}, expected {version}")
    server = package / "build" / "start-server.js"
    if not server.exists():
        raise PeerUnavailable(f"{server} is missing from the installed package")
    return PortkeyInstall(
        server=server, version=installed, node_server_version=node_server, node=node
    )


def node_version() -> str | None:
    """``node --version`` without the leading v, or None without Node."""
    node = shutil.which("node")
    if node is None:
        return None
    done = subprocess.run([node, "--version"], capture_output=True, text=True, check=False)
    return done.stdout.strip().removeprefix("v") or None


def _package_version(folder: Path) -> str:
    try:
        return str(json.loads((folder / "package.json").read_text())["version"])
    except (FileNotFoundError, KeyError, json.JSONDecodeError) as exc:
        raise PeerUnavailable(f"cannot read the version in {folder}/package.json") from exc


def _run(command: list[str], *, what: str, cwd: Path | None = None) -> str:
    """Run an install step; on failure, raise with the command and its last output lines."""
    try:
        done = subprocess.run(
            command, cwd=cwd, capture_output=True, text=True, check=False, timeout=1200
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise PeerUnavailable(f"{what} failed: {exc}") from exc
    if done.returncode != 0:
        noise = ("WARNING: Location", "npm warn")
        lines = [
            line
            for line in (done.stderr + done.stdout).splitlines()
            if line.strip() and not line.startswith(noise)
        ]
        tail = "\n    ".join(lines[-8:])
        raise PeerUnavailable(
            f"{what} failed (exit {done.returncode}): {' '.join(command)}\n    {tail}"
        )
    return done.stdout
