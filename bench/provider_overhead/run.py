"""Latency the gateway adds to POST /api/chat/multi, and its throughput on one core.

    .venv/bin/python -m bench.provider_overhead.run [--seconds 15] [--rate 200]
        [--api openai]   # POST /v1/chat/completions instead (model "bench/bench-model")

The gateway runs pinned to CPU 0; the upstream fake and this load generator share CPU 1.
Added latency = percentile through the gateway minus the same percentile direct to the
upstream, both at a fixed request rate (open loop), taking turns every half second so that
both see the same background load. Saturation: closed loop with many
connections, requests/s and CPU-ms per request of the gateway process.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from bench.provider_overhead.loadgen import Sample, Target, interleaved, saturate

ROOT = Path(__file__).resolve().parents[2]
GATEWAY_CPU, HELPER_CPU = 0, 1
MESSAGES = [{"role": "user", "content": "Say something short."}]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def start_upstream(port: int, *, keep_alive_s: int = 5) -> subprocess.Popen[bytes]:
    """The upstream fake on ``port``, pinned to the helper CPU."""
    return subprocess.Popen(
        [
            "taskset",
            "-c",
            str(HELPER_CPU),
            sys.executable,
            "-m",
            "bench.provider_overhead.upstream",
            str(port),
            str(keep_alive_s),
        ],
        cwd=ROOT,
    )


def wait_until_up(url: str, process: subprocess.Popen[bytes]) -> None:
    for _ in range(200):
        if process.poll() is not None:
            raise SystemExit(f"{url} exited with {process.returncode}")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise SystemExit(f"{url} did not come up")


def percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    cut = statistics.quantiles(ordered, n=100, method="inclusive")
    return {"p50": cut[49] * 1000, "p95": cut[94] * 1000, "p99": cut[98] * 1000}


def start_gateway(
    workdir: Path, upstream_port: int, port: int
) -> tuple[subprocess.Popen[bytes], str]:
    python = sys.executable
    subprocess.run(
        [python, "-m", "gateway", "init", "--dir", str(workdir)], check=True, capture_output=True
    )
    config = workdir / "switchboard.toml"
    text = (
        config.read_text().replace("default = true\n", "").replace("port = 8080", f"port = {port}")
    )
    text += f"""
[providers.bench]
type = "openai_compatible"
base_url = "http://127.0.0.1:{upstream_port}/v1"
default_model = "bench-model"
default = true
max_concurrency = 10000
"""
    config.write_text(text.replace("[gateway]\n", '[gateway]\nlog_level = "warning"\n'))
    subprocess.run(
        [python, "-m", "gateway", "migrate", "--config", str(config)],
        check=True,
        capture_output=True,
    )
    process = subprocess.Popen(
        [
            "taskset",
            "-c",
            str(GATEWAY_CPU),
            python,
            "-m",
            "gateway",
            "run",
            "--config",
            str(config),
        ],
        cwd=ROOT,
    )
    wait_until_up(f"http://127.0.0.1:{port}/healthz", process)
    token = (workdir / "data" / "admin.token").read_text().strip()
    return process, token


async def measure(
    args: argparse.Namespace, *, gw_port: int, up_port: int, token: str, pid: int
) -> dict[str, object]:
    results: dict[str, object] = {}
    for stream in (False, True):
        kind = "streaming" if stream else "non-streaming"
        direct = Target(
            "127.0.0.1",
            up_port,
            "/v1/chat/completions",
            json.dumps({"model": "bench-model", "messages": MESSAGES, "stream": stream}).encode(),
        )
        via = Target(
            "127.0.0.1",
            gw_port,
            *_via(args.api, stream=stream),
            {"Authorization": f"Bearer {token}"},
        )
        await interleaved([direct, via], rate=args.rate, seconds=2)  # warm-up
        direct_samples, via_samples = await interleaved(
            [direct, via], rate=args.rate, seconds=args.seconds
        )
        failures = sum(1 for s in via_samples if s.status != 200)
        results[kind] = {
            "rate": args.rate,
            "requests": len(via_samples),
            "failures": failures,
            "direct_ms": percentiles([s.total for s in direct_samples]),
            "gateway_ms": percentiles([s.total for s in via_samples]),
            "added_ms": _added(direct_samples, via_samples, "total"),
            "added_first_byte_ms": _added(direct_samples, via_samples, "first_byte"),
        }
        before = cpu_seconds(pid)
        done, elapsed = await saturate(via, concurrency=args.concurrency, seconds=args.seconds)
        cpu = cpu_seconds(pid) - before
        results[kind]["saturation"] = {  # type: ignore[index]
            "concurrency": args.concurrency,
            "requests_per_s": done / elapsed,
            "cpu_ms_per_request": cpu * 1000 / max(done, 1),
            "cpu_utilisation": cpu / elapsed,
        }
    return results


def _via(api: str, *, stream: bool) -> tuple[str, bytes]:
    """The gateway route and body measured: ``/api/chat/multi`` or ``/v1/chat/completions``."""
    if api == "openai":
        body = {"model": "bench/bench-model", "messages": MESSAGES, "stream": stream}
        if stream:
            body["stream_options"] = {"include_usage": True}
        return "/v1/chat/completions", json.dumps(body).encode()
    return "/api/chat/multi", json.dumps({"messages": MESSAGES, "stream": stream}).encode()


def _added(direct: list[Sample], via: list[Sample], attr: str) -> dict[str, float]:
    d = percentiles([getattr(s, attr) for s in direct])
    v = percentiles([getattr(s, attr) for s in via])
    return {k: v[k] - d[k] for k in d}


def report(results: dict[str, object]) -> str:
    lines = [
        "| mode | added p50 | added p95 | added p99 | added first byte p50 "
        "| req/s on one core | CPU-ms/request |",
        "|---|---|---|---|---|---|---|",
    ]
    for kind, data in results.items():
        if not isinstance(data, dict) or "added_ms" not in data:
            continue
        added, first, sat = data["added_ms"], data["added_first_byte_ms"], data["saturation"]
        lines.append(
            f"| {kind} | {added['p50']:.2f} ms | {added['p95']:.2f} ms | {added['p99']:.2f} ms "
            f"| {first['p50']:.2f} ms | {sat['requests_per_s']:.0f} "
            f"| {sat['cpu_ms_per_request']:.2f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--api", choices=["multi", "openai"], default="multi")
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("results.json"))
    args = parser.parse_args()
    if shutil.which("taskset") is None:
        raise SystemExit("taskset (util-linux) is needed to pin the gateway to one core")
    os.sched_setaffinity(0, {HELPER_CPU})
    up_port, gw_port = free_port(), free_port()
    upstream = start_upstream(up_port)
    workdir = Path(tempfile.mkdtemp(prefix="sb-bench-"))
    gateway = None
    try:
        wait_until_up(f"http://127.0.0.1:{up_port}/v1/models", upstream)
        gateway, token = start_gateway(workdir, up_port, gw_port)
        try:
            import uvloop

            runner = uvloop.run
        except ImportError:
            runner = asyncio.run
        results = runner(
            measure(args, gw_port=gw_port, up_port=up_port, token=token, pid=gateway.pid)
        )
        results["machine"] = {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "date": time.strftime("%Y-%m-%d"),
        }
        args.out.write_text(json.dumps(results, indent=2) + "\n")
        print(report(results))
        print(f"\nfull results: {args.out}")
    finally:
        for process in (gateway, upstream):
            if process is not None:
                process.terminate()
                process.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
