"""`acme`: the web certificate from an ACME CA (`renew`, `status`), as the desired state's `acme` block
says; `acme renew`'s own exit codes (docs/acme.md)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

from sslreconciler.cli.common import EXIT_OK, daemon_state_dir, flag_overrides

if TYPE_CHECKING:
    from sslreconciler.config.desired import DesiredState


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    acme = sub.add_parser(
        "acme",
        help="the web certificate from an ACME CA (RFC 8555): renew, status",
        description="Get and renew ssl-web.key + ssl-web.crt over ACME as the desired state's `acme` block "
        "says (docs/acme.md). The systemd timer sslreconciler-acme.timer runs `acme renew` twice a day.",
    )
    asub = acme.add_subparsers(dest="acme_command", metavar="ACME_COMMAND", required=True)
    renew = asub.add_parser(
        "renew",
        parents=[common],
        help="renew the web certificate when it is due (else say when it will be)",
        description="Order a new web certificate when it is missing, from another ACME directory, not covering "
        "the names, or past its renewal point, and install it (old pair kept as .previous). Exit 0 issued or "
        "nothing to do, 1 failed (nothing in the ssl dir changed) or backing off, 2 usage or config error.",
    )
    renew.add_argument("--force", action="store_true", help="renew now, whatever the renewal point")
    renew.add_argument("--json", action="store_true", help="print the result as JSON")
    renew.set_defaults(handler=_renew)
    st = asub.add_parser(
        "status",
        parents=[common],
        help="the web certificate's renewal point and the last ACME result; contacts nothing",
        description="Exit 0 nothing due (or no acme block: ACME is off), 1 a renewal is due or the last run "
        "failed, 2 config error.",
    )
    st.add_argument("--json", action="store_true", help="print JSON")
    st.set_defaults(handler=_status)


def _where(args: argparse.Namespace) -> tuple[DesiredState, Path, Path, Path]:
    """The desired state, its file, the ssl dir and the state dir, as the ACME commands take them."""
    from sslreconciler.config.desired import load_desired_state
    from sslreconciler.config.settings import load_settings

    settings = load_settings(args.config, flag_overrides(args))
    desired = load_desired_state(settings.desired_state)
    return (desired, settings.desired_state, settings.ssl_dir, settings.resolved_state_dir())


def _renew(args: argparse.Namespace) -> int:
    from sslreconciler.cluster.acme import command
    from sslreconciler.config.settings import load_settings

    where = _where(args)
    hook_timeout = load_settings(args.config, flag_overrides(args)).hook_timeout
    outcome = command.renew(
        *where, force=args.force, hook_timeout=hook_timeout, daemon_state_dir=daemon_state_dir(args)
    )
    print(outcome.render(args.json))
    return outcome.exit_code


def _status(args: argparse.Namespace) -> int:
    from sslreconciler.cluster.acme import command

    where = _where(args)
    if where[0].acme is None:  # ACME is off (docs/acme.md's way back to hand-managed certificates): no error
        hint = (
            f"no acme block in {where[1]}: the web certificate is managed by hand (web csr|install), not over "
            "ACME. To renew it over ACME, add an acme block (docs/acme.md)."
        )
        print(json.dumps({"acme": None, "message": hint}, indent=2) if args.json else hint)
        return EXIT_OK
    outcome = command.status(*where)
    print(outcome.render(args.json))
    return outcome.exit_code
