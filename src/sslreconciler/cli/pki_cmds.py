"""`pki`: the master's staging area (`init-ca`, `rotate-ca`, `retire-ca`, `issue`, `list`, `bundle`,
`renew`; `cas`, `import-ca` and the node's `node-cas` in pki_takeover_cmds), run as root only on a staging
area only root could change; and `install-bundle`, which puts a bundle's sources on a node and reconciles."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sslreconciler.cli import pki_takeover_cmds
from sslreconciler.cli.common import EXIT_OK, KEY_TYPES, common_options, days, flag_overrides, say
from sslreconciler.cli.pki_takeover_cmds import add_staging
from sslreconciler.cli.reconcile_cmds import one_shot
from sslreconciler.model.errors import UsageError
from sslreconciler.pki.lifetimes import CA_DAYS, HOST_DAYS

Handler = Callable[[argparse.Namespace], int]


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    node_options, common = common, common_options(hidden=True)  # only install-bundle works on a node
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
    add_staging(init)
    init.add_argument("--name", help="CA name, the file stem and alias (default ca.<this host's FQDN>)")
    init.add_argument("--days", type=days, default=CA_DAYS, help=f"validity in days (default {CA_DAYS})")
    init.add_argument(
        "--key-type", choices=KEY_TYPES, default="rsa2048", help="one of %(choices)s (default %(default)s)"
    )
    init.add_argument(
        "--force", action="store_true", help="replace an existing CA under a new --name (breaks every host cert)"
    )
    init.set_defaults(handler=_staging(_init_ca, create=True))
    rot = psub.add_parser(
        "rotate-ca",
        parents=[common],
        help="start a CA rotation: a new CA signs, the old one stays trusted",
        description="Make a new cluster CA under a new name beside the current one. Bundles made from now on "
        "carry both CAs; re-issue every host, then `pki retire-ca`. Nothing breaks at any step (docs/pki.md).",
    )
    add_staging(rot)
    rot.add_argument("--name", help="the new CA's name (default ca.<this host's FQDN>-<UTC time>)")
    rot.add_argument("--days", type=days, default=CA_DAYS, help=f"validity in days (default {CA_DAYS})")
    rot.add_argument(
        "--key-type", choices=KEY_TYPES, default="rsa2048", help="one of %(choices)s (default %(default)s)"
    )
    rot.set_defaults(handler=_staging(_rotate_ca))
    ret = psub.add_parser(
        "retire-ca",
        parents=[common],
        help="end a CA rotation: bundles stop carrying the old CA",
        description="Refused while a staged certificate is still signed by the old CA. Installing a bundle "
        "made afterwards removes the old CA file from the node's authorities/.",
    )
    add_staging(ret)
    ret.add_argument("name", metavar="NAME", help="the old CA's name (as `pki list` shows it)")
    ret.set_defaults(handler=_staging(_retire_ca))
    issue = psub.add_parser(
        "issue",
        parents=[common],
        help="issue a host key + certificate signed by the CA",
        description="Make HOST.key/HOST.crt (or HOST-web.* with --web) signed by the current CA; "
        "serverAuth + clientAuth, subjectAltName DNS:HOST plus --san.",
    )
    add_staging(issue)
    issue.add_argument("host", metavar="HOST", help="the host's FQDN")
    issue.add_argument(
        "--san",
        action="append",
        default=[],
        metavar="DNS:x|IP:x|URI:x",
        help="extra subjectAltName (repeatable); DNS:HOST is always in",
    )
    issue.add_argument("--sip-domain", metavar="D", help="adds URI:sip:D to the subjectAltName")
    issue.add_argument("--days", type=days, default=HOST_DAYS, help=f"validity in days (default {HOST_DAYS})")
    issue.add_argument("--web", action="store_true", help="the web pair: HOST-web.key/HOST-web.crt")
    issue.add_argument("--renew", action="store_true", help="replace a certificate that is still valid")
    issue.add_argument(
        "--key-type", choices=KEY_TYPES, default="rsa2048", help="one of %(choices)s (default %(default)s)"
    )
    issue.set_defaults(handler=_staging(_issue))
    lst = psub.add_parser(
        "list",
        parents=[common],
        help="the staged hosts: serials, expiry, key match, signing CA",
        description="One row per staged host and pair: serial, not-after, days left, whether its key matches, which "
        "CA signed it; during a CA rotation, what is left to re-issue.",
    )
    add_staging(lst)
    lst.add_argument("--json", action="store_true", help="print JSON")
    lst.set_defaults(handler=_staging(_list))
    bundle = psub.add_parser(
        "bundle",
        parents=[common],
        help="the HA bundle for one host (gzip tar)",
        description="Write the host's key pairs and the CA certificates a node must trust (both CAs during a "
        "rotation) into one 0600 file for `pki install-bundle`.",
    )
    add_staging(bundle)
    bundle.add_argument("host", metavar="HOST", help="the host the bundle is for")
    bundle.add_argument("-o", "--output", type=Path, required=True, metavar="FILE", help="the bundle file")
    bundle.set_defaults(handler=_staging(_bundle))
    renew = psub.add_parser(
        "renew",
        parents=[common],
        help="re-issue the staged host certificates that expire within DAYS",
        description="Re-issue, under the current CA, each staged host certificate that expires within --within "
        "DAYS: a new key of the same kind, the same names, the same lifetime. A renewal never leaves a "
        "certificate due again at once: a certificate whose lifetime is not longer than the window gets the "
        f"default host lifetime ({HOST_DAYS} days) instead, and the output says so. A --days not longer than "
        "the window, or a --within below 0, is a usage error (exit 2, as any bad option) whatever is due; a CA "
        "that itself expires within the window is refused (exit 1); either way nothing is written.",
    )
    add_staging(renew)
    renew.add_argument("--within", type=int, required=True, metavar="DAYS", help="renew what expires within DAYS")
    renew.add_argument("--web-too", action="store_true", help="also the HOST-web pairs (default: ssl pairs only)")
    renew.add_argument(
        "--days",
        type=days,
        metavar="N",
        help="validity of the new certificates, longer than the window (default: as before, or "
        f"{HOST_DAYS} days when that is not longer than the window)",
    )
    renew.add_argument("--json", action="store_true", help="print the renewed certificates as JSON")
    renew.set_defaults(handler=_renew_arguments_first)
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
    inst.add_argument(
        "--trust-only",
        action="store_true",
        help="install only the bundle's CA files (authorities/), leaving the host pairs as they are (the first "
        "step of a takeover whose CA key is gone: docs/fleet.md)",
    )
    inst.set_defaults(handler=_install_bundle)
    pki_takeover_cmds.add_parsers(psub, node_options, common, _staging)  # node-cas, cas, import-ca


def _staging(command: Callable[[argparse.Namespace], None], create: bool = False) -> Handler:
    """A staging-area command, run as root only on a staging area only root could change (``create``:
    init-ca may make it)."""

    def handler(args: argparse.Namespace) -> int:
        from sslreconciler.cluster.stagingroot import root_only

        with root_only(args.staging, create=create):  # as root: only root's, or nothing
            command(args)
        return EXIT_OK

    return handler


def _init_ca(args: argparse.Namespace) -> None:
    from sslreconciler.cluster import staging

    print(staging.init_ca(args.staging, args.name, args.days, args.key_type, args.force))


def _rotate_ca(args: argparse.Namespace) -> None:
    from sslreconciler.cluster import rotation

    print(rotation.rotate_ca(args.staging, args.name, args.days, args.key_type))


def _retire_ca(args: argparse.Namespace) -> None:
    from sslreconciler.cluster import rotation

    print(rotation.retire_ca(args.staging, args.name))


def _issue(args: argparse.Namespace) -> None:
    from sslreconciler.cluster import staging

    print(
        staging.issue(
            args.staging, args.host, args.san, args.sip_domain, args.days, args.web, args.renew, args.key_type
        )
    )


def _list(args: argparse.Namespace) -> None:
    from sslreconciler.cluster import staging

    rows = staging.list_hosts(args.staging)
    print(json.dumps(rows, indent=2) if args.json else staging.render_hosts(rows))


def _renew_arguments_first(args: argparse.Namespace) -> int:
    from sslreconciler.cluster import renew

    renew.check_arguments(args.within, args.days)  # a usage error before the staging area is even looked at
    return _staging(_renew)(args)


def _renew(args: argparse.Namespace) -> None:
    from sslreconciler.cluster import renew

    renewed = renew.renew(args.staging, args.within, args.web_too, args.days)
    print(json.dumps([r.to_dict() for r in renewed], indent=2) if args.json else renew.render(renewed, args.within))


def _bundle(args: argparse.Namespace) -> None:
    from sslreconciler.cluster import bundle_make

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
        state_dir = load_settings(args.config, flag_overrides(args)).resolved_state_dir()  # the bundle record

        def in_place(ssl_fd: int) -> str:
            done = install_at(
                checked, ssl_dir, ssl_fd, files, state_dir=state_dir, takeover=args.takeover, trust_only=args.trust_only
            )
            for note in done.notes:  # stderr: --json keeps stdout for the report
                say(f"sslreconciler: note: {note}")
            return f"{args.bundle}: installed into {ssl_dir}: " + (", ".join(done.done) or "nothing new")

        return in_place

    return one_shot(args, change=install)
