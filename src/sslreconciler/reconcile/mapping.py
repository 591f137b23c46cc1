"""How the pure side runs independent work: a ``Mapper`` it is handed, never a thread or process of its own.

``mapper(fn, items, via=...)`` is ``[fn(i) for i in items]``: the same results in the same order, or the
same exception. ``via`` says what the work allows: ``"threads"`` (``fn`` is thread-safe; worth it only
where ``fn`` releases the GIL, as ``cryptography``'s signature checks do) or ``"processes"`` (``fn`` is a
module-level function and every item and result is plain data that pickles). ``workers_for`` says how many
workers a map of that size would really use, so a caller can skip preparing work that would run serially.
``reconcile/parallel.py`` is the real one; ``serial_map`` (the default everywhere) runs in the caller.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal, Protocol, TypeVar

T = TypeVar("T")
R = TypeVar("R")
Via = Literal["threads", "processes"]


class Mapper(Protocol):
    def __call__(self, fn: Callable[[T], R], items: Sequence[T], /, *, via: Via) -> list[R]: ...

    def workers_for(self, n: int, via: Via) -> int: ...


class SerialMap:
    """The plain loop: what every parallel map must be indistinguishable from."""

    def __call__(self, fn: Callable[[T], R], items: Sequence[T], /, *, via: Via) -> list[R]:
        return [fn(item) for item in items]

    def workers_for(self, n: int, via: Via) -> int:
        return 1


serial_map = SerialMap()
