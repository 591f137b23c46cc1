"""The node's own commands: `reconcile`, `check`, `schema`, `run` (the daemon); and ``one_shot``, the
one way every command that reconciles (these, `web install|rollback`, `pki install-bundle`) goes
through the ``Reconciler``.

Exit codes (reconcile, check, web install|rollback, pki install-bundle): 0 ok or warnings only,
1 degraded or failed or a hook failed, 2 usage or config error.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sslreconciler.cli.common import (
    EXIT_OK,
    command_name,
    common_options,
    daemon_state_dir,
    flag_overrides,
    require_dir,
    say,
)


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    rec = sub.add_parser(
        "reconcile",
        parents=[common],
        help="make the derived files right, once",
        description="Rebuild every store whose sources changed; keep the last good store "
        "when a source is bad; then run the desired state's hooks for the stores rewritten. Waits (up to "
        "120 s) while another writer (the daemon, another one-shot) holds the ssl dir. "
        "Exit 0 ok/warnings, 1 degraded/failed or a hook failed, 2 usage/config error.",
    )
    rec.add_argument("--json", action="store_true", help="print the report as JSON")
    rec.add_argument(
        "--full-read",
        action="store_true",
        help="read and judge every trust file, believing no stat index (by default an unchanged file is "
        "proved unchanged by its device, inode, size, mtime and ctime, and not read again)",
    )
    rec.set_defaults(handler=reconcile)
    chk = sub.add_parser(
        "check",
        parents=[common],
        help="verify everything and print the plan; write nothing",
        description="Load and verify every source and say which artifact would change and "
        "why, writing nothing. Exit codes as for reconcile.",
    )
    chk.add_argument("--json", action="store_true", help="print the report as JSON")
    chk.add_argument(
        "--full-read",
        action="store_true",
        help="read and judge every trust file, believing no stat index (by default an unchanged file is "
        "proved unchanged by its device, inode, size, mtime and ctime, and not read again)",
    )
    chk.set_defaults(handler=check)
    schema_parser = sub.add_parser(
        "schema",
        parents=[common_options(hidden=True)],
        help="print the desired-state JSON schema",
        description="Print the JSON schema of the desired-state file (docs/desired-state.md explains it).",
    )
    schema_parser.set_defaults(handler=schema)
    run_parser = sub.add_parser(
        "run",
        parents=[common],
        help="run the daemon in the foreground (systemd's ExecStart)",
        description="Reconcile at start, then on every change to the sources or the desired "
        "state; serve /health and /metrics on the socket; speak sd_notify under systemd. "
        "SIGHUP reloads, SIGTERM/SIGINT stop after the reconcile in flight.",
    )
    run_parser.set_defaults(handler=run)


def reconcile(args: argparse.Namespace) -> int:
    return one_shot(args)


def check(args: argparse.Namespace) -> int:
    return one_shot(args, dry_run=True)


def schema(_args: argparse.Namespace) -> int:
    from sslreconciler.config.desired import desired_state_schema

    print(desired_state_schema())
    return EXIT_OK


def run(args: argparse.Namespace) -> int:
    from sslreconciler.daemon.loop import run_daemon

    return run_daemon(args.config, flag_overrides(args))


def one_shot(
    args: argparse.Namespace, dry_run: bool = False, change: Callable[[Path, Any], Callable[[int], str]] | None = None
) -> int:
    """Every command that reconciles goes through here: ``change`` (given the ssl dir and the desired state)
    checks what needs no lock and returns the change to the sources, which runs inside the same
    ``Reconciler.run`` (one lock session) as the reconcile the daemon uses; then the hooks its writes call for."""
    from sslreconciler.config.desired import load_desired_state
    from sslreconciler.config.settings import load_settings
    from sslreconciler.reconcile.reconciler import Reconciler, run_hooks_now

    settings = load_settings(args.config, flag_overrides(args))
    desired = load_desired_state(settings.desired_state)
    prepared = change(settings.ssl_dir, desired) if change is not None else None
    require_dir(settings.ssl_dir)
    reconciler = Reconciler(
        settings.ssl_dir, settings.resolved_state_dir(), settings.desired_state, workers=settings.workers
    )
    if reconciler.record_note:  # e.g. root on a state dir the service user could have written
        say(f"sslreconciler: note: {reconciler.record_note}; every store is opened and checked")
    full_read = bool(getattr(args, "full_read", False))  # reconcile/check --full-read
    outcome = reconciler.run(desired, dry_run=dry_run, change=prepared, full_read=full_read)
    if outcome.state_problem:
        say(f"sslreconciler: warning: {outcome.state_problem}")
    if prepared is not None and outcome.change_said is None and outcome.report.internal_error:
        say("sslreconciler: the change broke off unexpectedly (the report says where); check the ssl dir")
    elif prepared is not None and outcome.change_said is None:  # e.g. the lock not had in time: the report says why
        say("sslreconciler: nothing changed in the ssl dir")
    run_hooks_now(outcome, settings.ssl_dir, settings.hook_timeout, daemon_state_dir(args), command_name(args))
    if outcome.hooks_unseen:
        say(f"sslreconciler: warning: {outcome.hooks_unseen}.")
    report = outcome.report
    if getattr(args, "json", False):
        print(report.to_json())
    else:
        if outcome.change_said is not None:
            print(outcome.change_said)
        print(report.render_text())
    return report.exit_code
