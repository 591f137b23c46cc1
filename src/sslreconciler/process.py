"""Process hardening: secrets in memory never land in a core dump.

A crash (or a signal sent by whoever may signal the process) would otherwise write the heap, keys
and store passwords included, wherever ``core_pattern`` says. Opting out costs nothing.
"""

from __future__ import annotations

import contextlib
import resource

PR_SET_DUMPABLE = 4


def no_core_dumps() -> None:
    """RLIMIT_CORE 0 and not dumpable (which also keeps other users' ptrace and /proc/PID/mem out)."""
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    import ctypes  # here: `status` and --help hold no secret and skip this

    with contextlib.suppress(OSError, AttributeError, TypeError):
        try:
            libc = ctypes.CDLL("libc.so.6", use_errno=True)  # glibc; find_library would run ldconfig
        except OSError:
            import ctypes.util

            libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
