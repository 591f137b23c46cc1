"""`sslreconciler status`: its arguments and which socket it asks. The socket client (``status.py``) is
imported only when the command runs, so ``status --help`` and the parser stay as light as before."""

from __future__ import annotations

import argparse
import os

from sslreconciler.cli.common import flag_overrides


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    st = sub.add_parser(
        "status",
        parents=[common],
        help="ask the running daemon how the node is",
        description="Exit codes as a monitoring plugin: 0 OK, 1 WARNING (warning or pending), "
        "2 CRITICAL (degraded or failed), 3 UNKNOWN (no daemon). The first line names the worst cause "
        "(FILE: REASON (CODE)), then the counts; each finding shows its code. With --socket (or $SSLRECONCILER_SOCKET) "
        "no settings file is read: the fastest form, for a monitoring check.",
    )
    st.add_argument("--json", action="store_true", help="print the daemon's health document")
    st.set_defaults(handler=status)


def status(args: argparse.Namespace) -> int:
    from sslreconciler.cli.status import status_command

    return status_command(_status_socket(args), args.json)


def _status_socket(args: argparse.Namespace) -> str | os.PathLike[str]:
    """The socket to ask: --socket or $SSLRECONCILER_SOCKET win over any settings file (as in
    load_settings), so with either the settings are not read at all: status stays a few milliseconds."""
    if args.socket is not None:
        given: str | os.PathLike[str] = args.socket  # as given: text when parsed for `status` alone
        return given
    if os.environ.get("SSLRECONCILER_SOCKET"):
        return os.environ["SSLRECONCILER_SOCKET"]
    from pathlib import Path

    from sslreconciler.config.settings import load_settings

    config = None if args.config is None else Path(args.config)  # the settings model makes the rest Paths
    return load_settings(config, flag_overrides(args)).socket
