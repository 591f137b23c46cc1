"""`web`: the web certificate from an outside CA (`csr`, `install`, `rollback`); install and rollback
put the new pair in place, then reconcile."""

from __future__ import annotations

import argparse
from pathlib import Path

from sslreconciler.cli.common import EXIT_OK, KEY_TYPES, flag_overrides, require_dir
from sslreconciler.cli.reconcile_cmds import one_shot


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    web = sub.add_parser(
        "web",
        help="the web certificate: CSR, install, rollback",
        description="Replace the web certificate, e.g. with one from an outside CA.",
    )
    wsub = web.add_subparsers(dest="web_command", metavar="WEB_COMMAND", required=True)
    csr = wsub.add_parser(
        "csr",
        parents=[common],
        help="a CSR for the pending web key (made when there is none)",
        description="Write a CSR for ssl-web.key.pending in the ssl dir, making that key (0600) only when there is "
        "none or --new-key is given, so a CSR already sent to a CA keeps matching. Writes nothing on an error.",
    )
    csr.add_argument("--subject", required=True, metavar="SUBJ", help="/CN=host/O=org or CN=host,O=org")
    csr.add_argument(
        "--san",
        action="append",
        default=[],
        metavar="DNS:x|IP:x",
        help="subjectAltName (repeatable); DNS:<CN> is always in",
    )
    csr.add_argument(
        "--key-type", choices=KEY_TYPES, default="rsa2048", help="one of %(choices)s (default %(default)s)"
    )
    csr.add_argument("-o", "--output", type=Path, required=True, metavar="FILE", help="where the CSR goes")
    csr.add_argument(
        "--new-key",
        action="store_true",
        help="replace the pending key (default: a CSR for the pending key when there is one)",
    )
    csr.set_defaults(handler=_csr)
    inst = wsub.add_parser(
        "install",
        parents=[common],
        help="install a signed web certificate, then reconcile",
        description="Check the certificate against the pending key (or --key), keep the current pair as "
        "ssl-web.*.previous, install, reconcile.",
    )
    inst.add_argument("--cert", type=Path, required=True, metavar="FILE", help="the signed certificate")
    inst.add_argument("--key", type=Path, metavar="FILE", help="its key (default: the pending key from `web csr`)")
    inst.add_argument("--chain", type=Path, metavar="FILE", help="intermediate certificates")
    inst.add_argument("--json", action="store_true", help="print the reconcile report as JSON")
    inst.set_defaults(handler=_install)
    rollback = wsub.add_parser(
        "rollback",
        parents=[common],
        help="put the previous web pair back, then reconcile",
        description="Swap ssl-web.key/.crt with ssl-web.*.previous (a second rollback undoes the first).",
    )
    rollback.set_defaults(handler=_rollback)


def _ssl_dir(args: argparse.Namespace) -> Path:
    """The ssl dir, which must be there before anything is read or written."""
    from sslreconciler.config.settings import load_settings

    ssl_dir = load_settings(args.config, flag_overrides(args)).ssl_dir
    require_dir(ssl_dir)
    return ssl_dir


def _csr(args: argparse.Namespace) -> int:
    from sslreconciler.cluster import webcsr
    from sslreconciler.cluster.layout import web_pair
    from sslreconciler.config.desired import load_desired_state
    from sslreconciler.config.settings import load_settings

    settings = load_settings(args.config, flag_overrides(args))
    require_dir(settings.ssl_dir)
    web = web_pair(load_desired_state(settings.desired_state))  # the pending key's name follows the web pair's
    print(webcsr.make_csr(settings.ssl_dir, web, args.subject, args.san, args.output, args.key_type, args.new_key))
    return EXIT_OK


def _install(args: argparse.Namespace) -> int:
    from sslreconciler.cluster import webcert
    from sslreconciler.cluster.layout import web_pair

    _ssl_dir(args)
    return one_shot(
        args,
        change=lambda ssl_dir, desired: (
            lambda fd: (
                webcert.install_at(ssl_dir, fd, web_pair(desired), desired, args.cert, args.key, args.chain).message
            )
        ),
    )


def _rollback(args: argparse.Namespace) -> int:
    from sslreconciler.cluster import webcert
    from sslreconciler.cluster.layout import web_pair

    _ssl_dir(args)
    return one_shot(
        args, change=lambda ssl_dir, desired: lambda fd: webcert.rollback_at(ssl_dir, fd, web_pair(desired))
    )
