"""Post-change hooks: argv commands run after given artifacts were rewritten, bounded by a timeout.

A hook runs in its own process group so a timeout kills everything it started; its outcome is a
plain value for the log and the status. Nothing a hook does can undo the artifact it follows.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Literal

from sslreconciler.config.desired import Hook
from sslreconciler.reconcile.report import HookResult

OUTPUT_TAIL = 400  # characters of a hook's output kept for the status


def run_hook(hook: Hook, changed: tuple[str, ...], ssl_dir: Path, default_timeout: float) -> HookResult:
    timeout = hook.timeout or default_timeout
    started = dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z")
    t0 = time.monotonic()
    env = {**os.environ, "SSLRECONCILER_CHANGED": " ".join(changed), "SSLRECONCILER_SSL_DIR": str(ssl_dir)}
    try:
        proc = subprocess.Popen(
            hook.command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    except OSError as exc:
        return HookResult(hook.label, "error", started, 0.0, None, f"cannot start: {exc.strerror}", changed)
    try:
        output, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
        tail = output.decode(errors="replace")[-OUTPUT_TAIL:]
        return HookResult(
            hook.label,
            "timeout",
            started,
            time.monotonic() - t0,
            None,
            f"killed after {timeout:g} s; {tail}".strip(),
            changed,
        )
    tail = output.decode(errors="replace")[-OUTPUT_TAIL:].strip()
    outcome: Literal["ok", "failed"] = "ok" if proc.returncode == 0 else "failed"
    return HookResult(hook.label, outcome, started, time.monotonic() - t0, proc.returncode, tail, changed)
