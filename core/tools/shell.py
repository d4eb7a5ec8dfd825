"""``shell`` (critical): run one allowlisted command, as an argv list, never through a shell.

The model sends ``argv`` (a list of strings). Nothing interprets it: there are no pipes,
``;``, ``&&``, ``$(...)``, variables, globbing or redirection; each element reaches the
program as one literal argument. The safeguards, in order:

* the first word must be on ``tools.shell.allow`` *exactly*: a bare name (``ls``) is
  looked up on the tool's own fixed ``PATH``; a path (``/bin/rm``, ``../ls``) is refused
  unless that very path is an allowlist entry; no element may contain a NUL;
* the command runs with ``asyncio.create_subprocess_exec`` (no shell), stdin from
  ``/dev/null``, in ``workdir`` (default: one private temporary directory per gateway
  process, never the gateway's own working directory);
* its environment is only ``PATH``, ``LANG`` and ``HOME=workdir``: none of the gateway's
  variables (API keys, tokens, the vault passphrase) is passed on;
* it runs in a new session; on timeout the whole process group is killed, children and
  grandchildren too, and so is anything it left running after a normal exit;
* stdout and stderr are read incrementally and each kept up to ``max_output_bytes``; the
  rest is read and dropped, so a chatty command neither blocks on a full pipe nor fills
  the gateway's memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import shlex
import shutil
import signal
import tempfile
from collections.abc import Mapping, Sequence
from typing import Any

from core.config import ShellTool
from core.errors import ToolError
from core.types import SecurityLevel, ToolContext

MAX_ARGS = 64
MAX_ARG_CHARS = 4096
LANG = "C.UTF-8"
# After the command exits (or is killed), how long its pipes may still take to reach EOF.
_DRAIN_GRACE_S = 2.0
# How often to look whether the command has exited (see _exited).
_EXIT_POLL_S = 0.02
_READ_CHUNK = 64 * 1024


@functools.cache
def default_workdir() -> str:
    """The per-process working directory (mode 0700), created on first use, not at import.

    One per process rather than per tool instance, so files a command wrote are still
    there after a config reload rebuilds the tools.
    """
    return tempfile.mkdtemp(prefix="switchboard-shell-")


class Shell:
    """Runs an allowlisted command with literal arguments and reports its output."""

    name = "shell"
    parameters: Mapping[str, Any] = {
        "type": "object",
        "properties": {
            "argv": {
                "type": "array",
                "minItems": 1,
                "maxItems": MAX_ARGS,
                "items": {"type": "string", "maxLength": MAX_ARG_CHARS},
                "description": "the command and its arguments, one element per argument",
            }
        },
        "required": ["argv"],
        "additionalProperties": False,
    }
    level = SecurityLevel.CRITICAL

    def __init__(self, settings: ShellTool) -> None:
        self._settings = settings
        allowed = ", ".join(settings.allow) or "none"
        self.description = (
            "Run one command on the gateway host, given as an argv list, e.g. "
            '["ls", "-l"]. There is no shell: pipes, ;, &&, $(...), variables, globs and '
            "redirection do not work, every element is one literal argument. "
            f"Allowed commands: {allowed}. Each call waits for a human approval."
        )

    async def run(self, arguments: Mapping[str, Any], *, context: ToolContext) -> str:
        """Run the command; refusals raise ``ToolError``, a failing command is a result."""
        argv = [str(word) for word in arguments["argv"]]
        if not argv:
            raise self._error("arguments.argv: must not be empty")
        if any("\x00" in word for word in argv):
            raise self._error("arguments.argv: an argument contains a NUL character")
        executable = _resolve(argv[0], allow=self._settings.allow, path=self._settings.path)
        if isinstance(executable, ToolError):
            raise executable
        workdir = self._workdir()
        env = {"PATH": self._settings.path, "LANG": LANG, "HOME": workdir}
        try:
            process = await asyncio.create_subprocess_exec(
                executable,
                *argv[1:],
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                cwd=workdir,
                env=env,
                # Its own process group, so a timeout can kill everything it started.
                start_new_session=True,
            )
        except OSError as exc:
            raise self._error(f"cannot start {argv[0]!r}: {exc.strerror or exc}") from None
        return await self._supervise(process, argv)

    async def _supervise(self, process: asyncio.subprocess.Process, argv: list[str]) -> str:
        cap = self._settings.max_output_bytes
        stdout, stderr = _Capture(cap), _Capture(cap)
        assert process.stdout is not None and process.stderr is not None  # noqa: S101 - PIPE
        readers = [
            asyncio.create_task(stdout.drain(process.stdout)),
            asyncio.create_task(stderr.drain(process.stderr)),
        ]
        timed_out = False
        try:
            try:
                async with asyncio.timeout(self._settings.timeout_s):
                    await _exited(process)
            except TimeoutError:
                timed_out = True
            finally:
                # On timeout, on cancellation, and after a normal exit too: nothing it
                # started in the background may outlive the call.
                _kill_group(process.pid)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(_DRAIN_GRACE_S):
                    await _exited(process)  # SIGKILL is not ignored: this is quick
            # A process that left the group (setsid) could hold the pipes open forever.
            await asyncio.wait(readers, timeout=_DRAIN_GRACE_S)
        finally:
            for reader in readers:
                reader.cancel()
            await asyncio.gather(*readers, return_exceptions=True)
        return _report(
            argv,
            returncode=process.returncode,
            timed_out=timed_out,
            timeout_s=self._settings.timeout_s,
            stdout=stdout,
            stderr=stderr,
        )

    def _workdir(self) -> str:
        configured = self._settings.workdir
        if configured is None:
            return default_workdir()
        workdir = os.path.abspath(configured)
        if not os.path.isdir(workdir):
            raise self._error(f"tools.shell.workdir {workdir!r} is not a directory")
        return workdir

    def _error(self, problem: str) -> ToolError:
        return ToolError(f"shell: {problem}", tool=self.name)


class _Capture:
    """Keeps the first ``limit`` bytes of a stream and counts the rest."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.data = bytearray()
        self.dropped = 0

    async def drain(self, stream: asyncio.StreamReader) -> None:
        # Read to EOF even past the cap: a child blocked on a full pipe would never exit.
        while chunk := await stream.read(_READ_CHUNK):
            room = max(self.limit - len(self.data), 0)
            self.data += chunk[:room]
            self.dropped += len(chunk) - min(room, len(chunk))

    def text(self) -> str:
        shown = self.data.decode("utf-8", errors="replace").rstrip("\n") or "(empty)"
        if self.dropped:
            shown += f"\n[truncated {self.dropped} bytes]"
        return shown


