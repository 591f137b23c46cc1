"""Command-line parsing only: each subcommand calls the library and maps results to exit codes.

Exit codes (reconcile, check): 0 ok or warnings only, 1 degraded or failed, 2 usage or config error.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Sequence
from pathlib import Path

from sslreconciler import __version__
from sslreconciler.errors import CommandError, ConfigError

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
    _add_pki(sub, common)
    _add_web(sub, common)
    _add_acme(sub, common)
    return parser


KEY_TYPES = ["rsa2048", "rsa4096", "ec-p256"]


def _add_pki(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    pki = sub.add_parser(
        "pki",
        help="the cluster PKI on the master: CA, host certificates, HA bundles",
        description="The master's staging area: the cluster CA and a key pair per host "
        "(HOST.key/HOST.crt, HOST-web.*), and the bundles secondary servers install.",
    )
    psub = pki.add_subparsers(dest="pki_command", metavar="PKI_COMMAND", required=True)
    init = psub.add_parser("init-ca", parents=[common], help="make the cluster CA (a no-op when it is there)")
    init.add_argument("--staging", type=Path, required=True, metavar="DIR", help="the staging area")
    init.add_argument("--name", help="CA name, the file stem and alias (default ca.<this host's FQDN>)")
    init.add_argument("--days", type=int, default=3650, help="validity in days (default 3650)")
    init.add_argument("--key-type", choices=KEY_TYPES, default="rsa2048", help="default rsa2048")
    init.add_argument("--force", action="store_true", help="replace an existing CA (breaks every host cert)")
    issue = psub.add_parser("issue", parents=[common], help="issue a host key + certificate signed by the CA")
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
    issue.add_argument("--days", type=int, default=1095, help="validity in days (default 1095)")
    issue.add_argument("--web", action="store_true", help="the web pair: HOST-web.key/HOST-web.crt")
    issue.add_argument("--renew", action="store_true", help="replace a certificate that is still valid")
    issue.add_argument("--key-type", choices=KEY_TYPES, default="rsa2048", help="default rsa2048")
    lst = psub.add_parser("list", parents=[common], help="the staged hosts: serials, expiry, key match")
    lst.add_argument("--staging", type=Path, required=True, metavar="DIR", help="the staging area")
    lst.add_argument("--json", action="store_true", help="print JSON")
    bundle = psub.add_parser("bundle", parents=[common], help="the HA bundle for one host (gzip tar)")
    bundle.add_argument("--staging", type=Path, required=True, metavar="DIR", help="the staging area")
    bundle.add_argument("host", metavar="HOST", help="the host the bundle is for")
    bundle.add_argument("-o", "--output", type=Path, required=True, metavar="FILE", help="the bundle file")
    renew = psub.add_parser(
        "renew", parents=[common], help="re-issue the staged host certificates that expire within DAYS"
    )
    renew.add_argument("--staging", type=Path, required=True, metavar="DIR", help="the staging area")
    renew.add_argument("--within", type=int, required=True, metavar="DAYS", help="renew what expires within DAYS")
    renew.add_argument("--web-too", action="store_true", help="also the HOST-web pairs (default: ssl pairs only)")
    renew.add_argument("--days", type=int, metavar="N", help="validity of the new certificates (default: as before)")
    renew.add_argument("--json", action="store_true", help="print the renewed certificates as JSON")
    inst = psub.add_parser("install-bundle", parents=[common], help="check and install a bundle, then reconcile")
    inst.add_argument("bundle", type=Path, metavar="FILE", help="the bundle made by `pki bundle`")
    inst.add_argument("--json", action="store_true", help="print the reconcile report as JSON")


def _add_web(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    web = sub.add_parser(
        "web",
        help="the web certificate: CSR, install, rollback",
        description="Replace the web certificate, e.g. with one from an outside CA.",
    )
    wsub = web.add_subparsers(dest="web_command", metavar="WEB_COMMAND", required=True)
    csr = wsub.add_parser("csr", parents=[common], help="a new web key (kept pending) and its CSR")
    csr.add_argument("--subject", required=True, metavar="SUBJ", help="/CN=host/O=org or CN=host,O=org")
    csr.add_argument(
        "--san",
        action="append",
        default=[],
        metavar="DNS:x|IP:x",
        help="subjectAltName (repeatable); DNS:<CN> is always in",
    )
    csr.add_argument("--key-type", choices=KEY_TYPES, default="rsa2048", help="default rsa2048")
    csr.add_argument("-o", "--output", type=Path, required=True, metavar="FILE", help="where the CSR goes")
    inst = wsub.add_parser("install", parents=[common], help="install a signed web certificate, then reconcile")
    inst.add_argument("--cert", type=Path, required=True, metavar="FILE", help="the signed certificate")
    inst.add_argument("--key", type=Path, metavar="FILE", help="its key (default: the pending key from `web csr`)")
    inst.add_argument("--chain", type=Path, metavar="FILE", help="intermediate certificates")
    inst.add_argument("--json", action="store_true", help="print the reconcile report as JSON")
    wsub.add_parser("rollback", parents=[common], help="put the previous web pair back, then reconcile")


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
    from sslreconciler.acme_renew import command
    from sslreconciler.desired import load_desired_state
    from sslreconciler.settings import load_settings

    settings = load_settings(args.config, _flag_overrides(args))
    desired = load_desired_state(settings.desired_state)
    where = (desired, settings.desired_state, settings.ssl_dir, settings.resolved_state_dir())
    outcome = command.renew(*where, force=args.force) if args.acme_command == "renew" else command.status(*where)
    print(outcome.render(args.json))
    return outcome.exit_code


def _flag_overrides(args: argparse.Namespace) -> dict[str, object]:
    return {
        "ssl_dir": args.ssl_dir,
        "state_dir": args.state_dir,
        "desired_state": args.desired_state,
        "socket": args.socket,
    }


def _reconcile(args: argparse.Namespace, dry_run: bool) -> int:
    from sslreconciler.cache import ReconcileCache
    from sslreconciler.desired import load_desired_state
    from sslreconciler.engine import reconcile, save_report
    from sslreconciler.settings import load_settings

    settings = load_settings(args.config, _flag_overrides(args))
    desired = load_desired_state(settings.desired_state)
    state_dir = settings.resolved_state_dir()
    # The state dir's record of what each store was last verified to hold spares a no-op run from
    # opening the stores (PKCS#12 key derivation alone costs tens of milliseconds per store).
    cache = ReconcileCache.with_record(state_dir)
    report = reconcile(settings.ssl_dir, desired, dry_run=dry_run, cache=cache)
    if not dry_run:
        try:
            save_report(state_dir, report)
            cache.save_record(state_dir)
        except OSError as exc:
            print(f"sslreconciler: warning: state dir {settings.resolved_state_dir()}: {exc.strerror}", file=sys.stderr)
    print(report.to_json() if args.json else report.render_text())
    return report.exit_code


def _reconcile_after(args: argparse.Namespace, what: str) -> int:
    """After installing sources: reconcile so the stores follow, and report."""
    from sslreconciler.desired import load_desired_state
    from sslreconciler.engine import reconcile, save_report
    from sslreconciler.settings import load_settings

    settings = load_settings(args.config, _flag_overrides(args))
    report = reconcile(settings.ssl_dir, load_desired_state(settings.desired_state))
    with contextlib.suppress(OSError):
        save_report(settings.resolved_state_dir(), report)
    if getattr(args, "json", False):
        print(report.to_json())
    else:
        print(what)
        print(report.render_text())
    return report.exit_code


def _pki(args: argparse.Namespace) -> int:
    from sslreconciler import bundle, staging

    if args.pki_command == "init-ca":
        print(staging.init_ca(args.staging, args.name, args.days, args.key_type, args.force))
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

        from sslreconciler import renew

        renewed = renew.renew(args.staging, args.within, args.web_too, args.days)
        print(json.dumps([r.to_dict() for r in renewed], indent=2) if args.json else renew.render(renewed, args.within))
    elif args.pki_command == "bundle":
        members = bundle.create_bundle(args.staging, args.host, args.output)
        print(f"{args.output}: bundle for {args.host}: {', '.join(members)}")
    elif args.pki_command == "install-bundle":
        from sslreconciler.settings import load_settings

        ssl_dir = load_settings(args.config, _flag_overrides(args)).ssl_dir
        from sslreconciler.desired import load_desired_state

        settings = load_settings(args.config, _flag_overrides(args))
        lowered = load_desired_state(settings.desired_state).policy.lowered
        written = bundle.install_bundle(args.bundle, ssl_dir, lowered)
        what = f"{args.bundle}: installed into {ssl_dir}: " + (", ".join(written) or "nothing new")
        return _reconcile_after(args, what)
    return EXIT_OK


def _web(args: argparse.Namespace) -> int:
    from sslreconciler import webcert
    from sslreconciler.settings import load_settings

    ssl_dir = load_settings(args.config, _flag_overrides(args)).ssl_dir
    if args.web_command == "csr":
        print(webcert.make_csr(ssl_dir, args.subject, args.san, args.output, args.key_type))
        return EXIT_OK
    if args.web_command == "install":
        from sslreconciler.desired import load_desired_state

        lowered = load_desired_state(load_settings(args.config, _flag_overrides(args)).desired_state).policy.lowered
        return _reconcile_after(args, webcert.install(ssl_dir, args.cert, args.key, args.chain, lowered).message)
    return _reconcile_after(args, webcert.rollback(ssl_dir))


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
        if args.command == "pki":
            return _pki(args)
        if args.command == "web":
            return _web(args)
        if args.command == "acme":
            return _acme(args)
        if args.command == "schema":
            from sslreconciler.desired import desired_state_schema

            print(desired_state_schema())
            return EXIT_OK
    except CommandError as exc:
        print(f"sslreconciler: {exc}", file=sys.stderr)
        return EXIT_DEGRADED
    except ConfigError as exc:
        print(f"sslreconciler: config error: {exc}", file=sys.stderr)
        return 3 if args.command == "status" else EXIT_USAGE  # status speaks monitoring-plugin codes
    except KeyboardInterrupt:
        return 130
    parser.error(f"unknown command {args.command}")
    return EXIT_USAGE
