"""Switchboard vs LiteLLM's proxy vs Portkey's gateway, in one run, same upstream.

    .venv/bin/python -m bench.proxy_compare.run [--seconds 15] [--rate 200]
        [--only switchboard,litellm,portkey] [--concurrency 32] [--out results.json]

Each proxy in turn serves ``POST /v1/chat/completions`` pinned to CPU 0 (taskset -c 0), in
front of the same loopback upstream fake (bench.provider_overhead.upstream, served with
a 120 s keep-alive); the upstream and this load generator share CPU 1.
Measured per proxy, non-streaming and streaming (bench.proxy_compare.measure has the
method): maximum requests/s on that one core (closed loop), CPU-ms per request of the
proxy's process tree, p50/p95/p99 latency added over calling the upstream directly at a
fixed rate (open loop, interleaved with the direct calls; for streams also the first
chunk), and resident memory after load.

The peers are installed on first use into bench/proxy_compare/.peers/ (git-ignored) at
pinned versions (bench.proxy_compare.peers says which and why). Before measuring, one
plain and one streamed request through each proxy must come back with the upstream's text.
A peer that cannot be installed or started is skipped with the reason, and the others are
still measured. Results: bench/proxy_compare/results.json (figures, versions, machine) and
the tables printed at the end, with the targets of issue #8 checked.

Takes about 3 minutes per proxy with the defaults, plus a minute for the first install.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Coroutine
from importlib import metadata
from pathlib import Path
from typing import Any

from bench.provider_overhead.run import (
    HELPER_CPU,
    ROOT,
    free_port,
    start_upstream,
    wait_until_up,
)
from bench.proxy_compare.measure import Settings, measure_proxy
from bench.proxy_compare.peers import (
    LiteLLMInstall,
    PeerUnavailable,
    PortkeyInstall,
    ensure_litellm,
    ensure_portkey,
    node_version,
    progress,
)
from bench.proxy_compare.proxies import (
    RunningProxy,
    check_forwarding,
    log_tail,
    start_litellm,
    start_portkey,
    start_switchboard,
)
from bench.proxy_compare.report import table, verdict_lines, verdicts

PROXIES = ("switchboard", "litellm", "portkey")
UPSTREAM_KEEP_ALIVE_S = 120


def main() -> None:
    args = _parse_args()
    if shutil.which("taskset") is None:
        raise SystemExit("taskset (util-linux) is needed to pin each proxy to one core")
    if (os.cpu_count() or 1) < 2:
        raise SystemExit("two CPUs are needed: the proxy on CPU 0, the load on CPU 1")
    installs, skipped = _install_peers(args.only)
    load_before = _load_average()
    if load_before[0] > 0.5:
        progress(f"the machine is busy (load average {load_before[0]:.2f}): figures will be noisy")
    os.sched_setaffinity(0, {HELPER_CPU})
    up_port = free_port()
    # A long keep-alive: a slow proxy is measured at a low rate, and the direct calls that
    # take turns with it then leave the load generator's 64 pooled connections idle for
    # longer than uvicorn's default 5 s; the upstream closing them would show as failures.
    upstream = start_upstream(up_port, keep_alive_s=UPSTREAM_KEEP_ALIVE_S)
    settings = Settings(
        seconds=args.seconds,
        rate=args.rate,
        concurrency=args.concurrency,
        upstream_port=up_port,
        upstream_pid=upstream.pid,
    )
    figures: dict[str, dict[str, Any]] = {}
    try:
        wait_until_up(f"http://127.0.0.1:{up_port}/v1/models", upstream)
        for name in args.only:
            if name in skipped:
                figures[name] = {"skipped": skipped[name]}
                continue
            figures[name] = _measure_one(name, installs.get(name), settings)
    finally:
        upstream.terminate()
        upstream.wait(timeout=10)
    results = {
        "proxies": figures,
        "targets": [vars(v) for v in verdicts(figures)],
        "settings": {
            "seconds": args.seconds,
            "rate": args.rate,
            "concurrency": args.concurrency,
            "proxy_cpu": 0,
            "upstream_and_load_cpu": HELPER_CPU,
        },
        "machine": {**_machine(figures), "load_average": [load_before, _load_average()]},
    }
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print()
    print(table(figures))
    print()
    print(verdict_lines(verdicts(figures)))
    print(f"\nfull results: {args.out}")


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument(
        "--only",
        type=_proxy_list,
        default=list(PROXIES),
        help="comma-separated subset of " + ",".join(PROXIES),
    )
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("results.json"))
    return parser.parse_args()


def _proxy_list(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = sorted(set(names) - set(PROXIES))
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"choose from {','.join(PROXIES)}; got {text!r}")
    return list(dict.fromkeys(names))


def _install_peers(
    names: list[str],
) -> tuple[dict[str, LiteLLMInstall | PortkeyInstall], dict[str, str]]:
    """Install the peers asked for; the ones that fail are skipped, with the reason."""
    installs: dict[str, LiteLLMInstall | PortkeyInstall] = {}
    skipped: dict[str, str] = {}
    steps: dict[str, Callable[[], LiteLLMInstall | PortkeyInstall]] = {
        "litellm": ensure_litellm,
        "portkey": ensure_portkey,
    }
    for name in names:
        if name not in steps:
            continue
        try:
            installs[name] = steps[name]()
        except PeerUnavailable as exc:
            skipped[name] = str(exc)
            progress(f"SKIPPING {name}: {exc}")
    return installs, skipped


def _measure_one(
    name: str, install: LiteLLMInstall | PortkeyInstall | None, settings: Settings
) -> dict[str, Any]:
    """Start one proxy, check it forwards, measure it, stop it."""
    workdir = Path(tempfile.mkdtemp(prefix=f"proxy-compare-{name}-"))
    proxy: RunningProxy | None = None
    try:
        progress(f"starting {name} on CPU 0")
        proxy = _start(name, install, workdir, settings.upstream_port)
        check_forwarding(proxy)
        progress(f"{name} {proxy.version} forwards to the upstream; measuring")
        return _run_async(measure_proxy(proxy, settings))
    except (PeerUnavailable, OSError, asyncio.IncompleteReadError, ValueError) as exc:
        # OSError and the rest: the proxy broke connections or answered garbage under load.
        if name == "switchboard":
            raise SystemExit(f"switchboard failed: {exc!r}") from exc
        reason = str(exc) if isinstance(exc, PeerUnavailable) else f"failed under load: {exc!r}"
        if proxy is not None and not isinstance(exc, PeerUnavailable):
            reason += "\n" + log_tail(proxy)
        progress(f"SKIPPING {name}: {reason}")
        return {"skipped": reason}
    finally:
        if proxy is not None:
            proxy.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def _start(
    name: str, install: LiteLLMInstall | PortkeyInstall | None, workdir: Path, up_port: int
) -> RunningProxy:
    if isinstance(install, LiteLLMInstall):
        return start_litellm(install=install, workdir=workdir, upstream_port=up_port)
    if isinstance(install, PortkeyInstall):
        return start_portkey(install=install, workdir=workdir, upstream_port=up_port)
    if name != "switchboard":
        raise PeerUnavailable(f"{name} is not installed")
    return start_switchboard(workdir=workdir, upstream_port=up_port, version=_our_version())


def _run_async(coroutine: Coroutine[Any, Any, dict[str, Any]]) -> dict[str, Any]:
    """The load generator on uvloop when it is there: it is the cheaper event loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coroutine)
    return uvloop.run(coroutine)


def _our_version() -> str:
    version = metadata.version("switchboard")
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return f"{version} ({commit})" if commit else version


def _machine(figures: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return {
        "cpu_model": _cpu_model(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "node": node_version(),
        "platform": platform.platform(),
        "versions": {name: _version_line(f) for name, f in figures.items()},
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def _version_line(figures: dict[str, Any]) -> str:
    """``1.15.2 (@hono/node-server 1.13.5)``: the version and any pinned dependency."""
    if "skipped" in figures:
        return "skipped"
    pinned = {k: v for k, v in figures.items() if k.startswith("@")}
    extra = ", ".join(f"{k} {v}" for k, v in pinned.items())
    return f"{figures['version']} ({extra})" if extra else str(figures["version"])


def _load_average() -> list[float]:
    """1, 5 and 15 minute load averages: other work on this machine skews the figures."""
    return [float(v) for v in Path("/proc/loadavg").read_text().split()[:3]]


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


if __name__ == "__main__":
    main()
