"""`pki node-cas`, `pki cas` and `pki import-ca`: what the collection's pre-flight compares before it makes a
CA or installs a bundle (the CAs a node depends on; the CAs a staging area holds), and the takeover of a
running cluster's CA into a staging area (docs/fleet.md, "Taking over a running cluster")."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
from pathlib import Path
from typing import Any

from sslreconciler.cli.common import EXIT_OK, flag_overrides
from sslreconciler.cluster.stagingroot import ROOT_STAGING

DEFAULT_STAGING = Path(ROOT_STAGING)  # root:root 0700 (docs/pki.md), as the collection's
STAGING_HELP = f"the staging area (default {DEFAULT_STAGING})"


def add_staging(parser: argparse.ArgumentParser) -> None:
    """``--staging DIR``, with the one default every staging command has."""
    parser.add_argument("--staging", type=Path, default=DEFAULT_STAGING, metavar="DIR", help=STAGING_HELP)


def add_parsers(
    psub: argparse._SubParsersAction[argparse.ArgumentParser],
    node_options: argparse.ArgumentParser,
    common: argparse.ArgumentParser,
    staging: Any,
) -> None:
    """``staging``: pki_cmds' wrapper that judges the staging area as root before a command runs."""
    node = psub.add_parser(
        "node-cas",
        parents=[node_options],
        help="the cluster CAs this node depends on now (read-only)",
        description="The CAs earlier bundles installed here (root's bundle record in --state-dir) and the CA that "
        "issued the node's current ssl.crt when a file in authorities/ holds it, each with its subject, SHA-256 "
        'fingerprint, file and why it counts; "unknown" (JSON: complete false, the reasons in incomplete) when the '
        "ssl dir or authorities/ is there but cannot be opened as the reconcile opens it, or authorities/ holds "
        "too many entries to read. Reads only; writes nothing. Exit 0.",
    )
    node.add_argument("--json", action="store_true", help="print JSON")
    node.set_defaults(handler=_node_cas)
    cas = psub.add_parser(
        "cas",
        parents=[common],
        help="the staging area's CAs: which ones bundles carry (read-only)",
        description="Every CA certificate in the staging area: name, subject, SHA-256 fingerprint, whether its key "
        "is there and whether bundles carry it now (held). A missing staging area is an empty one (nothing made).",
    )
    add_staging(cas)
    cas.add_argument("--json", action="store_true", help="print JSON")
    cas.set_defaults(handler=_cas(staging))
    imp = psub.add_parser(
        "import-ca",
        parents=[common],
        help="take over a running cluster's CA (certificate and key) into a staging area",
        description="Copy the running cluster CA (from the staging area that made it) into a staging area that "
        "holds no CA yet, so bundles made there continue the cluster under it; then `pki rotate-ca` moves the "
        'cluster to a new CA without a broken handshake (docs/fleet.md, "Taking over a running cluster").',
    )
    add_staging(imp)
    imp.add_argument("--cert", type=Path, required=True, metavar="FILE", help="the running CA's certificate (PEM)")
    imp.add_argument(
        "--key",
        type=Path,
        metavar="FILE",
        help="the running CA's private key (PEM); without it the CA is imported trust-only beside this staging "
        "area's own CA (make that first with init-ca): bundles carry both, hosts are re-issued by the new one",
    )
    imp.add_argument("--name", help="its name in the staging area (default: the --cert file's stem)")
    imp.set_defaults(handler=_undo_dirs_on_refusal(staging(_import_ca, create=True)))


def _node_cas(args: argparse.Namespace) -> int:
    from sslreconciler.cluster import bundle_record, node_cas
    from sslreconciler.cluster.layout import node_files
    from sslreconciler.config.desired import load_desired_state
    from sslreconciler.config.settings import load_settings
    from sslreconciler.reconcile.reconciler import host_name
    from sslreconciler.rootread import open_ssl_dir

    settings = load_settings(args.config, flag_overrides(args))
    desired = load_desired_state(settings.desired_state)
    files, state_dir = node_files(desired), settings.resolved_state_dir()
    doc: dict[str, Any] = {
        "host": host_name(desired),
        "ssl_dir": str(settings.ssl_dir),
        "state_dir": str(state_dir),
        "complete": True,
        "cas": [],
        "notes": [],
    }
    problems: list[str] = []
    try:
        ssl_fd = open_ssl_dir(settings.ssl_dir)  # as root: through no link another user owns
    except OSError as exc:
        if os.path.lexists(settings.ssl_dir):  # there, but not as the reconcile would open it: unknown
            problems.append(f"{settings.ssl_dir}: cannot be opened as the reconcile opens it ({exc.strerror})")
        else:
            doc["notes"].append(f"{settings.ssl_dir}: does not exist: no CA depended on")
    else:
        try:
            loaded = bundle_record.load(state_dir, ssl_fd, settings.ssl_dir)
            deps = node_cas.depended(ssl_fd, loaded.record, files.host_crt, files.authorities, problems)
            doc["cas"], doc["notes"] = [d.to_dict() for d in deps], loaded.notes
        finally:
            os.close(ssl_fd)
    doc["complete"], doc["incomplete"] = not problems, problems
    if args.json:
        print(json.dumps(doc, indent=2))
    else:
        for ca in doc["cas"]:
            print(f"{ca['subject'] or '-'}  SHA-256 {ca['fingerprint']}  {ca['file'] or '-'}  ({', '.join(ca['why'])})")
        for problem in problems:
            print(f"{doc['host']}: unknown: {problem}; what it depends on cannot be told")
        if not doc["cas"] and not problems:
            print(f"{doc['host']}: depends on no cluster CA (a fresh node)")
        for note in doc["notes"]:
            print(f"note: {note}")
    return EXIT_OK


def _cas(staging: Any) -> Any:
    def handler(args: argparse.Namespace) -> int:
        from sslreconciler.cluster import staging_cas

        if not args.staging.exists():  # nothing to judge and nothing made: an empty staging area
            doc = staging_cas.list_cas(args.staging)
        else:
            out: dict[str, Any] = {}
            staging(lambda a: out.update(doc=staging_cas.list_cas(a.staging)))(args)
            doc = out["doc"]
        if args.json:
            print(json.dumps(doc, indent=2))
        else:
            for ca in doc["cas"]:
                held = "carried by bundles" if ca["held"] else "not carried"
                key = "key" if ca["key"] else "no key"
                print(f"{ca['name']}  {ca['subject']}  SHA-256 {ca['fingerprint']}  {key}, {held}")
            if not doc["cas"]:
                print(f"{args.staging}: no CA here")
        return EXIT_OK

    return handler


def _import_ca(args: argparse.Namespace) -> None:
    from sslreconciler.cluster import staging_cas

    print(staging_cas.import_ca(args.staging, args.cert, args.key, args.name))


def _undo_dirs_on_refusal(handler: Any) -> Any:
    """Run ``handler``; when it refuses, remove the directories this run made for the staging area (the
    missing ones, made 0700 before the checks ran), each only while it is still empty."""

    def run(args: argparse.Namespace) -> int:
        missing = [d for d in (args.staging, *args.staging.parents) if not d.exists()]
        try:
            return int(handler(args))
        except BaseException:
            for made in missing:  # deepest first
                with contextlib.suppress(OSError):
                    os.rmdir(made)
            raise

    return run
