"""The daemon: reconcile at start, then on every relevant change, and say how things are.

This module is the wiring: wait until the scheduler's next deadline (daemon/schedule.py) or a
wake-up, ask it what is due, do that. One thread (the main one) reconciles; watchdog's thread and
the signal handlers only poke it through a self-pipe, so a signal can never interrupt a write
half-way: SIGTERM lets the reconcile in flight finish, then the socket is removed and the process
exits 0. Hooks run on a worker thread so a slow or hanging one never delays the next reconcile. The
writer lock is only ever tried, never waited for (daemon/writer_wait.py).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import signal
import time
from pathlib import Path
from typing import Any

from sslreconciler import __version__
from sslreconciler.config.settings import Settings, load_settings
from sslreconciler.daemon.counters import Counters
from sslreconciler.daemon.desired import DesiredStateFile
from sslreconciler.daemon.document import starting_document
from sslreconciler.daemon.health import HealthServer, HealthState
from sslreconciler.daemon.hook_worker import HookRunner
from sslreconciler.daemon.logs import configure as configure_logs
from sslreconciler.daemon.logs import get_logger
from sslreconciler.daemon.publish import Context, Publisher
from sslreconciler.daemon.reconciling import Reconciling
from sslreconciler.daemon.reload import reload_settings
from sslreconciler.daemon.report_log import ReportLog
from sslreconciler.daemon.schedule import Timers, Timing, Trigger, due, next_deadline
from sslreconciler.daemon.sdnotify import Notifier, watchdog_interval
from sslreconciler.daemon.state_news import StateNews
from sslreconciler.daemon.textfile import TextfileWriter
from sslreconciler.daemon.wakeup import Wakeup
from sslreconciler.daemon.watch import Watcher
from sslreconciler.daemon.writer_wait import WriterWait
from sslreconciler.fsio import printable_name
from sslreconciler.model.findings import FindingCode, error
from sslreconciler.model.health_document import status_line
from sslreconciler.reconcile.internal_error import log_once
from sslreconciler.reconcile.report import HookResult, Report

_RECONCILE_TRIGGERS = {Trigger.RESYNC: "resync", Trigger.GRACE: "grace window ended"}  # as /health says it


class Daemon:
    def __init__(self, config: Path | None, overrides: dict[str, Any]) -> None:
        self._config = config
        self._overrides = overrides
        self.settings: Settings = load_settings(config, overrides)
        self.desired_file = DesiredStateFile(self.settings.desired_state)
        configure_logs(self.settings.log_format, self.settings.log_level)
        self.log = get_logger()
        self.report_log = ReportLog(self.log)
        self.counters = Counters()
        self.reconciling = Reconciling(self.settings)
        self.notifier = Notifier()
        self.health = HealthState(starting_document())
        self.publisher = Publisher(self.health)
        self.textfile = TextfileWriter()  # the metrics_textfile setting
        self._server: HealthServer | None = None
        self._wakeup = Wakeup()
        # The scheduler's inputs (daemon/schedule.py), in monotonic seconds.
        self._first_event: float | None = None
        self._last_event: float | None = None
        self._event_reason = ""
        self._next_resync = 0.0
        self._next_ping: float | None = None
        self._grace_deadline: float | None = None  # when young bad sources are looked at again
        self._waiting: WriterWait | None = None  # another writer holds the lock: when to try again
        self._stop = False
        self._reload = False
        self._started = time.monotonic()
        hooks_done = lambda r: self._hook_done(r, mine=False)  # noqa: E731
        self.news = StateNews(self.publisher, self.desired_file.hook_labels, hooks_done, self._publish)
        self.watcher = Watcher(self.poke, self.news.notice)
        self.hooks = HookRunner(self._hook_done)

    # -- wake-ups from other threads and signal handlers -------------------------------------------

    def poke(self, reason: str) -> None:
        """A relevant file event: reconcile after the quiet period."""
        now = time.monotonic()
        self.counters.events += 1
        if self._first_event is None:
            self._first_event = now
            self._event_reason = printable_name(reason)  # a name that is not UTF-8 must not break a log line
        self._last_event = now
        self._wakeup.wake()

    def _on_signal(self, signum: int, _frame: object) -> None:
        if signum == signal.SIGHUP:
            self._reload = True
        else:
            self._stop = True
        self._wakeup.wake()

    # -- the loop ----------------------------------------------------------------------------------

    def run(self) -> int:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, self._on_signal)
        # Handlers run in the main thread only; a signal the kernel gives to another thread (watchdog's,
        # the socket's) would wait for the loop's next deadline, a resync minutes away, without this.
        signal.set_wakeup_fd(self._wakeup.signal_fd(), warn_on_full_buffer=False)
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
        self.news.watch(self.settings.resolved_state_dir(), self.watcher)
        self.watcher.configure(self.settings.ssl_dir, self.settings.desired_state, self.desired_file.desired)
        self._reconcile("start")
        self.notifier.send("READY=1", self._status_line())
        try:
            self._loop()
        finally:
            self.notifier.send("STOPPING=1")
            signal.set_wakeup_fd(-1)
            self._server.stop()
            self.watcher.close()
            self.hooks.stop()
            self.log.info("stopped")
        return 0

    def _timers(self) -> Timers:
        return Timers(
            next_resync=self._next_resync,
            first_event=self._first_event,
            last_event=self._last_event,
            next_ping=self._next_ping,
            grace_at=self._grace_deadline,
            lock_retry_at=self._waiting.retry_at if self._waiting is not None else None,
            reload=self._reload,
            stop=self._stop,
        )

    def _loop(self) -> None:
        ping_every = watchdog_interval()
        self._next_resync = time.monotonic() + self.settings.resync_interval
        self._next_ping = time.monotonic() if ping_every else None
        while True:
            s = self.settings  # a reload may change it
            timing = Timing(s.quiet_period, s.max_wait, s.resync_interval, ping_every)
            timeout = max(0.0, next_deadline(self._timers(), timing).at - time.monotonic())
            self._wakeup.wait(timeout)
            now = time.monotonic()
            todo = due(self._timers(), timing, now)
            if todo.action is Trigger.STOP:
                break
            if todo.ping and ping_every is not None:
                self.notifier.send("WATCHDOG=1")
                self._next_ping = now + ping_every
            if todo.action is None:
                continue
            if todo.action is Trigger.RELOAD:
                self._reload = False
                try:
                    self._do_reload()
                except Exception as exc:  # a reload that breaks keeps the daemon on what it had
                    self.log.error("reload failed, keeping the current settings", error=repr(exc)[:400])
                    self.notifier.send("READY=1", self._status_line())
            elif todo.action in (Trigger.EVENT, Trigger.MAX_WAIT):
                reason = self._event_reason  # before clearing: a new first event brings its own
                self._first_event = None
                self._reconcile(f"change: {reason}")
            elif todo.action is Trigger.LOCK_RETRY:
                self._reconcile(self._waiting.trigger if self._waiting else "resync")
            else:
                self._reconcile(_RECONCILE_TRIGGERS[todo.action])
            self._next_resync = time.monotonic() + self.settings.resync_interval

    def _do_reload(self) -> None:
        self.notifier.send("RELOADING=1", f"MONOTONIC_USEC={time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000}")
        settings, self._server = reload_settings(
            self.settings, self._config, self._overrides, self._server, self.health
        )
        self.settings = settings
        # the ssl or state dir may have moved: a new Reconciler, the memo and the resync count kept
        self.reconciling = Reconciling(settings, self.reconciling.memo, self.reconciling.resyncs)
        configure_logs(settings.log_format, settings.log_level)
        self._read_desired(explicit=True)
        self.news.watch(self.settings.resolved_state_dir(), self.watcher)
        self.watcher.configure(settings.ssl_dir, settings.desired_state, self.desired_file.desired)
        self.log.info("reloaded")
        self._reconcile("reload (SIGHUP)")
        self.notifier.send("READY=1", self._status_line())

    def _read_desired(self, explicit: bool) -> None:
        """Re-read the desired state; on trouble keep the last valid one and say so."""
        path = self.settings.desired_state
        if self.desired_file.read(path, explicit):
            self.watcher.configure(self.settings.ssl_dir, path, self.desired_file.desired)

    def _reconcile(self, trigger: str) -> None:
        """One reconcile; whatever goes wrong in it becomes a finding and a failed status, never an exit."""
        try:
            self._reconcile_once(trigger)
        except Exception as exc:  # a bug around the Reconciler (which catches its own): traceback once
            where = log_once(exc, str(self.settings.ssl_dir))
            finding = error(
                str(self.settings.ssl_dir),
                f"reconcile failed unexpectedly ({type(exc).__name__}, raised at {where})",
                FindingCode.INTERNAL,
            )
            now = dt.datetime.now(dt.UTC)
            report = Report(str(self.settings.ssl_dir), now, 0.0, [], [finding], [], internal_error=True)
            self.counters.count_reconcile(report)
            self.publisher.reconciled(report, trigger)
            with contextlib.suppress(Exception):
                self._publish()

    def _reconcile_once(self, trigger: str) -> None:
        if trigger.startswith(("change", "resync")):
            self._read_desired(explicit=False)
        self.news.rewatch_if_moved(self.watcher)  # the ssl dir or the state dir was recreated
        problem = self.desired_file.problem
        extra = [problem] if problem else []
        outcome = self.reconciling.run(self.desired_file.desired, extra, trigger)  # never waits
        if outcome.busy is not None:
            self._wait_for_writer(trigger, outcome.busy)
            return
        if self._waiting is not None:
            waited = time.monotonic() - self._waiting.since_mono
            self.log.info("writer lock taken, reconciling", waited_s=round(waited, 1))
            self._waiting = None
        report, recheck = outcome.report, outcome.recheck_at
        self._grace_deadline = None if recheck is None else time.monotonic() + max(0.0, recheck - time.time()) + 0.05
        self.counters.count_reconcile(report)
        self.publisher.reconciled(report, trigger)
        self.report_log.reconciled(report, trigger)
        for hook, changed in outcome.hooks_due:
            self.hooks.submit(hook, changed, self.settings.ssl_dir, self.settings.hook_timeout)
        self._publish()
        self.notifier.send(self._status_line())
        if outcome.state_problem:
            self.log.warning("cannot save state", reason=outcome.state_problem)

    def _wait_for_writer(self, trigger: str, holder: str) -> None:
        """Another writer holds the lock: the loop tries again at the wait's retry_at, and /health says so."""
        now = time.monotonic()
        if self._waiting is None:
            self._waiting = WriterWait(trigger, dt.datetime.now(dt.UTC), now, holder)
            self.log.warning("waiting for the writer lock", holder=holder or "unknown", trigger=trigger)
        if self._waiting.busy_again(holder, now, self.log):
            self._publish()
            self.notifier.send(self._status_line())

    def _hook_done(self, result: HookResult, mine: bool = True) -> None:
        self.counters.count_hook(result)
        self.report_log.hook_done(result)
        if mine:  # a one-shot's result is in the publisher already
            self.news.own_result(result)
            self._publish()

    # -- what the outside sees ---------------------------------------------------------------------

    def _publish(self) -> None:
        waiting, problem = self._waiting, self.desired_file.problem
        context = Context(
            self.desired_file.hook_labels(),
            self.counters.as_dict(),
            str(self.settings.desired_state),
            problem.reason if problem else None,
            self.settings.resolved_state_dir(),
            time.monotonic() - self._started,
            None if waiting is None else waiting.lock_wait(str(self.settings.ssl_dir), time.monotonic()),
            self.desired_file.desired.acme is not None,
        )
        self.publisher.publish(context)
        self.textfile.write(self.settings.metrics_textfile, self.health)

    def _status_line(self) -> str:
        return status_line(self.health.document())


def run_daemon(config: Path | None, overrides: dict[str, Any]) -> int:
    return Daemon(config, overrides).run()
