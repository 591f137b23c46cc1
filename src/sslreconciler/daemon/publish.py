"""What /health shows, kept current: the last reconcile's report and trigger and each hook's last
result (written by the loop, the hook worker's thread and the watch of the state dir, hence the lock),
published as one health document (daemon/document.py builds it) whenever any of them changes. A hook's
result is its latest run, the daemon's own or a one-shot's (reconcile/hook_record.py)."""

from __future__ import annotations

import datetime as dt
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sslreconciler.daemon.document import LockWait, health_document, starting_document, with_lock_wait
from sslreconciler.daemon.health import HealthState
from sslreconciler.model.findings import Finding
from sslreconciler.model.times import parse_utc
from sslreconciler.reconcile.acme_state import health_view as acme_health_view
from sslreconciler.reconcile.report import HookResult, Report

MAX_KNOWN = 1024  # hook labels whose newest run is remembered (far above any desired state's hooks)


@dataclass(frozen=True, slots=True)
class Context:
    """The rest of the document, as the daemon knows it at the moment of publishing."""

    hook_labels: frozenset[str]  # the desired state's hooks: results of hooks gone from it are dropped
    counters: dict[str, Any]
    desired_file: str
    desired_problem: str | None
    state_dir: Path  # where `acme renew` leaves its record
    uptime_s: float
    lock_wait: LockWait | None  # waiting for another writer's lock
    acme_configured: bool = True  # the desired state has an acme block: else no ACME part at all


class Publisher:
    def __init__(self, health: HealthState) -> None:
        self.health = health
        self._lock = threading.Lock()
        self._report: Report | None = None
        self._trigger = "start"
        self._hooks: dict[str, HookResult] = {}
        self._newest: dict[str, dt.datetime] = {}  # each hook's newest run known: kept when a hook goes
        self.hook_record_problem: Finding | None = None  # a one-shot's hook record that was refused

    def reconciled(self, report: Report, trigger: str) -> None:
        with self._lock:
            self._report, self._trigger = report, trigger

    def hook_done(self, result: HookResult) -> None:
        with self._lock:
            self._hooks[result.hook] = result
            self._know(result)

    def offered(self, results: list[HookResult], labels: frozenset[str]) -> list[HookResult]:
        """Take results of the configured hooks (``labels``) newer than any run known for their hook (the
        daemon's own, or one taken before): each is taken, so counted, once. Others are ignored."""
        taken = []
        with self._lock:
            for result in results:
                when = parse_utc(result.started_at)
                known = self._newest.get(result.hook)
                if result.hook in labels and when is not None and (known is None or when > known):
                    self._hooks[result.hook] = result
                    self._know(result)
                    taken.append(result)
        return taken

    def remembered(self, results: list[HookResult], labels: frozenset[str]) -> None:
        """The daemon's own record of the newest runs, read at start: shown, not counted again."""
        self.offered(results, labels)

    def newest(self) -> list[HookResult]:
        """Each hook's newest known run (what the daemon's own record keeps)."""
        with self._lock:
            return list(self._hooks.values())

    def _know(self, result: HookResult) -> None:
        when = parse_utc(result.started_at)
        if when is not None and (result.hook not in self._newest or when > self._newest[result.hook]):
            self._newest[result.hook] = when
        while len(self._newest) > MAX_KNOWN:  # bounded: forget the oldest labels first
            del self._newest[min(self._newest, key=lambda k: self._newest[k])]

    def publish(self, context: Context) -> None:
        with self._lock:
            # a hook no longer in the desired state leaves the status with its last result
            for gone in set(self._hooks) - context.hook_labels:
                del self._hooks[gone]
            report, trigger, hooks = self._report, self._trigger, dict(self._hooks)
            record_problem = self.hook_record_problem
        wait = context.lock_wait
        if report is None:
            if wait is not None:  # still starting, and the first reconcile waits for another writer
                self.health.publish(with_lock_wait(starting_document(), wait))
            return
        doc = health_document(
            report,
            trigger,
            context.counters,
            hooks,
            context.desired_file,
            context.desired_problem,
            acme_health_view(context.state_dir) if context.acme_configured else None,
            context.uptime_s,
            never_run=sorted(context.hook_labels - set(hooks)),
            extra_findings=[record_problem] if record_problem else [],
        )
        self.health.publish(doc if wait is None else with_lock_wait(doc, wait))
