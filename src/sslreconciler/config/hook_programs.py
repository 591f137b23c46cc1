"""A configured hook whose program is not there or cannot be run: a warning finding naming the path.

Checked whenever a reconcile reads the desired state (``observe``, so ``reconcile``, ``check`` and the
daemon's every run say it), before any hook would run. A warning, not a config error: the desired state is
valid and its stores are built and kept right; only the service the hook reloads may not pick them up,
which is what a failed hook already means (``model.status.ESCALATIONS``: a warning). Refusing the whole
desired state for it would stop the reconcile of good stores.

What is checked is what ``exec`` would find: an ``argv[0]`` with a ``/`` is that path (relative to the
daemon's working directory, ``/``), one without is searched in ``PATH``; the file must be a regular file
with an execute bit for the running user. Whether root may run it (the file root's alone) is judged when
the hook runs (``reconcile/hooks.py``), which names the fix.
"""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Sequence

from sslreconciler.config.desired_model import Hook
from sslreconciler.model.findings import Finding, FindingCode, warning


def hook_program_problem(argv0: str, path_env: str) -> str:
    """Why ``argv0`` cannot be started, or ""."""
    if "/" not in argv0:
        found = shutil.which(argv0, path=path_env)
        return "" if found is not None else f"{argv0} is not found in PATH ({path_env})"
    program = os.path.abspath(argv0)
    try:
        st = os.stat(program)
    except FileNotFoundError:
        return f"{program} does not exist"
    except OSError as exc:
        return f"{program} cannot be looked at ({exc.strerror})"
    if not stat.S_ISREG(st.st_mode):
        return f"{program} is not a regular file"
    if not os.access(program, os.X_OK):
        return f"{program} is not executable (mode {stat.S_IMODE(st.st_mode):04o})"
    return ""


def hook_program_findings(hooks: Sequence[Hook], desired_file: str) -> list[Finding]:
    """One warning per hook whose program cannot be started, naming the desired state, the hook and the path."""
    path_env = os.environ.get("PATH", os.defpath)
    out = []
    for i, hook in enumerate(hooks):
        problem = hook_program_problem(hook.command[0], path_env)
        if problem:
            text = (
                f"hooks[{i}] ({hook.label!r}): its program {problem}, so it cannot run after its artifacts change; "
                "install the program or correct the hook's command (the stores are still kept right)"
            )
            out.append(warning(desired_file, text, FindingCode.HOOK_PROGRAM))
    return out
