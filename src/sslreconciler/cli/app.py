"""Command-line parsing only: each subcommand calls the library and maps results to exit codes.

Every command that reconciles goes through ``_one_shot`` and so through the one ``Reconciler``.
Exit codes (reconcile, check, web install|rollback, pki install-bundle): 0 ok or warnings only,
1 degraded or failed or a hook failed, 2 usage or config error.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from sslreconciler import __version__
from sslreconciler.model.errors import CommandError, ConfigError, UsageError

EXIT_OK, EXIT_DEGRADED, EXIT_USAGE = 0, 1, 2


def _common_options(hidden: bool = False) -> argparse.ArgumentParser:
    """The node options; ``hidden`` for commands they mean nothing to (still accepted, as before)."""

    def say(text: str) -> str:
        return argparse.SUPPRESS if hidden else text

    common = argparse.ArgumentParser(add_help=False)
    group = common.add_argument_group("common options")
    group.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help=say("settings TOML (default /etc/sslreconciler/sslreconciler.toml when present)"),
    )
    group.add_argument(
        "--ssl-dir", type=Path, metavar="DIR", help=say("the node's TLS directory (default /etc/sipxpbx/ssl)")
    )
    group.add_argument(
        "--desired-state",
        type=Path,
        metavar="FILE",
        help=say(
            "desired-state JSON (default /etc/sslreconciler/desired-state.json; missing file: the sipXecs seed layout)"
        ),
    )
    group.add_argument(
        "--state-dir",
        type=Path,
        metavar="DIR",
        help=say(
            "where run state is kept (default $STATE_DIRECTORY under systemd, /var/lib/sslreconciler as root, "
            "else ~/.local/state/sslreconciler)"
        ),
    )
    group.add_argument(
        "--socket",
        type=Path,
        metavar="PATH",
        help=say("the daemon's health socket (default /run/sslreconciler/health.sock)"),
    )
    return common


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The whole command line; ``only`` builds just that command (``status``: a monitoring check should
    not pay for parsing what it does not use). Its options and --help are the same either way."""
    from sslreconciler.config.environment import epilog

    common = _common_options()
    parser = argparse.ArgumentParser(
        prog="sslreconciler",
        description="Keep a PBX node's Java keystores, PKCS#12 files and truststore derived from its "
        "PEM keys and certificates, verified against the cluster CA.",
        epilog=epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    if only == "status":
        _add_status(sub, common)
        return parser
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
    chk = sub.add_parser(
        "check",
        parents=[common],
        help="verify everything and print the plan; write nothing",
        description="Load and verify every source and say which artifact would change and "
        "why, writing nothing. Exit codes as for reconcile.",
    )
    chk.add_argument("--json", action="store_true", help="print the report as JSON")
    sub.add_parser(
        "schema",
        parents=[_common_options(hidden=True)],
        help="print the desired-state JSON schema",
        description="Print the JSON schema of the desired-state file (docs/desired-state.md explains it).",
    )
    sub.add_parser(
        "run",
        parents=[common],
        help="run the daemon in the foreground (systemd's ExecStart)",
        description="Reconcile at start, then on every change to the sources or the desired "
        "state; serve /health and /metrics on the socket; speak sd_notify under systemd. "
        "SIGHUP reloads, SIGTERM/SIGINT stop after the reconcile in flight.",
    )
    _add_status(sub, common)
    _add_pki(sub, common)
    _add_web(sub, common)
    _add_acme(sub, common)
    return parser


def _add_status(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    st = sub.add_parser(
        "status",
        parents=[common],
        help="ask the running daemon how the node is",
        description="Exit codes as a monitoring plugin: 0 OK, 1 WARNING (warning or pending), "
        "2 CRITICAL (degraded or failed), 3 UNKNOWN (no daemon). With --socket (or $SSLRECONCILER_SOCKET) "
        "no settings file is read: the fastest form, for a monitoring check.",
    )
    st.add_argument("--json", action="store_true", help="print the daemon's health document")


KEY_TYPES = ["rsa2048", "rsa4096", "ec-p256"]


def _days(text: str) -> int:
    """A validity in days: a whole number from 1 (argparse turns the ValueError into exit 2)."""
    try:
        days = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of days") from None
    if not 1 <= days <= 36500:
        raise argparse.ArgumentTypeError(f"{days} is outside 1..36500 days")
    return days


def _add_pki(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    node_options, common = common, _common_options(hidden=True)  # only install-bundle works on a node
    pki = sub.add_parser(
        "pki",
        help="the cluster PKI on the master: CA, host certificates, HA bundles",
        description="The master's staging area: the cluster CA and a key pair per host "
        "(HOST.key/HOST.crt, HOST-web.*), and the bundles secondary servers install. It holds the CA key: keep it "
        "where only root can write, such as /var/lib/sslreconciler-pki (root:root 0700); run as root, these "
        "commands refuse a staging area another user could change.",
    )
    psub = pki.add_subparsers(dest="pki_command", metavar="PKI_COMMAND", required=True)
    init = psub.add_parser(
        "init-ca",
        parents=[common],
        help="make the cluster CA (a no-op when it is there)",
        description="Make the cluster CA in the staging area. To replace a CA in use, use `pki rotate-ca`.",
    )
    init.add_argument("--staging", type=Path, required=True, metavar="DIR", help="the staging area")
    init.add_argument("--name", help="CA name, the file stem and alias (default ca.<this host's FQDN>)")
    init.add_argument("--days", type=_days, default=3650, help="validity in days (default 3650)")
    init.add_argument(
        "--key-type", choices=KEY_TYPES, default="rsa2048", help="one of %(choices)s (default %(default)s)"
    )
    init.add_argument(
        "--force", action="store_true", help="replace an existing CA under a new --name (breaks every host cert)"
    )
    rot = psub.add_parser(
        "rotate-ca",
        parents=[common],
        help="start a CA rotation: a new CA signs, the old one stays trusted",
        description="Make a new cluster CA under a new name beside the current one. Bundles made from now on "
        "carry both CAs; re-issue every host, then `pki retire-ca`. Nothing breaks at any step (docs/pki.md).",
    )
    rot.add_argument("--staging", type=Path, required=True, metavar="DIR", help="the staging area")
    rot.add_argument("--name", help="the new CA's name (default ca.<this host's FQDN>-<UTC time>)")
    rot.add_argument("--days", type=_days, default=3650, help="validity in days (default 3650)")
    rot.add_argument(
        "--key-type", choices=KEY_TYPES, default="rsa2048", help="one of %(choices)s (default %(default)s)"
    )
    ret = psub.add_parser(
        "retire-ca",
        parents=[common],
        help="end a CA rotation: bundles stop carrying the old CA",
        description="Refused while a staged certificate is still signed by the old CA. Installing a bundle "
        "made afterwards removes the old CA file from the node's authorities/.",
    )
    ret.add_argument("--staging", type=Path, required=True, metavar="DIR", help="the staging area")
    ret.add_argument("name", metavar="NAME", help="the old CA's name (as `pki list` shows it)")
    issue = psub.add_parser(
        "issue",
        parents=[common],
        help="issue a host key + certificate signed by the CA",
        description="Make HOST.key/HOST.crt (or HOST-web.* with --web) signed by the current CA; "
        "serverAuth + clientAuth, subjectAltName DNS:HOST plus --san.",
    )
    issue.add_argument("--staging", type=Path, required=True, metavar="DIR", help="the staging area")
    issue.add_argument("host", metavar="HOST", help="the host's FQDN")
    issue.add_argument(
        "--san",
        action="append",
        default=[],
        metavar="DNS:x|IP:x|URI:x",
        help="extra subjectAltName (repeatable); DNS:HOST is always in",
    )
    issue.add_argument("--sip-domain", metavar="D", help="adds URI:sip:D to the subjectAltName")
    issue.add_argument("--days", type=_days, default=1095, help="validity in days (default 1095)")
    issue.add_argument("--web", action="store_true", help="the web pair: HOST-web.key/HOST-web.crt")
    issue.add_argument("--renew", action="store_true", help="replace a certificate that is still valid")
    issue.add_argument(
        "--key-type", choices=KEY_TYPES, default="rsa2048", help="one of %(choices)s (default %(default)s)"
    )
    lst = psub.add_parser(
        "list",
        parents=[common],
        help="the staged hosts: serials, expiry, key match, signing CA",
        description="One row per staged host and pair: serial, not-after, days left, whether its key matches, which "
        "CA signed it; during a CA rotation, what is left to re-issue.",
    )
    lst.add_argument("--staging", type=Path, required=True, metavar="DIR", help="the staging area")
    lst.add_argument("--json", action="store_true", help="print JSON")
    bundle = psub.add_parser(
        "bundle",
        parents=[common],
        help="the HA bundle for one host (gzip tar)",
        description="Write the host's key pairs and the CA certificates a node must trust (both CAs during a "
        "rotation) into one 0600 file for `pki install-bundle`.",
    )
    bundle.add_argument("--staging", type=Path, required=True, metavar="DIR", help="the staging area")
    bundle.add_argument("host", metavar="HOST", help="the host the bundle is for")
    bundle.add_argument("-o", "--output", type=Path, required=True, metavar="FILE", help="the bundle file")
    renew = psub.add_parser(
        "renew", parents=[common], help="re-issue the staged host certificates that expire within DAYS"
    )
    renew.add_argument("--staging", type=Path, required=True, metavar="DIR", help="the staging area")
    renew.add_argument("--within", type=int, required=True, metavar="DAYS", help="renew what expires within DAYS")
    renew.add_argument("--web-too", action="store_true", help="also the HOST-web pairs (default: ssl pairs only)")
    renew.add_argument("--days", type=_days, metavar="N", help="validity of the new certificates (default: as before)")
    renew.add_argument("--json", action="store_true", help="print the renewed certificates as JSON")
    inst = psub.add_parser(
        "install-bundle",
        parents=[node_options],
        help="check and install a bundle, then reconcile",
        description="Refuse a bundle with anything wrong in it, whose manifest the master did not sign, signed by a "
        "CA this node does not follow (unless --takeover), or older than the last one this node installed, "
        "before writing a thing; put its sources in place (removing a retired CA an earlier bundle installed), then "
        "reconcile. Exit codes as for reconcile.",
    )
    inst.add_argument("bundle", type=Path, metavar="FILE", help="the bundle made by `pki bundle`")
    inst.add_argument("--json", action="store_true", help="print the reconcile report as JSON")
    inst.add_argument(
        "--takeover",
        action="store_true",
        help="accept a bundle signed by a CA this node does not follow yet (a deliberate switch of cluster CA)",
    )


def _add_web(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
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
    wsub.add_parser(
        "rollback",
        parents=[common],
        help="put the previous web pair back, then reconcile",
        description="Swap ssl-web.key/.crt with ssl-web.*.previous (a second rollback undoes the first).",
    )


def _add_acme(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
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
    st = asub.add_parser(
        "status",
        parents=[common],
        help="the web certificate's renewal point and the last ACME result; contacts nothing",
        description="Exit 0 nothing due, 1 a renewal is due or the last run failed, 2 config error.",
    )
    st.add_argument("--json", action="store_true", help="print JSON")


def _acme(args: argparse.Namespace) -> int:
    from sslreconciler.cluster.acme import command
    from sslreconciler.config.desired import load_desired_state
    from sslreconciler.config.settings import load_settings

    settings = load_settings(args.config, _flag_overrides(args))
    desired = load_desired_state(settings.desired_state)
    where = (desired, settings.desired_state, settings.ssl_dir, settings.resolved_state_dir())
    if args.acme_command == "renew":
        outcome = command.renew(*where, force=args.force, hook_timeout=settings.hook_timeout)
    else:
        outcome = command.status(*where)
    print(outcome.render(args.json))
    return outcome.exit_code


def _status_socket(args: argparse.Namespace) -> Path:
    """The socket to ask: --socket or $SSLRECONCILER_SOCKET win over any settings file (as in
    load_settings), so with either the settings are not read at all: status stays a few milliseconds."""
    import os

    if args.socket is not None:
        return Path(args.socket)
    if os.environ.get("SSLRECONCILER_SOCKET"):
        return Path(os.environ["SSLRECONCILER_SOCKET"])
    from sslreconciler.config.settings import load_settings

    return load_settings(args.config, _flag_overrides(args)).socket


def _say(text: str) -> None:
    """A line on stderr; names in it may come from the files, so no control character gets through."""
    from sslreconciler.model.text import printable

    print(printable(text), file=sys.stderr)


def _flag_overrides(args: argparse.Namespace) -> dict[str, object]:
    return {
        "ssl_dir": args.ssl_dir,
        "state_dir": args.state_dir,
        "desired_state": args.desired_state,
        "socket": args.socket,
    }


def _require_dir(ssl_dir: Path) -> None:
    """A usage error (exit 2) for an ssl dir that is not there, rather than a finding per file."""
    if not ssl_dir.is_dir():
        raise ConfigError(ssl_dir, "no such directory (the ssl dir: --ssl-dir, ssl_dir in the settings)")


def _one_shot(
    args: argparse.Namespace, dry_run: bool = False, change: Callable[[Path, Any], Callable[[int], str]] | None = None
) -> int:
    """Every command that reconciles goes through here: ``change`` (given the ssl dir and the desired state)
    checks what needs no lock and returns the change to the sources, which runs inside the same
    ``Reconciler.run`` (one lock session) as the reconcile the daemon uses; then the hooks its writes call for."""
    from sslreconciler.config.desired import load_desired_state
    from sslreconciler.config.settings import load_settings
    from sslreconciler.reconcile.reconciler import Reconciler, run_hooks_now

    settings = load_settings(args.config, _flag_overrides(args))
    desired = load_desired_state(settings.desired_state)
    prepared = change(settings.ssl_dir, desired) if change is not None else None
    _require_dir(settings.ssl_dir)
    reconciler = Reconciler(settings.ssl_dir, settings.resolved_state_dir(), settings.desired_state)
    if reconciler.record_note:  # e.g. root on a state dir the service user could have written
        _say(f"sslreconciler: note: {reconciler.record_note}; every store is opened and checked")
    outcome = reconciler.run(desired, dry_run=dry_run, change=prepared)
    if outcome.state_problem:
        _say(f"sslreconciler: warning: {outcome.state_problem}")
    if prepared is not None and outcome.change_said is None:  # e.g. the lock not had in time: the report says why
        _say("sslreconciler: nothing changed in the ssl dir")
    run_hooks_now(outcome, settings.ssl_dir, settings.hook_timeout)
    report = outcome.report
    if getattr(args, "json", False):
        print(report.to_json())
    else:
        if outcome.change_said is not None:
            print(outcome.change_said)
        print(report.render_text())
    return report.exit_code


def _pki(args: argparse.Namespace) -> int:
    from sslreconciler.cluster.stagingroot import root_only

    if args.pki_command == "install-bundle":
        return _install_bundle(args)
    with root_only(args.staging, create=args.pki_command == "init-ca"):  # as root: only root's, or nothing
        _staging_command(args)
    return EXIT_OK


def _staging_command(args: argparse.Namespace) -> None:
    from sslreconciler.cluster import bundle_make, staging

    if args.pki_command == "init-ca":
        print(staging.init_ca(args.staging, args.name, args.days, args.key_type, args.force))
    elif args.pki_command in ("rotate-ca", "retire-ca"):
        from sslreconciler.cluster import rotation

        if args.pki_command == "rotate-ca":
            print(rotation.rotate_ca(args.staging, args.name, args.days, args.key_type))
        else:
            print(rotation.retire_ca(args.staging, args.name))
    elif args.pki_command == "issue":
        print(
            staging.issue(
                args.staging, args.host, args.san, args.sip_domain, args.days, args.web, args.renew, args.key_type
            )
        )
    elif args.pki_command == "list":
        import json

        rows = staging.list_hosts(args.staging)
        print(json.dumps(rows, indent=2) if args.json else staging.render_hosts(rows))
    elif args.pki_command == "renew":
        import json

        from sslreconciler.cluster import renew

        renewed = renew.renew(args.staging, args.within, args.web_too, args.days)
        print(json.dumps([r.to_dict() for r in renewed], indent=2) if args.json else renew.render(renewed, args.within))
    elif args.pki_command == "bundle":
        if not args.output.parent.is_dir():
            raise UsageError(f"-o {args.output}: the directory {args.output.parent} does not exist")
        members, notes = bundle_make.create_bundle(args.staging, args.host, args.output)
        for note in notes:
            print(f"note: {note}", file=sys.stderr)
        print(f"{args.output}: bundle for {args.host}: {', '.join(members)}")


def _install_bundle(args: argparse.Namespace) -> int:
    from sslreconciler.reconcile.reconciler import host_name

    def install(ssl_dir: Path, desired: Any) -> Callable[[int], str]:
        from sslreconciler.cluster.bundle_install import check_bundle, install_at
        from sslreconciler.cluster.layout import node_files
        from sslreconciler.config.settings import load_settings

        files = node_files(desired)  # where its members go: the desired state's names
        host = host_name(desired)  # a bundle for another host is refused
        checked = check_bundle(args.bundle, ssl_dir, files, host, desired.policy.lowered)
        state_dir = load_settings(args.config, _flag_overrides(args)).resolved_state_dir()  # the bundle record

        def in_place(ssl_fd: int) -> str:
            done = install_at(checked, ssl_dir, ssl_fd, files, state_dir=state_dir, takeover=args.takeover)
            for note in done.notes:  # stderr: --json keeps stdout for the report
                _say(f"sslreconciler: note: {note}")
            return f"{args.bundle}: installed into {ssl_dir}: " + (", ".join(done.done) or "nothing new")

        return in_place

    return _one_shot(args, change=install)


def _web(args: argparse.Namespace) -> int:
    from sslreconciler.cluster import webcert, webcsr
    from sslreconciler.cluster.layout import web_pair
    from sslreconciler.config.desired import load_desired_state
    from sslreconciler.config.settings import load_settings

    settings = load_settings(args.config, _flag_overrides(args))
    ssl_dir = settings.ssl_dir
    _require_dir(ssl_dir)
    if args.web_command == "csr":
        web = web_pair(load_desired_state(settings.desired_state))
        print(webcsr.make_csr(ssl_dir, web, args.subject, args.san, args.output, args.key_type, args.new_key))
        return EXIT_OK
    if args.web_command == "install":
        return _one_shot(
            args,
            change=lambda ssl_dir, desired: (
                lambda fd: webcert.install_at(ssl_dir, fd, web_pair(desired), args.cert, args.key, args.chain).message
            ),
        )
    return _one_shot(
        args, change=lambda ssl_dir, desired: lambda fd: webcert.rollback_at(ssl_dir, fd, web_pair(desired))
    )


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
    try:
        if args.command == "reconcile":
            return _one_shot(args)
        if args.command == "check":
            return _one_shot(args, dry_run=True)
        if args.command == "run":
            from sslreconciler.daemon.loop import run_daemon

            return run_daemon(args.config, _flag_overrides(args))
        if args.command == "status":
            from sslreconciler.cli.status import status_command

            return status_command(_status_socket(args), args.json)
        if args.command == "pki":
            return _pki(args)
        if args.command == "web":
            return _web(args)
        if args.command == "acme":
            return _acme(args)
        if args.command == "schema":
            from sslreconciler.config.desired import desired_state_schema

            print(desired_state_schema())
            return EXIT_OK
    except UsageError as exc:
        _say(f"sslreconciler: usage error: {exc}")
        return EXIT_USAGE
    except CommandError as exc:
        _say(f"sslreconciler: {exc}")
        return EXIT_DEGRADED
    except OSError as exc:  # a file the command had to read or write: name it, no traceback
        where = exc.filename if exc.filename is not None else "I/O"
        _say(f"sslreconciler: {where}: {exc.strerror or exc}")
        return EXIT_DEGRADED
    except ConfigError as exc:
        _say(f"sslreconciler: config error: {exc}")
        return 3 if args.command == "status" else EXIT_USAGE  # status speaks monitoring-plugin codes
    except KeyboardInterrupt:
        return 130
    parser.error(f"unknown command {args.command}")
    return EXIT_USAGE
