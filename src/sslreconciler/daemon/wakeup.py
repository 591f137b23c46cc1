"""The self-pipe that wakes the loop: watchdog's thread and the signal handlers only write a byte
here, so the one thread that writes stores is never interrupted half-way."""

from __future__ import annotations

import contextlib
import os
import select


class Wakeup:
    def __init__(self) -> None:
        self._r, self._w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)

    def wake(self) -> None:
        """Safe from any thread and from a signal handler; a full pipe already means 'wake up'."""
        with contextlib.suppress(BlockingIOError):
            os.write(self._w, b"x")

    def signal_fd(self) -> int:
        """For ``signal.set_wakeup_fd``: a signal the kernel hands to another thread still wakes the loop."""
        return self._w

    def wait(self, timeout: float) -> None:
        """Until a wake-up or ``timeout`` seconds; wake-ups that came meanwhile are used up."""
        with contextlib.suppress(InterruptedError):
            select.select([self._r], [], [], timeout)
        with contextlib.suppress(BlockingIOError):
            os.read(self._r, 4096)
