"""The desired state the daemon works to: re-read on a change, a resync or SIGHUP; on trouble the
last valid one is kept and the trouble becomes a finding (``problem``) in every report."""

from __future__ import annotations

from pathlib import Path

from sslreconciler.config.desired import DesiredState, load_desired_state
from sslreconciler.model.errors import ConfigError
from sslreconciler.model.findings import Finding, FindingCode, error, warning


class DesiredStateFile:
    def __init__(self, path: Path) -> None:
        self.desired: DesiredState = load_desired_state(path)  # at start, trouble is fatal
        self._seen = path.exists()
        self.problem: Finding | None = None

    def read(self, path: Path, explicit: bool) -> bool:
        """Re-read ``path`` (it moves with a reload); True when the desired state changed. A file that
        is gone keeps the last one read, unless the re-read is ``explicit`` (SIGHUP: the seed defaults)."""
        exists = path.exists()
        if not exists and self._seen and not explicit:
            self.problem = warning(
                str(path), "is gone; keeping the last one read (SIGHUP: seed defaults)", FindingCode.DESIRED_STATE
            )
            return False
        try:
            desired = load_desired_state(path)
        except ConfigError as exc:
            self.problem = error(
                str(path),
                f"is invalid, keeping the last valid one: {exc.reason}"
                + (f" (field {exc.field})" if exc.field else ""),
                FindingCode.DESIRED_STATE,
            )
            return False
        self.problem = None
        self._seen = exists
        if desired == self.desired:
            return False
        self.desired = desired
        return True
