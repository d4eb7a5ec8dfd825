"""Starting the three proxies pinned to one core, and proving that each really forwards.

Every proxy gets the same loopback upstream (bench.provider_overhead.upstream) and answers
``POST /v1/chat/completions``; what differs is how it is told where the upstream is:
- Switchboard: an ``openai_compatible`` provider named ``bench`` (model ``bench/bench-model``),
  started by bench.provider_overhead.run.start_gateway.
- LiteLLM: a config file whose ``bench-model`` routes to ``openai/bench-model`` at the
  upstream, one uvicorn worker, no database, telemetry off, the local cost map (the remote
  one is on the internet).
- Portkey: nothing to configure; every request names the target in headers
  (``x-portkey-provider: openai``, ``x-portkey-custom-host: http://127.0.0.1:UP/v1``).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.provider_overhead import upstream
from bench.provider_overhead.loadgen import Target
from bench.provider_overhead.run import (
    GATEWAY_CPU,
    MESSAGES,
    free_port,
    start_gateway,
    wait_until_up,
)
from bench.proxy_compare.peers import LiteLLMInstall, PeerUnavailable, PortkeyInstall

CHAT_PATH = "/v1/chat/completions"
START_TIMEOUT_S = 90.0


def chat_body(model: str, *, stream: bool) -> bytes:
    """The request measured: the same messages and options for every proxy and the upstream."""
    payload: dict[str, Any] = {"model": model, "messages": MESSAGES, "stream": stream}
    if stream:
        payload["stream_options"] = {"include_usage": True}
    return json.dumps(payload).encode()


@dataclass
class RunningProxy:
    """A started proxy: where it listens, what to send it, and its process."""

    name: str
    version: str
    process: subprocess.Popen[bytes]
    port: int
    model: str
    headers: dict[str, str]
    details: dict[str, str] = field(default_factory=dict)
    log: Path | None = None
    own_session: bool = False

    def body(self, *, stream: bool) -> bytes:
        """The request measured, with this proxy's model name."""
        return chat_body(self.model, stream=stream)

    def target(self, *, stream: bool) -> Target:
        """The load generator's view of this proxy."""
        return Target("127.0.0.1", self.port, CHAT_PATH, self.body(stream=stream), self.headers)

    def stop(self) -> None:
        """Terminate the proxy (with its workers, when it has a session of its own)."""
        self._signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self._signal(signal.SIGKILL)
            self.process.wait(timeout=5)

    def _signal(self, signum: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError):
            if self.own_session:
                os.killpg(self.process.pid, signum)
            else:
                self.process.send_signal(signum)


def start_switchboard(*, workdir: Path, upstream_port: int, version: str) -> RunningProxy:
    """Switchboard's gateway on CPU 0 with a provider pointing at the upstream."""
    port = free_port()
    process, token = start_gateway(workdir, upstream_port, port)
    return RunningProxy(
        name="switchboard",
        version=version,
        process=process,
        port=port,
        model="bench/bench-model",
        headers={"Authorization": f"Bearer {token}"},
    )


def start_litellm(*, install: LiteLLMInstall, workdir: Path, upstream_port: int) -> RunningProxy:
    """LiteLLM's proxy on CPU 0, one worker, routed to the upstream as an OpenAI endpoint."""
    port = free_port()
    master_key = "sk-" + secrets.token_hex(32)
    config = workdir / "litellm.yaml"
    config.write_text(
        f"""model_list:
  - model_name: bench-model
    litellm_params:
      model: openai/bench-model
      api_base: http://127.0.0.1:{upstream_port}/v1
      api_key: dummy
litellm_settings:
  telemetry: false
  set_verbose: false
general_settings:
  master_key: {master_key}
"""
    )
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env |= {"LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_LOG": "WARNING"}
    command = [str(install.cli), "--config", str(config), "--port", str(port)]
    # A long keep-alive: at the low rate LiteLLM is measured at, each of the load
    # generator's 64 pooled connections sits idle longer than uvicorn's default 5 s, and a
    # connection closed by the server mid-measurement would read as a failure.
    command += ["--num_workers", "1", "--keepalive_timeout", "120"]
    process, log = _spawn(command, workdir=workdir, name="litellm", env=env)
    proxy = RunningProxy(
        name="litellm",
        version=install.version,
        process=process,
        port=port,
        model="bench-model",
        headers={"Authorization": f"Bearer {master_key}"},
        log=log,
        own_session=True,
    )
    _wait_up(proxy, "/health/liveliness")
    return proxy


