"""How far ahead a bundle sequence may be: a master numbers bundles max(last + 1, its clock in microseconds)
(cluster/staging.py), so no honest sequence is far beyond the present.

A sequence more than MAX_AHEAD past this machine's clock was not made by a master whose clock is right:
a forged manifest (the manifest is not signed) or a master whose clock once ran far ahead. Trusted, it
would make a node refuse every later real bundle as older, so a node refuses such a bundle, ignores such
a recorded sequence, and a staging area numbers from its clock again past such a ``last``.
"""

from __future__ import annotations

import datetime as dt
import time

MAX_AHEAD = dt.timedelta(days=1)  # clocks of a cluster's machines agree far better than this (NTP)
_MAX_AHEAD_US = MAX_AHEAD // dt.timedelta(microseconds=1)


def now_us() -> int:
    return time.time_ns() // 1000


def plausible(sequence: int, now: int | None = None) -> bool:
    """Whether ``sequence`` is one a master with a right clock could have made by now."""
    return sequence <= (now_us() if now is None else now) + _MAX_AHEAD_US


def when(sequence: int) -> str:
    """The moment a sequence stands for, for messages (never its digits alone: they say nothing)."""
    try:
        return dt.datetime.fromtimestamp(sequence / 1e6, dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    except (OverflowError, ValueError, OSError):
        return "beyond any date"