def _resolve(command: str, *, allow: Sequence[str], path: str) -> str | ToolError:
    """The program to execute for ``command``, or the refusal (sync: a few stat calls)."""
    allowed = ", ".join(allow) or "none (set tools.shell.allow)"
    if "/" in command:
        # A path runs exactly that file, so only the identical path may be allowed.
        if command in allow:
            return command
        return ToolError(
            f"shell: {command!r} refused: give a bare command name on the allowlist "
            f"(allowed: {allowed})",
            tool="shell",
        )
    if command not in allow:
        return ToolError(
            f"shell: command {command!r} is not on the allowlist (allowed: {allowed})",
            tool="shell",
        )
    found = shutil.which(command, path=path)
    if found is None:
        return ToolError(
            f"shell: {command!r} is allowed but not installed on PATH ({path})", tool="shell"
        )
    return found


async def _exited(process: asyncio.subprocess.Process) -> None:
    """Return once the command itself has exited.

    Not ``Process.wait()``: that also waits for stdout and stderr to close, which a
    background child holding the pipes would delay until the timeout. ``returncode`` is
    set as soon as the command is reaped.
    """
    while process.returncode is None:  # noqa: ASYNC110 - no event exists for this
        await asyncio.sleep(_EXIT_POLL_S)


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass  # the group is empty: everything already exited


def _report(
    argv: list[str],
    *,
    returncode: int | None,
    timed_out: bool,
    timeout_s: float,
    stdout: _Capture,
    stderr: _Capture,
) -> str:
    if timed_out:
        status = f"timed out after {timeout_s:g} s: the command and its children were killed"
    elif returncode is not None and returncode < 0:
        status = f"exit code: {returncode} (killed by {_signal_name(-returncode)})"
    else:
        status = f"exit code: {returncode}"
    return "\n".join(
        [
            f"$ {shlex.join(argv)}",
            status,
            "--- stdout ---",
            stdout.text(),
            "--- stderr ---",
            stderr.text(),
        ]
    )


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"
