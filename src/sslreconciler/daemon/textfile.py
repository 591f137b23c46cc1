"""The ``metrics_textfile`` setting: the /metrics text, written into node_exporter's textfile directory
after every publish (a reconcile, a hook outcome), so Prometheus scrapes it through node_exporter.

The write is atomic and anchored (fsio/writes.py): a temp file in the same directory, created with mode
0644 and ``O_NOFOLLOW``, named ``.sslreconciler-<name>.<hex>.tmp`` (the collector reads only ``*.prom``,
so it never sees a partial file), fsynced, renamed over the target (a symlink there is replaced, never
written through), the directory fsynced. The directory is opened once per write; the text is the same
the socket serves (daemon/metrics.py), which holds no secret. A failure is one log line per new reason,
never an exception: the daemon goes on."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from sslreconciler.daemon.health import HealthState
from sslreconciler.daemon.logs import get_logger
from sslreconciler.daemon.metrics import render_metrics
from sslreconciler.fsio.writes import atomic_write_at

TEXTFILE_MODE = 0o644
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC


class TextfileWriter:
    """Writes the metrics text to the configured file; remembers the last failure so it is logged once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # the loop and the hook worker both publish
        self._failing: str | None = None

    def write(self, target: Path | None, health: HealthState) -> bool:
        """Write the current document's metrics to ``target`` (None: the setting is off). True when written.
        The document is taken under the lock, so of two publishing threads the later document is written last."""
        if target is None:
            return False
        with self._lock:
            data = render_metrics(health.document()).encode()
            try:
                dir_fd = os.open(target.parent, _DIR_FLAGS)
                try:
                    atomic_write_at(dir_fd, target.name, data, TEXTFILE_MODE)
                finally:
                    os.close(dir_fd)
            except OSError as exc:
                reason = f"{exc.strerror or exc}"
                if reason != self._failing:
                    get_logger().warning(
                        "cannot write the metrics textfile; Prometheus sees this node's metrics go stale. "
                        "Check that the directory exists and the daemon's user may write there "
                        "(docs/monitoring.md).",
                        file=str(target),
                        reason=reason,
                    )
                    self._failing = reason
                return False
            if self._failing is not None:
                get_logger().info("metrics textfile written again.", file=str(target))
                self._failing = None
            return True
