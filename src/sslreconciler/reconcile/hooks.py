"""Post-change hooks: argv commands run after given artifacts were rewritten, bounded by a timeout.

A hook runs in its own process group so a timeout kills everything it started; its outcome is a
plain value for the log and the status. Nothing a hook does can undo the artifact it follows.

Run by root, a hook's program (``argv[0]``: an absolute path, else found in PATH as exec would) is first
judged as root judges a file it reads (``rootread.judge_for_root``): the file, every directory on the
way and every link followed root's, none writable by others. Otherwise it is not run (outcome ``error``,
naming the program and the fix): a program in a directory the service user writes would be that user's
code run as uid 0. The very path judged is the one executed. The hook's arguments are not judged (a
script handed to ``/bin/sh`` is the desired state author's to keep root's): an argument is often a file
in the service user's ssl dir that the hook only reads.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import selectors
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Literal

from sslreconciler.config.desired import Hook
from sslreconciler.model.findings import SourceError
from sslreconciler.reconcile.report import HookResult
from sslreconciler.rootread import Untrusted, judge_for_root

OUTPUT_TAIL = 400  # characters of a hook's output kept for the status
FIX_PROGRAM = "install the program or correct the hook's command in the desired state."


def run_hook(hook: Hook, changed: tuple[str, ...], ssl_dir: Path, default_timeout: float) -> HookResult:
    timeout = hook.timeout or default_timeout
    started = dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z")
    t0 = time.monotonic()
    env = {**os.environ, "SSLRECONCILER_CHANGED": " ".join(changed), "SSLRECONCILER_SSL_DIR": str(ssl_dir)}
    program = None
    if os.geteuid() == 0:  # the service user's daemon runs its own programs: nothing to judge
        program, refusal = _program_for_root(hook.command[0], env)
        if refusal:
            return HookResult(hook.label, "error", started, 0.0, None, refusal, changed)
    try:
        proc = subprocess.Popen(
            hook.command,
            executable=program,  # the path judged, not a second PATH search
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    except OSError as exc:
        text = f"cannot start {program or hook.command[0]}: {exc.strerror}; {FIX_PROGRAM}"
        return HookResult(hook.label, "error", started, 0.0, None, text, changed)
    assert proc.stdout is not None
    tail, timed_out = _read_tail(proc, proc.stdout.fileno(), t0 + timeout)
    proc.stdout.close()
    if timed_out:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)  # SIGKILL: at once, unless the kernel is stuck
        said = f", its last output: {tail}" if tail else ""
        text = f"killed after {timeout:g} s (its timeout){said}; make it end sooner or raise the hook's timeout."
        return HookResult(hook.label, "timeout", started, time.monotonic() - t0, None, text, changed)
    outcome: Literal["ok", "failed"] = "ok" if proc.returncode == 0 else "failed"
    return HookResult(hook.label, outcome, started, time.monotonic() - t0, proc.returncode, tail, changed)


def _program_for_root(argv0: str, env: dict[str, str]) -> tuple[str | None, str]:
    """The absolute path of the hook's program once judged root's alone, or None and why it is not run."""
    if "/" in argv0:
        program = os.path.abspath(argv0)
    else:
        found = shutil.which(argv0, path=env.get("PATH", os.defpath))
        if found is None:
            return None, f"cannot start {argv0}: not found in PATH ({env.get('PATH', os.defpath)}); {FIX_PROGRAM}"
        program = os.path.abspath(found)
    try:
        judge_for_root(Path(program), program)
    except Untrusted as exc:
        return None, (
            f"hook program {program} not run: {exc.problem}; root runs no program another user could change. "
            f"Fix: install it root:root 0755 in a directory only root can write (e.g. install -o root -g root "
            f"-m 0755 {program} /usr/local/libexec/) and name that path in the hook."
        )
    except SourceError as exc:
        return None, f"cannot start {program}: it {exc.finding.reason}; {FIX_PROGRAM}"
    return program, ""


def _read_tail(proc: subprocess.Popen[bytes], fd: int, deadline: float) -> tuple[str, bool]:
    """Read the hook's output until it ends, keeping only the last OUTPUT_TAIL characters (a hook may
    print gigabytes), and stop at ``deadline``. The hook has ended when its process has exited: a child it
    left running in another session (``setsid cmd &``) may keep the pipe open for ever, so once the
    process is gone its output is read for at most a moment more. True when the deadline passed first."""
    kept = bytearray()
    os.set_blocking(fd, False)
    exited_at: float | None = None
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while True:
            now = time.monotonic()
            if proc.poll() is not None:
                exited_at = exited_at if exited_at is not None else now
                if now - exited_at > 0.2:
                    break
            elif now >= deadline:
                return _decoded(kept), True
            wait = min(0.05, max(0.0, deadline - now))
            if not selector.select(wait):
                continue
            try:
                chunk = os.read(fd, 65536)
            except BlockingIOError:
                continue
            if not chunk:  # EOF: everything holding the pipe is gone
                break
            kept += chunk
            del kept[: max(0, len(kept) - 4 * OUTPUT_TAIL)]  # bytes: a UTF-8 character is at most 4
    if proc.poll() is None:  # EOF before exit: it closed its output and goes on; wait, within the deadline
        try:
            proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            return _decoded(kept), True
    return _decoded(kept), False


def _decoded(kept: bytearray) -> str:
    return bytes(kept).decode(errors="replace")[-OUTPUT_TAIL:].strip()
