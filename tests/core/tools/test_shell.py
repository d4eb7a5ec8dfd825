"""shell: real processes, no shell, allowlist, timeouts that kill the whole group, caps."""

from __future__ import annotations

import os
import stat
import sys
import time
from pathlib import Path

import pytest

from core.config import ShellTool
from core.errors import ToolError
from core.tools import Shell
from core.tools.shell import default_workdir
from core.types import ToolContext


def shell(*allow: str, **settings: object) -> Shell:
    return Shell(ShellTool.model_validate({"enabled": True, "allow": allow, **settings}))


def stdout_of(result: str) -> str:
    return result.split("--- stdout ---\n", 1)[1].split("\n--- stderr ---", 1)[0]


def python_script(path: Path, body: str) -> str:
    """An executable script run by this interpreter (a shebang, no shell involved)."""
    path.write_text(f"#!{sys.executable}\n{body}")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def is_gone(pid: int) -> bool:
    """Dead: no such process, or a zombie waiting for a parent that will reap it."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    return state in ("Z", "X")


def wait_gone(pid: int, seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if is_gone(pid):
            return True
        time.sleep(0.05)
    return is_gone(pid)


async def test_an_allowlisted_command_runs(context: ToolContext) -> None:
    result = await shell("echo").run({"argv": ["echo", "hello", "world"]}, context=context)
    assert result == (
        "$ echo hello world\nexit code: 0\n--- stdout ---\nhello world\n--- stderr ---\n(empty)"
    )


async def test_ls_runs_in_the_workdir(tmp_path: Path, context: ToolContext) -> None:
    (tmp_path / "report.txt").write_text("x")
    result = await shell("ls", workdir=str(tmp_path)).run({"argv": ["ls"]}, context=context)
    assert stdout_of(result) == "report.txt"


async def test_shell_syntax_is_passed_literally(tmp_path: Path, context: ToolContext) -> None:
    (tmp_path / "file-a").write_text("")
    words = ["a;b", "$(id)", "`id`", "*", "|", "cat", "&&", "rm", "-rf", ">out", "$HOME", "~"]
    tool = shell("echo", workdir=str(tmp_path))
    result = await tool.run({"argv": ["echo", *words]}, context=context)
    # No substitution, no glob expansion (file-a is not listed), no redirection (no "out").
    assert stdout_of(result) == " ".join(words)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["file-a"]


async def test_a_command_off_the_allowlist_is_refused(context: ToolContext) -> None:
    with pytest.raises(ToolError) as caught:
        await shell("ls", "df").run({"argv": ["rm", "-rf", "/"]}, context=context)
    assert str(caught.value) == "shell: command 'rm' is not on the allowlist (allowed: ls, df)"
    assert caught.value.tool == "shell"


async def test_nothing_is_allowed_by_default(context: ToolContext) -> None:
    with pytest.raises(ToolError, match=r"allowed: none \(set tools.shell.allow\)"):
        await shell().run({"argv": ["ls"]}, context=context)


@pytest.mark.parametrize("command", ["/bin/echo", "/usr/bin/echo", "./echo", "../echo", "x/echo"])
async def test_paths_to_an_allowed_name_are_refused(command: str, context: ToolContext) -> None:
    with pytest.raises(ToolError, match="refused: give a bare command name"):
        await shell("echo").run({"argv": [command, "hi"]}, context=context)


@pytest.mark.parametrize("command", ["echo ", " echo", "ECHO", "echo\t"])
async def test_the_first_word_must_match_exactly(command: str, context: ToolContext) -> None:
    with pytest.raises(ToolError, match="is not on the allowlist"):
        await shell("echo").run({"argv": [command]}, context=context)


async def test_an_exact_path_entry_allows_that_path_only(context: ToolContext) -> None:
    echo = "/bin/echo"
    tool = shell(echo)
    assert stdout_of(await tool.run({"argv": [echo, "pinned"]}, context=context)) == "pinned"
    with pytest.raises(ToolError, match="not on the allowlist"):
        await tool.run({"argv": ["echo", "bare"]}, context=context)


async def test_a_nul_anywhere_is_refused(context: ToolContext) -> None:
    with pytest.raises(ToolError, match="contains a NUL"):
        await shell("echo").run({"argv": ["echo", "a\x00b"]}, context=context)


async def test_an_allowed_but_missing_command_is_reported(context: ToolContext) -> None:
    with pytest.raises(ToolError, match="'no-such-tool-here' is allowed but not installed"):
        await shell("no-such-tool-here").run({"argv": ["no-such-tool-here"]}, context=context)


async def test_a_failing_command_reports_its_exit_code_and_stderr(context: ToolContext) -> None:
    result = await shell("ls").run({"argv": ["ls", "/definitely/not/here"]}, context=context)
    assert "\nexit code: 2\n" in result
    assert "No such file or directory" in result.split("--- stderr ---\n", 1)[1]


async def test_stdin_is_empty(context: ToolContext) -> None:
    # cat with no file reads stdin: from a terminal or pipe it would wait forever.
    result = await shell("cat", timeout_s=10).run({"argv": ["cat"]}, context=context)
    assert "exit code: 0" in result


async def test_a_timeout_kills_the_command_and_its_grandchildren(
    tmp_path: Path, context: ToolContext
) -> None:
    pids = tmp_path / "pids"
    script = python_script(
        tmp_path / "spawner.py",
        "import os, subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(30)'])\n"
        f"open({str(pids)!r}, 'w').write(f'{{os.getpid()}} {{child.pid}}')\n"
        "time.sleep(30)\n",
    )
    started = time.monotonic()
    result = await shell(script, timeout_s=1.5).run({"argv": [script]}, context=context)
    assert time.monotonic() - started < 10
    assert "timed out after 1.5 s: the command and its children were killed" in result
    parent, grandchild = (int(pid) for pid in pids.read_text().split())
    assert wait_gone(parent)
    assert wait_gone(grandchild)


async def test_background_leftovers_are_killed_after_a_normal_exit(
    tmp_path: Path, context: ToolContext
) -> None:
    pid_file = tmp_path / "pid"
    script = python_script(
        tmp_path / "daemonish.py",
        "import subprocess, sys\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(30)'])\n"
        f"open({str(pid_file)!r}, 'w').write(str(child.pid))\n"
        "print('started')\n",
    )
    started = time.monotonic()
    result = await shell(script, timeout_s=20).run({"argv": [script]}, context=context)
    assert time.monotonic() - started < 10  # did not wait for the child's pipe to close
    assert "exit code: 0" in result
    assert stdout_of(result) == "started"
    assert wait_gone(int(pid_file.read_text()))


async def test_output_is_capped_per_stream(context: ToolContext) -> None:
    full = "".join(f"{number}\n" for number in range(1, 100_001))
    result = await shell("seq", max_output_bytes=100).run(
        {"argv": ["seq", "1", "100000"]}, context=context
    )
    kept, note = stdout_of(result).rsplit("\n", 1)
    assert kept == full[:100].rstrip("\n")
    assert note == f"[truncated {len(full) - 100} bytes]"
    assert "exit code: 0" in result  # drained to the end: seq was never blocked


async def test_the_gateways_environment_is_not_passed_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, context: ToolContext
) -> None:
    monkeypatch.setenv("SWITCHBOARD_TEST_SECRET", "hunter2-do-not-leak")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-for-children")
    tool = shell("env", workdir=str(tmp_path), path="/usr/bin:/bin")
    result = await tool.run({"argv": ["env"]}, context=context)
    assert "hunter2" not in result
    assert "sk-test" not in result
    assert sorted(stdout_of(result).splitlines()) == [
        f"HOME={tmp_path}",
        "LANG=C.UTF-8",
        "PATH=/usr/bin:/bin",
    ]


async def test_the_configured_workdir_is_the_current_directory(
    tmp_path: Path, context: ToolContext
) -> None:
    result = await shell("pwd", workdir=str(tmp_path)).run({"argv": ["pwd"]}, context=context)
    assert stdout_of(result) == str(tmp_path)


async def test_the_default_workdir_is_private_and_not_the_gateways(context: ToolContext) -> None:
    result = await shell("pwd").run({"argv": ["pwd"]}, context=context)
    workdir = stdout_of(result)
    assert workdir == default_workdir()
    assert workdir != os.getcwd()
    assert stat.S_IMODE(os.stat(workdir).st_mode) == 0o700


async def test_a_missing_workdir_is_reported(tmp_path: Path, context: ToolContext) -> None:
    missing = tmp_path / "gone"
    with pytest.raises(ToolError, match=f"tools.shell.workdir '{missing}' is not a directory"):
        await shell("pwd", workdir=str(missing)).run({"argv": ["pwd"]}, context=context)


async def test_a_command_killed_by_a_signal_says_so(tmp_path: Path, context: ToolContext) -> None:
    script = python_script(tmp_path / "suicide.py", "import os, signal\nos.kill(os.getpid(), 15)\n")
    result = await shell(script).run({"argv": [script]}, context=context)
    assert "exit code: -15 (killed by SIGTERM)" in result
