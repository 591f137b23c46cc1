"""Command-line parsing only: each subcommand calls the library and maps results to exit codes.

Exit codes (reconcile, check): 0 ok or warnings only, 1 degraded or failed, 2 usage or config error.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from sslreconciler import __version__
from sslreconciler.errors import ConfigError

EXIT_OK, EXIT_DEGRADED, EXIT_USAGE = 0, 1, 2


def _common_options() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    group = common.add_argument_group("common options")
    group.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="settings TOML (default /etc/sslreconciler/sslreconciler.toml when present)",
    )
    group.add_argument(
        "--ssl-dir", type=Path, metavar="DIR", help="the node's TLS directory (default /etc/sipxpbx/ssl)"
    )
    group.add_argument(
        "--desired-state", type=Path, metavar="FILE", help="desired-state JSON (missing file: the sipXecs seed layout)"
    )
    group.add_argument("--state-dir", type=Path, metavar="DIR", help="where run state is kept")
    group.add_argument("--socket", type=Path, metavar="PATH", help="the daemon's health socket")
    return common


def build_parser() -> argparse.ArgumentParser:
    common = _common_options()
    parser = argparse.ArgumentParser(
        prog="sslreconciler",
        description="Keep a PBX node's Java keystores, PKCS#12 files and truststore derived from its "
        "PEM keys and certificates, verified against the cluster CA.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    rec = sub.add_parser(
        "reconcile",
        parents=[common],
        help="make the derived files right, once",
        description="Rebuild every store whose sources changed; keep the last good store "
        "when a source is bad. Exit 0 ok/warnings, 1 degraded/failed, 2 usage/config error.",
    )
    rec.add_argument("--json", action="store_true", help="print the report as JSON")
    chk = sub.add_parser(
        "check",
        parents=[common],
        help="verify everything and print the plan; write nothing",
        description="Load and verify every source and say which artifact would change and "
        "why, writing nothing. Exit codes as for reconcile.",
    )
    chk.add_argument("--json", action="store_true", help="print the report as JSON")
    sub.add_parser("schema", parents=[common], help="print the desired-state JSON schema")
    sub.add_parser(
        "run",
        parents=[common],
        help="run the daemon in the foreground (systemd's ExecStart)",
        description="Reconcile at start, then on every change to the sources or the desired "
        "state; serve /health and /metrics on the socket; speak sd_notify under systemd. "
        "SIGHUP reloads, SIGTERM/SIGINT stop after the reconcile in flight.",
    )
    st = sub.add_parser(
        "status",
        parents=[common],
        help="ask the running daemon how the node is",
        description="Exit codes as a monitoring plugin: 0 OK, 1 WARNING (warning or pending), "
        "2 CRITICAL (degraded or failed), 3 UNKNOWN (no daemon).",
    )
    st.add_argument("--json", action="store_true", help="print the daemon's health document")
    return parser


def _flag_overrides(args: argparse.Namespace) -> dict[str, object]:
    return {
        "ssl_dir": args.ssl_dir,
        "state_dir": args.state_dir,
        "desired_state": args.desired_state,
        "socket": args.socket,
    }


def _reconcile(args: argparse.Namespace, dry_run: bool) -> int:
    from sslreconciler.desired import load_desired_state
    from sslreconciler.engine import reconcile, save_report
    from sslreconciler.settings import load_settings

    settings = load_settings(args.config, _flag_overrides(args))
    desired = load_desired_state(settings.desired_state)
    report = reconcile(settings.ssl_dir, desired, dry_run=dry_run)
    if not dry_run:
        try:
            save_report(settings.resolved_state_dir(), report)
        except OSError as exc:
            print(f"sslreconciler: warning: state dir {settings.resolved_state_dir()}: {exc.strerror}", file=sys.stderr)
    print(report.to_json() if args.json else report.render_text())
    return report.exit_code


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "reconcile":
            return _reconcile(args, dry_run=False)
        if args.command == "check":
            return _reconcile(args, dry_run=True)
        if args.command == "run":
            from sslreconciler.daemon import run_daemon

            return run_daemon(args.config, _flag_overrides(args))
        if args.command == "status":
            from sslreconciler.settings import load_settings
            from sslreconciler.status import status_command

            return status_command(load_settings(args.config, _flag_overrides(args)).socket, args.json)
        if args.command == "schema":
            from sslreconciler.desired import desired_state_schema

            print(desired_state_schema())
            return EXIT_OK
    except ConfigError as exc:
        print(f"sslreconciler: config error: {exc}", file=sys.stderr)
        return 3 if args.command == "status" else EXIT_USAGE  # status speaks monitoring-plugin codes
    except KeyboardInterrupt:
        return 130
    parser.error(f"unknown command {args.command}")
    return EXIT_USAGE
