"""The command line: the top parser, and how a command's outcome or error becomes its exit code.

Each command group has its module (``reconcile_cmds``, ``status_cmd``, ``pki_cmds``, ``web_cmds``,
``acme_cmds``): it adds its parsers and sets each command's handler on its own parser
(``set_defaults(handler=...)``); a handler imports what it needs when it runs, so parsing stays light.
Exit codes (reconcile, check, web install|rollback, pki install-bundle): 0 ok or warnings only,
1 degraded or failed or a hook failed, 2 usage or config error; `status` speaks monitoring-plugin codes.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from sslreconciler import __version__
from sslreconciler.cli import status_cmd
from sslreconciler.cli.common import EXIT_DEGRADED, EXIT_USAGE, common_options, say
from sslreconciler.model.errors import CommandError, ConfigError, UsageError


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The whole command line; ``only`` builds just that command (``status``: a monitoring check should
    not pay for parsing, or importing, what it does not use). Its options and --help are the same either way."""
    from sslreconciler.config.environment import epilog

    parser = argparse.ArgumentParser(
        prog="sslreconciler",
        description="Keep a PBX node's Java keystores, PKCS#12 files and truststore derived from its "
        "PEM keys and certificates, verified against the cluster CA.",
        epilog=epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    if only == "status":  # its paths stay text: status_cmd passes only the socket on, and pathlib stays unloaded
        status_cmd.add_parser(sub, common_options(as_text=True))
        return parser
    common = common_options()
    from sslreconciler.cli import acme_cmds, pki_cmds, reconcile_cmds, web_cmds

    reconcile_cmds.add_parsers(sub, common)  # reconcile, check, schema, run: the order --help shows
    status_cmd.add_parser(sub, common)
    pki_cmds.add_parser(sub, common)
    web_cmds.add_parser(sub, common)
    acme_cmds.add_parser(sub, common)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(only="status" if argv[:1] == ["status"] else None)
    args = parser.parse_args(argv)
    if args.command != "status":  # status reads only the health document, which holds no secret
        from sslreconciler.process import no_core_dumps

        no_core_dumps()  # every other command may hold a key or a store password in memory
    if args.command != "run":  # `status | head -1` ends quietly, as for other Unix tools; the daemon keeps EPIPE
        import signal

        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    handler: Callable[[argparse.Namespace], int] = args.handler  # every command's parser sets one
    try:
        return handler(args)
    except UsageError as exc:
        say(f"sslreconciler: usage error: {exc}")
        return EXIT_USAGE
    except CommandError as exc:
        say(f"sslreconciler: {exc}")
        return EXIT_DEGRADED
    except OSError as exc:  # a file the command had to read or write: name it, no traceback
        where = exc.filename if exc.filename is not None else "I/O"
        say(f"sslreconciler: {where}: {exc.strerror or exc}")
        return EXIT_DEGRADED
    except ConfigError as exc:
        say(f"sslreconciler: config error: {exc}")
        return 3 if args.command == "status" else EXIT_USAGE  # status speaks monitoring-plugin codes
    except KeyboardInterrupt:
        return 130