def start_portkey(*, install: PortkeyInstall, workdir: Path, upstream_port: int) -> RunningProxy:
    """Portkey's gateway on CPU 0 (headless: no console UI, no log stream)."""
    port = free_port()
    command = [install.node, str(install.server), f"--port={port}", "--headless"]
    process, log = _spawn(command, workdir=workdir, name="portkey", env=dict(os.environ))
    proxy = RunningProxy(
        name="portkey",
        version=install.version,
        process=process,
        port=port,
        model="bench-model",
        headers={
            "Authorization": "Bearer dummy",
            "x-portkey-provider": "openai",
            "x-portkey-custom-host": f"http://127.0.0.1:{upstream_port}/v1",
        },
        details={"@hono/node-server": install.node_server_version},
        log=log,
        own_session=True,
    )
    _wait_up(proxy, "/")
    return proxy


def check_forwarding(proxy: RunningProxy) -> None:
    """One plain and one streamed request through ``proxy`` must carry the upstream's text."""
    expected = answer_text(upstream.ANSWER)
    url = f"http://127.0.0.1:{proxy.port}{CHAT_PATH}"
    headers = {**proxy.headers, "Content-Type": "application/json"}
    with httpx.Client(timeout=30) as client:
        for stream in (False, True):
            reply = client.post(url, content=proxy.body(stream=stream), headers=headers)
            kind = "streamed" if stream else "plain"
            try:
                text = streamed_text(reply.content) if stream else answer_text(reply.content)
            except (ValueError, KeyError, IndexError, TypeError) as exc:
                raise PeerUnavailable(
                    f"{proxy.name}: {kind} answer is not a chat completion "
                    f"(HTTP {reply.status_code}): {reply.text[:300]}"
                ) from exc
            if reply.status_code != 200 or text != expected:
                raise PeerUnavailable(
                    f"{proxy.name} does not forward to the upstream: {kind} answer "
                    f"HTTP {reply.status_code}, text {text!r}, expected {expected!r}"
                )


def answer_text(body: bytes) -> str:
    """The assistant text of a non-streamed chat completion."""
    return str(json.loads(body)["choices"][0]["message"]["content"])


def streamed_text(body: bytes) -> str:
    """The assistant text of a streamed chat completion (server-sent events)."""
    pieces: list[str] = []
    events = 0
    for line in body.decode().splitlines():
        if not line.startswith("data:"):
            continue
        data = line.removeprefix("data:").strip()
        if data == "[DONE]":
            break
        events += 1
        for choice in json.loads(data).get("choices", []):
            pieces.append(choice.get("delta", {}).get("content") or "")
    if not events:
        raise ValueError("no server-sent events in the answer")
    return "".join(pieces)


def log_tail(proxy: RunningProxy, lines: int = 15) -> str:
    """The last lines a proxy printed, for error messages."""
    if proxy.log is None or not proxy.log.exists():
        return ""
    text = re.sub(r"\x1b\[[0-9;]*m", "", proxy.log.read_text(errors="replace"))
    return "\n".join([line for line in text.splitlines() if line.strip()][-lines:])


def _spawn(
    command: list[str], *, workdir: Path, name: str, env: dict[str, str]
) -> tuple[subprocess.Popen[bytes], Path]:
    """Start ``command`` on CPU 0 in its own process group, output to a log file."""
    log = workdir / f"{name}.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            ["taskset", "-c", str(GATEWAY_CPU), *command],
            cwd=workdir,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    return process, log


def _wait_up(proxy: RunningProxy, path: str) -> None:
    """Wait for the proxy to answer HTTP; its start-up is slow on one core (LiteLLM ~15 s)."""
    url = f"http://127.0.0.1:{proxy.port}{path}"
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        try:
            wait_until_up(url, proxy.process)
            return
        except SystemExit as exc:  # wait_until_up's way of saying "exited" or "not yet"
            if proxy.process.poll() is not None or time.monotonic() > deadline:
                proxy.stop()
                raise PeerUnavailable(f"{proxy.name}: {exc}\n{log_tail(proxy)}") from exc
