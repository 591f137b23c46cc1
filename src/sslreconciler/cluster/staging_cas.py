"""The staging area's CAs as the collection's pre-flight asks for them (``pki cas``), and taking over a
running cluster's CA into a staging area (``pki import-ca``).

``pki cas`` is read-only and says what the staging area holds, even when it holds nothing yet (a missing
directory is an empty staging area, not an error: nothing is made). ``held`` is true for the CAs bundles
carry now (``role`` current and, mid-rotation, previous); ``role`` retired: a CA this staging area
retired with ``pki retire-ca`` (its files kept as ``*.retired-<time>``), which nodes drop with their next
bundle, as a rotation means them to. A node depending on a CA not listed here depends on another staging
area's CA.

``pki import-ca --cert F --key F`` puts a running cluster's CA (its certificate and key, from the staging
area that made it) into a staging area that holds no CA yet: the cluster then simply continues under it,
and a later ``pki rotate-ca`` moves it to a new CA with the usual three steps (docs/fleet.md, "Taking over
a running cluster").
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from cryptography import x509

from sslreconciler.cluster import staging as stage
from sslreconciler.cluster.node_cas import fingerprint
from sslreconciler.cluster.stagingroot import read_staged, staged_dir
from sslreconciler.fsio import atomic_write_at
from sslreconciler.model.errors import CommandError
from sslreconciler.model.findings import Level, SourceError
from sslreconciler.pki import trust, verify
from sslreconciler.pki.carecord import CARecord, read_record, valid_ca_name, write_record
from sslreconciler.pki.issue import cert_pem, key_pem
from sslreconciler.pki.sources import parse_certificates


def list_cas(staging: Path) -> dict[str, Any]:
    """``{"staging", "exists", "cas": [{"name", "subject", "fingerprint", "key", "held", "role"}]}``."""
    if not staging.exists():
        return {"staging": str(staging), "exists": False, "cas": []}
    record = read_record(staging)
    held = {ca.name for ca in stage.trusted_cas(staging)} if stage.ca_names(staging) or record else set()
    held |= {name for name, _ in trust_only(staging)}
    rows = []
    for crt in sorted(staging.glob("*.crt")):
        try:
            cert = stage.read_cert(crt)
        except CommandError:
            continue
        if not (verify.is_ca(cert) and verify.is_self_signed(cert)):
            continue  # a host certificate
        name = crt.stem
        role = {record.current: "current", record.previous: "previous"}.get(name, "") if record else ""
        rows.append(
            {
                "name": name,
                "subject": trust.describe(cert),
                "fingerprint": fingerprint(cert),
                "key": crt.with_suffix(".key").exists(),
                "held": name in held,
                "role": role or ("current" if name in held else "unused"),
            }
        )
    for name in record.retired if record else ():  # kept as <name>.crt.retired-<time> by `pki retire-ca`
        for crt in sorted(staging.glob(f"{name}.crt.retired-*")):
            try:
                cert = stage.read_cert(crt)
            except CommandError:
                continue
            rows.append(
                {
                    "name": name,
                    "subject": trust.describe(cert),
                    "fingerprint": fingerprint(cert),
                    "key": False,
                    "held": False,
                    "role": "retired",
                }
            )
    return {"staging": str(staging), "exists": True, "cas": rows}


def trust_only(staging: Path) -> list[tuple[str, x509.Certificate]]:
    """The CA being rotated out when the staging area has no key of it (imported trust-only): bundles carry
    it, nothing signs with it. [] when there is none."""
    record = read_record(staging)
    if record is None or record.previous is None or (staging / f"{record.previous}.key").exists():
        return []
    return [(record.previous, stage.read_cert(staging / f"{record.previous}.crt"))]


def import_ca(staging: Path, cert_file: Path, key_file: Path | None, name: str | None) -> str:
    """Put the running cluster's CA into ``staging``: with its key into a staging area that holds no CA yet
    (the cluster continues under it), or without (``key_file`` None) as trust-only beside the staging
    area's own CA, as the CA being rotated out (bundles carry both; hosts are re-issued by the current CA;
    ``pki retire-ca`` ends it). A no-op when it holds this very CA. What was done, in a sentence."""
    cert = _one_ca(cert_file)
    name = valid_ca_name(name or cert_file.name.removesuffix(".crt"))
    if key_file is None:
        return _import_trust_only(staging, cert, name)
    key = stage.read_key(key_file)
    if not verify.key_matches(key, cert):
        raise CommandError(f"{key_file}: does not match {cert_file}; give the key of that CA")
    staging.mkdir(mode=0o700, parents=True, exist_ok=True)
    for existing in stage.ca_names(staging):
        there = stage.read_cert(staging / f"{existing}.crt")
        if fingerprint(there) == fingerprint(cert):
            return f"{staging / (existing + '.crt')}: this CA is already there; nothing done"
        raise CommandError(
            f"{staging}: holds another cluster CA ({existing}, {trust.describe(there)}, SHA-256 "
            f"{fingerprint(there)}); import into an empty staging area, or point --staging at the one that "
            "holds the running CA"
        )
    with staged_dir(staging) as fd:
        atomic_write_at(fd, f"{name}.key", key_pem(key), 0o600)
        atomic_write_at(fd, f"{name}.crt", cert_pem(cert), 0o644)
    return (
        f"{staging / (name + '.crt')}: the running cluster CA {trust.describe(cert)} (SHA-256 {fingerprint(cert)}) "
        "imported with its key; bundles made here now continue the cluster under it"
    )


def _one_ca(cert_file: Path) -> x509.Certificate:
    """The one CA certificate in ``cert_file``, refused (naming the file and why) unless it can serve as the
    cluster's CA: a self-signed CA the node's trust rules accept (``trust.ca_problem``, the policy's key
    rules at their defaults), inside its validity period. An expired CA keeps nothing working."""
    try:
        certs = parse_certificates(read_staged(cert_file), str(cert_file))
    except SourceError as exc:
        raise CommandError(str(exc.finding)) from None
    if len(certs) != 1:
        raise CommandError(
            f"{cert_file}: holds {len(certs)} certificates; import-ca takes one CA per run: put the running "
            "cluster CA's certificate alone in a file and import that."
        )
    cert = certs[0]
    if not (verify.is_ca(cert) and verify.is_self_signed(cert)):
        raise CommandError(f"{cert_file}: not a self-signed CA certificate; give the cluster CA's certificate")
    weak = [f.reason for f in trust.key_findings(cert, str(cert_file), ()) if f.level is Level.ERROR]
    problem = trust.ca_problem(cert, dt.datetime.now(dt.UTC))
    if problem or weak:
        why = f"{trust.describe(cert)} {problem}" if problem else weak[0]
        raise CommandError(
            f"{cert_file}: {why}, so nodes would not trust what it signs; nothing imported. Import a CA that "
            "can issue, or make a new one (`pki init-ca`) and roll the cluster to it."
        )
    return cert


def _import_trust_only(staging: Path, cert: x509.Certificate, name: str) -> str:
    if not staging.exists() or not stage.ca_names(staging):
        raise CommandError(
            f"{staging}: no cluster CA here to roll in beside the running one; make it first "
            f"(`sslreconciler pki init-ca --staging {staging} --name NEW`), then import the running CA"
        )
    record = read_record(staging)
    current = stage.find_ca(staging)
    for there in (current.name, record.previous if record else None):
        if there and fingerprint(stage.read_cert(staging / f"{there}.crt")) == fingerprint(cert):
            return f"{staging / (there + '.crt')}: this CA is already there; nothing done"
    if record is not None and record.previous is not None:
        raise CommandError(
            f"{staging}: a CA rotation is under way ({record.previous} is being rotated out); finish it "
            f"(`pki retire-ca --staging {staging} {record.previous}`) before importing another CA"
        )
    if name == current.name or (staging / f"{name}.crt").exists():
        raise CommandError(f"{staging / (name + '.crt')}: the name is taken; give the import another --name")
    retired = record.retired if record else ()
    with staged_dir(staging) as fd:
        atomic_write_at(fd, f"{name}.crt", cert_pem(cert), 0o644)
        write_record(fd, CARecord(current.name, name, retired))
    return (
        f"{staging / (name + '.crt')}: the running cluster CA {trust.describe(cert)} (SHA-256 {fingerprint(cert)}) "
        f"imported trust-only: bundles carry it beside {current.name}, which signs; install them with "
        "`install-bundle --trust-only --takeover` on every node, then re-issue every host, install again, and "
        f"retire it (`pki retire-ca --staging {staging} {name}`)"
    )
