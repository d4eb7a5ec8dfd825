"""Fast checks of the bench's own logic; nothing here installs or starts a peer.

Part of the suite (tests/bench); fast: no peer is installed or started.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from bench.provider_overhead import upstream
from bench.proxy_compare.measure import latency_rate
from bench.proxy_compare.peers import PeerUnavailable, ensure_litellm
from bench.proxy_compare.procstat import busy_fractions, tree, tree_cpu_seconds, tree_memory
from bench.proxy_compare.proxies import answer_text, streamed_text
from bench.proxy_compare.report import table, verdicts


def test_the_upstreams_plain_and_streamed_answers_read_as_the_same_text() -> None:
    assert answer_text(upstream.ANSWER) == "The quick brown fox jumps."
    assert streamed_text(b"".join(upstream.STREAM)) == "The quick brown fox jumps."


def test_a_proxys_own_answer_does_not_pass_for_the_upstreams() -> None:
    other = b'data: {"choices": [{"delta": {"content": "Hello from the proxy"}}]}\n\n'
    assert streamed_text(other + b"data: [DONE]\n\n") != answer_text(upstream.ANSWER)
    with pytest.raises(ValueError):
        streamed_text(b'{"status": "failure", "message": "Something went wrong"}')


def test_latency_rate_keeps_the_asked_rate_only_with_headroom() -> None:
    assert latency_rate(200, capacity=600) == 200
    assert latency_rate(200, capacity=250) == 200
    assert latency_rate(200, capacity=70) == 35
    assert latency_rate(200, capacity=0.5) == 1


def test_compromised_litellm_releases_are_refused_before_installing(tmp_path: Path) -> None:
    for version in ("1.82.7", "1.82.8"):
        with pytest.raises(PeerUnavailable, match="compromised"):
            ensure_litellm(tmp_path, version)
    assert list(tmp_path.iterdir()) == []


def _figures(*, added_p50: float, rps: float) -> dict[str, Any]:
    def mode() -> dict[str, Any]:
        pct = {"p50": added_p50, "p95": added_p50 * 2, "p99": added_p50 * 3}
        return {
            "rate": 200,
            "failures": 0,
            "added_ms": pct,
            "added_first_byte_ms": pct,
            "saturation": {
                "requests_per_s": rps,
                "proxy_cpu_utilisation": 0.95,
                "cpu_ms_per_request": 1000 / rps,
            },
        }

    return {
        "version": "1",
        "non-streaming": mode(),
        "streaming": mode(),
        "memory_mib": {"rss": 100, "hwm": 120},
    }


def test_verdicts_compare_against_every_measured_peer() -> None:
    proxies = {
        "switchboard": _figures(added_p50=1.0, rps=500),
        "litellm": _figures(added_p50=20.0, rps=40),
        "portkey": _figures(added_p50=0.5, rps=400),
    }
    found = verdicts(proxies)
    latency = [v for v in found if "added" in v.claim]
    throughput = [v for v in found if "litellm" in v.claim and "added" not in v.claim]
    assert latency and not any(v.met for v in latency)  # portkey adds less
    assert len(throughput) == 4 and all(v.met for v in throughput)
    proxies["litellm"] = _figures(added_p50=20.0, rps=300)
    assert not any(v.met for v in verdicts(proxies) if "x litellm" in v.claim)


def test_a_skipped_peer_is_left_out_of_verdicts_and_named_in_the_table() -> None:
    proxies = {
        "switchboard": _figures(added_p50=1.0, rps=500),
        "litellm": {"skipped": "pip install failed"},
        "portkey": _figures(added_p50=3.0, rps=400),
    }
    found = verdicts(proxies)
    assert found and all(v.met for v in found)
    assert not any("litellm" in v.claim for v in found)
    assert "litellm: skipped: pip install failed" in table(proxies)


def test_process_tree_counts_children() -> None:
    script = (
        "import subprocess, sys; "
        "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(30)']).wait()"
    )
    parent = subprocess.Popen([sys.executable, "-c", script])
    try:
        for _ in range(100):
            if len(tree(parent.pid)) == 2:
                break
            time.sleep(0.05)
        members = tree(parent.pid)
        assert members[0] == parent.pid and len(members) == 2
        both = tree_memory(parent.pid)
        child_only = tree_memory(members[1])
        assert both.rss_kib > child_only.rss_kib > 0
        assert both.hwm_kib >= both.rss_kib
        assert tree_cpu_seconds(parent.pid) > 0
    finally:
        for pid in reversed(tree(parent.pid)):
            os.kill(pid, signal.SIGTERM)
        parent.wait(timeout=10)


def test_busy_fractions_per_cpu() -> None:
    before = {0: (100, 1000), 1: (0, 1000)}
    after = {0: (600, 2000), 1: (250, 2000)}
    assert busy_fractions(before, after) == {0: 0.5, 1: 0.25}
