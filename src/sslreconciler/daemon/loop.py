"""The daemon: reconcile at start, then on every relevant change, and say how things are.

One thread (the main one) reconciles; watchdog's thread and the signal handlers only poke it through
a self-pipe, so a signal can never interrupt a write half-way: SIGTERM lets the reconcile in flight
finish, then the socket is removed and the process exits 0. Hooks run on a worker thread so a slow
or hanging one never delays the next reconcile. The writer lock is only ever tried, never waited
for: while another writer holds it the loop retries every LOCK_RETRY_S, pinging the watchdog,
answering SIGTERM and saying in /health that it waits.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import select
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sslreconciler import __version__
from sslreconciler.config.desired import DesiredState, load_desired_state
from sslreconciler.config.settings import Settings, load_settings
from sslreconciler.daemon.document import LockWait, health_document, starting_document, with_lock_wait
from sslreconciler.daemon.health import HealthServer, HealthState
from sslreconciler.daemon.hook_worker import HookRunner
from sslreconciler.daemon.logs import configure as configure_logs
from sslreconciler.daemon.logs import get_logger
from sslreconciler.daemon.sdnotify import Notifier, watchdog_interval
from sslreconciler.daemon.watch import Watcher
from sslreconciler.fsio import printable_name
from sslreconciler.model.errors import ConfigError
from sslreconciler.model.findings import Finding, FindingCode, Level, error, warning
from sslreconciler.model.health_document import status_line
from sslreconciler.model.status import Status
from sslreconciler.reconcile.acme_state import health_view as acme_health_view
from sslreconciler.reconcile.memo import ReconcileCache
from sslreconciler.reconcile.reconciler import Reconciler
from sslreconciler.reconcile.report import HookResult, Report
from sslreconciler.writer_lock import WRITER_LOCK_WAIT_S

LOCK_RETRY_S = 0.25  # how often a daemon waiting for the writer lock tries it again


@dataclass
class Counters:
    reconciles: int = 0
    reconcile_errors: int = 0
    events: int = 0
    writes_by_artifact: dict[str, int] = field(default_factory=dict)
    hook_runs: dict[str, dict[str, int]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "reconciles": self.reconciles,
            "reconcile_errors": self.reconcile_errors,
            "events": self.events,
            "writes": sum(self.writes_by_artifact.values()),
            "writes_by_artifact": dict(self.writes_by_artifact),
            "hook_runs": {k: dict(v) for k, v in self.hook_runs.items()},
        }


@dataclass
class _Waiting:
    """A reconcile put off because another writer holds the lock."""

    trigger: str
    since: dt.datetime
    since_mono: float
    holder: str
    retry_at: float = 0.0
    published_at: float = 0.0
    too_long: bool = False


class Daemon:
    def __init__(self, config: Path | None, overrides: dict[str, Any]) -> None:
        self._config = config
        self._overrides = overrides
        self.settings: Settings = load_settings(config, overrides)
        self.desired: DesiredState = load_desired_state(self.settings.desired_state)
        self._desired_seen = self.settings.desired_state.exists()
        self._desired_problem: Finding | None = None
        configure_logs(self.settings.log_format, self.settings.log_level)
        self.log = get_logger()
        self.counters = Counters()
        self.reconciler = self._new_reconciler()
        self.notifier = Notifier()
        self.health = HealthState(starting_document())
        self._server: HealthServer | None = None
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._first_event: float | None = None
        self._last_event = 0.0
        self._event_reason = ""
        self._stop = False
        self._reload = False
        self._lock = threading.Lock()
        self._report: Report | None = None
        self._trigger = "start"
        self._hook_results: dict[str, HookResult] = {}
        self._last_findings: set[tuple[str, str, str, bool]] = set()
        self._started = time.monotonic()
        self._grace_deadline: float | None = None  # when young bad sources are looked at again
        self._waiting: _Waiting | None = None  # another writer holds the lock: when to try again
        self.watcher = Watcher(self.poke)
        self.hooks = HookRunner(self._hook_done)

    # -- wake-ups from other threads and signal handlers -------------------------------------------

    def _wake(self) -> None:
        with contextlib.suppress(BlockingIOError):
            os.write(self._wake_w, b"x")

    def poke(self, reason: str) -> None:
        """A relevant file event: reconcile after the quiet period."""
        now = time.monotonic()
        self.counters.events += 1
        if self._first_event is None:
            self._first_event = now
            self._event_reason = printable_name(reason)  # a name that is not UTF-8 must not break a log line
        self._last_event = now
        self._wake()

    def _on_signal(self, signum: int, _frame: object) -> None:
        if signum == signal.SIGHUP:
            self._reload = True
        else:
            self._stop = True
        self._wake()

    # -- the loop ----------------------------------------------------------------------------------

    def run(self) -> int:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, self._on_signal)
        self._server = HealthServer(self.settings.socket, self.health)
        try:
            self._server.start()
        except Exception as exc:
            self.log.error("cannot serve health", socket=str(self.settings.socket), reason=str(exc))
            return 1
        self.log.info(
            "started",
            version=__version__,
            ssl_dir=str(self.settings.ssl_dir),
            socket=str(self.settings.socket),
            desired_state=str(self.settings.desired_state),
        )
        self.watcher.configure(self.settings.ssl_dir, self.settings.desired_state, self.desired)
        self._reconcile("start")
        self.notifier.send("READY=1", self._status_line())
        try:
            self._loop()
        finally:
            self.notifier.send("STOPPING=1")
            self._server.stop()
            self.watcher.close()
            self.hooks.stop()
            self.log.info("stopped")
        return 0

    def _loop(self) -> None:
        settings = self.settings
        next_resync = time.monotonic() + settings.resync_interval
        ping_every = watchdog_interval()
        next_ping = time.monotonic() if ping_every else None
        while not self._stop:
            now = time.monotonic()
            deadlines = [next_resync]
            if self._first_event is not None:
                deadlines.append(min(self._last_event + settings.quiet_period, self._first_event + settings.max_wait))
            if next_ping is not None:
                deadlines.append(next_ping)
            if self._grace_deadline is not None:
                deadlines.append(self._grace_deadline)
            if self._waiting is not None:
                deadlines.append(self._waiting.retry_at)
            timeout = max(0.0, min(deadlines) - now)
            with contextlib.suppress(InterruptedError):
                select.select([self._wake_r], [], [], timeout)
            with contextlib.suppress(BlockingIOError):
                os.read(self._wake_r, 4096)
            now = time.monotonic()
            if self._stop:
                break
            if next_ping is not None and ping_every is not None and now >= next_ping:
                self.notifier.send("WATCHDOG=1")
                next_ping = now + ping_every
            if self._reload:
                self._reload = False
                try:
                    self._do_reload()
                except Exception as exc:  # a reload that breaks keeps the daemon on what it had
                    self.log.error("reload failed, keeping the current settings", error=repr(exc)[:400])
                    self.notifier.send("READY=1", self._status_line())
                settings = self.settings
                next_resync = time.monotonic() + settings.resync_interval
                continue
            due_event = self._first_event is not None and (
                now >= self._last_event + settings.quiet_period or now >= self._first_event + settings.max_wait
            )
            if due_event:
                reason = self._event_reason
                self._first_event = None
                self._reconcile(f"change: {reason}")
            elif now >= next_resync:
                self._reconcile("resync")
            elif self._grace_deadline is not None and now >= self._grace_deadline:
                self._reconcile("grace window ended")
            elif self._waiting is not None and now >= self._waiting.retry_at:
                self._reconcile(self._waiting.trigger)
            else:
                continue
            next_resync = time.monotonic() + settings.resync_interval

    def _do_reload(self) -> None:
        self.notifier.send("RELOADING=1", f"MONOTONIC_USEC={time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000}")
        try:
            settings = load_settings(self._config, self._overrides)
        except ConfigError as exc:
            self.log.error("reload: settings invalid, keeping the current ones", reason=str(exc))
            settings = self.settings
        if settings.socket != self.settings.socket and self._server is not None:
            # The new server first: if its path is unusable the old one keeps serving.
            server = HealthServer(settings.socket, self.health)
            try:
                server.start()
            except Exception as exc:
                self.log.error(
                    "reload: cannot serve on the new socket, keeping the current one",
                    socket=str(settings.socket),
                    reason=str(exc),
                )
                settings = settings.model_copy(update={"socket": self.settings.socket})
            else:
                self._server.stop()
                self._server = server
        self.settings = settings
        self.reconciler = self._new_reconciler(self.reconciler.memo)  # the ssl or state dir may have moved
        configure_logs(settings.log_format, settings.log_level)
        self._read_desired(explicit=True)
        self.watcher.configure(settings.ssl_dir, settings.desired_state, self.desired)
        self.log.info("reloaded")
        self._reconcile("reload (SIGHUP)")
        self.notifier.send("READY=1", self._status_line())

    def _read_desired(self, explicit: bool) -> None:
        """Re-read the desired state; on trouble keep the last valid one and say so."""
        path = self.settings.desired_state
        exists = path.exists()
        if not exists and self._desired_seen and not explicit:
            self._desired_problem = warning(
                str(path), "is gone; keeping the last one read (SIGHUP: seed defaults)", FindingCode.DESIRED_STATE
            )
            return
        try:
            desired = load_desired_state(path)
        except ConfigError as exc:
            self._desired_problem = error(
                str(path),
                f"is invalid, keeping the last valid one: {exc.reason}"
                + (f" (field {exc.field})" if exc.field else ""),
                FindingCode.DESIRED_STATE,
            )
            return
        self._desired_problem = None
        self._desired_seen = exists
        if desired != self.desired:
            self.desired = desired
            self.watcher.configure(self.settings.ssl_dir, path, desired)

    def _reconcile(self, trigger: str) -> None:
        """One reconcile; whatever goes wrong in it becomes a finding and a failed status, never an exit."""
        try:
            self._reconcile_once(trigger)
        except Exception as exc:
            self.log.error("reconcile failed unexpectedly", trigger=trigger, error=repr(exc)[:400])
            finding = error(
                str(self.settings.ssl_dir),
                f"reconcile failed unexpectedly ({type(exc).__name__})",
                FindingCode.INTERNAL,
            )
            now = dt.datetime.now(dt.UTC)
            report = Report(str(self.settings.ssl_dir), now, 0.0, [], [finding], [], internal_error=True)
            self.counters.reconciles += 1
            self.counters.reconcile_errors += 1
            with self._lock:
                self._report, self._trigger = report, trigger
            with contextlib.suppress(Exception):
                self._publish()

    def _new_reconciler(self, memo: ReconcileCache | None = None) -> Reconciler:
        """The daemon's Reconciler: the same one every command uses, kept for its memo."""
        settings = self.settings
        return Reconciler(
            settings.ssl_dir,
            settings.resolved_state_dir(),
            settings.desired_state,
            settings.grace_period,
            memo or ReconcileCache(),  # a long-running process remembers what it verified itself
        )

    def _reconcile_once(self, trigger: str) -> None:
        if trigger.startswith(("change", "resync")):
            self._read_desired(explicit=False)
        if self.watcher.needs_rewatch():
            self.watcher.rewatch()
        extra = [self._desired_problem] if self._desired_problem else []
        outcome = self.reconciler.run(self.desired, extra=extra, lock_wait_s=0)  # never waits: see _wait_for_writer
        if outcome.busy is not None:
            self._wait_for_writer(trigger, outcome.busy)
            return
        if self._waiting is not None:
            waited = time.monotonic() - self._waiting.since_mono
            self.log.info("writer lock taken, reconciling", waited_s=round(waited, 1))
            self._waiting = None
        report, recheck = outcome.report, outcome.recheck_at
        self._grace_deadline = None if recheck is None else time.monotonic() + max(0.0, recheck - time.time()) + 0.05
        self.counters.reconciles += 1
        if report.status in (Status.DEGRADED, Status.FAILED):
            self.counters.reconcile_errors += 1
        written = {a.name for a in report.artifacts if a.action == "written"}
        for name in written:
            self.counters.writes_by_artifact[name] = self.counters.writes_by_artifact.get(name, 0) + 1
        with self._lock:
            self._report, self._trigger = report, trigger
        self._log_report(report, trigger)
        for hook, changed in outcome.hooks_due:
            self.hooks.submit(hook, changed, self.settings.ssl_dir, self.settings.hook_timeout)
        self._publish()
        self.notifier.send(self._status_line())
        if outcome.state_problem:
            self.log.warning("cannot save state", reason=outcome.state_problem)

    def _wait_for_writer(self, trigger: str, holder: str) -> None:
        """Another writer holds the lock: try again soon from the loop (which keeps pinging the watchdog
        and answering signals meanwhile), and say so in /health."""
        now = time.monotonic()
        waiting = self._waiting
        if waiting is None:
            waiting = self._waiting = _Waiting(trigger, dt.datetime.now(dt.UTC), now, holder)
            self.log.warning("waiting for the writer lock", holder=holder or "unknown", trigger=trigger)
        changed = holder != waiting.holder or waiting.published_at == 0.0
        waiting.holder = holder
        if not waiting.too_long and now - waiting.since_mono >= WRITER_LOCK_WAIT_S:
            waiting.too_long = changed = True
            self.log.error(
                "still waiting for the writer lock",
                holder=holder or "unknown",
                waited_s=round(now - waiting.since_mono),
            )
        waiting.retry_at = now + LOCK_RETRY_S
        if changed or now - waiting.published_at >= 1.0:
            waiting.published_at = now
            self._publish()
            self.notifier.send(self._status_line())

    def _log_report(self, report: Report, trigger: str) -> None:
        changes = []
        for a in report.artifacts:
            if a.action != "written":
                continue
            old = a.previous.brief() if a.previous else None
            new = a.certificate.brief() if a.certificate else None
            changes.append(
                {
                    "artifact": a.name,
                    "why": a.message,
                    **({"old": old} if old else {}),
                    **({"new": new} if new and new != old else {}),
                }
            )
        links = [
            f"{link.directory}: +{len(link.added)} -{len(link.removed)}"
            for link in report.links
            if link.added or link.removed
        ]
        if changes or links:
            self.log.info(
                "reconciled: stores rewritten",
                trigger=trigger,
                status=report.status,
                changes=changes,
                hash_links=links,
                duration_ms=round(report.duration_s * 1000, 1),
            )
        current = {
            (f.level.value, f.file, f.reason, f.level is Level.ERROR and f.file in report.pending_files)
            for f in report.findings
        }
        for level, file, reason, pending in sorted(current - self._last_findings):
            log = self.log.warning if level == "warning" or pending else self.log.error
            log("finding" + (" (pending: may be a copy in progress)" if pending else ""), file=file, reason=reason)
        still = {key[:3] for key in current}
        for _level, file, reason, _pending in sorted(self._last_findings):
            if (_level, file, reason) not in still:
                self.log.info("finding cleared", file=file, reason=reason)
        self._last_findings = current

    def _hook_done(self, result: HookResult) -> None:
        by = self.counters.hook_runs.setdefault(result.hook, {})
        by[result.outcome] = by.get(result.outcome, 0) + 1
        log = self.log.info if result.outcome == "ok" else self.log.error
        log(
            "hook " + result.outcome,
            hook=result.hook,
            exit_code=result.exit_code,
            duration_ms=round(result.duration_s * 1000, 1),
            changed=list(result.changed),
            output=result.detail,
        )
        with self._lock:
            self._hook_results[result.hook] = result
        self._publish()

    # -- what the outside sees ---------------------------------------------------------------------

    def _publish(self) -> None:
        with self._lock:
            # a hook no longer in the desired state leaves the status with its last result
            current = {h.label for h in self.desired.hooks}
            for gone in set(self._hook_results) - current:
                del self._hook_results[gone]
            report, trigger, hooks = self._report, self._trigger, dict(self._hook_results)
            waiting = self._waiting
        if report is None:
            if waiting is not None:  # still starting, and the first reconcile waits for another writer
                self.health.publish(with_lock_wait(starting_document(), self._lock_wait(waiting)))
            return
        doc = health_document(
            report,
            trigger,
            self.counters.as_dict(),
            hooks,
            str(self.settings.desired_state),
            self._desired_problem.reason if self._desired_problem else None,
            acme_health_view(self.settings.resolved_state_dir()),  # the record `acme renew` left
            time.monotonic() - self._started,
        )
        self.health.publish(doc if waiting is None else with_lock_wait(doc, self._lock_wait(waiting)))

    def _lock_wait(self, waiting: _Waiting) -> LockWait:
        waited = time.monotonic() - waiting.since_mono
        return LockWait(str(self.settings.ssl_dir), waiting.since, waited, waiting.holder, waiting.trigger)

    def _status_line(self) -> str:
        return status_line(self.health.document())


def run_daemon(config: Path | None, overrides: dict[str, Any]) -> int:
    return Daemon(config, overrides).run()
