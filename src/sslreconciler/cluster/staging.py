"""The master's staging area (what gen-ssl-keys.sh kept): the cluster CA and a key pair per host.

Layout: ``<ca-name>.key`` / ``<ca-name>.crt`` (the CA), ``HOST.key`` / ``HOST.crt`` and, for a web
pair, ``HOST-web.key`` / ``HOST-web.crt``; ``bundle-sequence.json``, the last bundle's sequence. Keys are
0600 from their first byte. A node never reads this directory; it only receives a bundle made from it.
As root, the staging area and its files are judged first (``stagingroot``).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature

from sslreconciler.cluster import sequence as sequence_bounds
from sslreconciler.cluster.stagingroot import read_staged, staged_dir
from sslreconciler.fsio import atomic_write_at
from sslreconciler.model import boundedjson
from sslreconciler.model.errors import CommandError, UsageError
from sslreconciler.model.findings import FindingCode, SourceError
from sslreconciler.pki import trust, verify
from sslreconciler.pki.carecord import read_record, valid_ca_name
from sslreconciler.pki.issue import KeyType, cert_pem, generate_key, issue_host_cert, key_pem, make_ca, parse_san
from sslreconciler.pki.sources import PrivateKey, parse_certificates, parse_private_key


@dataclass(frozen=True, slots=True)
class StagedCA:
    name: str
    key: PrivateKey
    cert: x509.Certificate


def default_ca_name() -> str:
    return f"ca.{socket.getfqdn()}"


def read_cert(path: Path) -> x509.Certificate:
    try:
        data = read_staged(path)
        return parse_certificates(data, str(path))[0]
    except SourceError as exc:
        raise CommandError(str(exc.finding)) from None


def read_key(path: Path) -> PrivateKey:
    try:
        data = read_staged(path)
        return parse_private_key(data, str(path))
    except SourceError as exc:
        raise CommandError(str(exc.finding)) from None


def _ca_candidates(staging: Path) -> list[str]:
    names = []
    for crt in sorted(staging.glob("*.crt")):
        if not crt.with_suffix(".key").exists():
            continue
        try:
            cert = x509.load_pem_x509_certificate(crt.read_bytes())
        except (ValueError, OSError):
            continue
        if verify.is_ca(cert) and verify.is_self_signed(cert):
            names.append(crt.stem)
    return names


ca_names = _ca_candidates  # the CAs (with their keys) in the staging area, by name


def _load_ca(staging: Path, name: str) -> StagedCA:
    if not (staging / f"{name}.crt").exists():
        raise CommandError(f"{staging / (name + '.crt')}: the CA named in the rotation record is missing")
    key, cert = read_key(staging / f"{name}.key"), read_cert(staging / f"{name}.crt")
    if not verify.key_matches(key, cert):
        raise CommandError(f"{staging / (name + '.crt')}: does not match the private key in {name}.key")
    return StagedCA(name, key, cert)


def find_ca(staging: Path) -> StagedCA:
    """The CA that signs now: the rotation record's current CA, else the one CA in the staging area."""
    record = read_record(staging)
    if record is not None:
        return _load_ca(staging, record.current)
    names = _ca_candidates(staging)
    if not names:
        raise CommandError(f"{staging}: no cluster CA here (run `sslreconciler pki init-ca --staging {staging}`)")
    if len(names) > 1:
        raise CommandError(f"{staging}: more than one CA ({', '.join(names)}) and no {staging}/ca-rotation.json")
    return _load_ca(staging, names[0])


def trusted_cas(staging: Path) -> list[StagedCA]:
    """Every CA that signs or co-signs now: the current one first, then the one being rotated out (unless it
    is trust-only: ``staging_cas.trust_only``)."""
    record = read_record(staging)
    if record is None:
        return [find_ca(staging)]
    keyed = [n for n in record.trusted if n == record.current or (staging / f"{n}.key").exists()]
    return [_load_ca(staging, name) for name in keyed]


SEQUENCE_FILE = "bundle-sequence.json"


def next_sequence(staging: Path) -> tuple[int, list[str]]:
    """The sequence of the next bundle: above every earlier one, whatever the clock did; and notes.

    max(last + 1, microseconds since the epoch): a clock set back cannot make a later bundle look older,
    and a staging area restored from a backup (an older ``last``) still numbers above what nodes hold,
    because its clock has moved on. Saved before the bundle is written, so no two bundles share one.
    A ``last`` beyond what this clock can have made (cluster/sequence.py: the clock once ran far ahead,
    or the file was edited) is not followed: nodes refuse such sequences, so it would stop every bundle.
    """
    path = staging / SEQUENCE_FILE
    last, notes = 0, []
    try:
        data = read_staged(path)  # as root: only a record root alone could have written
        last = boundedjson.loads(data, 2)["last"]
        if not isinstance(last, int) or isinstance(last, bool) or last < 0:
            raise TypeError("last is not a count")
    except SourceError as exc:
        if exc.finding.code is not FindingCode.MISSING:
            raise CommandError(f"{exc.finding}; fix or remove it") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise CommandError(f"{path}: not the bundle sequence record ({exc}); fix or remove it") from None
    now = sequence_bounds.now_us()
    if not sequence_bounds.plausible(last, now):
        notes.append(
            f"{path}: the last bundle's sequence stands for {sequence_bounds.when(last)}, beyond this clock; "
            "numbering from now again (nodes refuse a sequence that far ahead)"
        )
        last = 0
    sequence = max(last + 1, now)
    with staged_dir(staging) as fd:
        atomic_write_at(fd, SEQUENCE_FILE, (json.dumps({"last": sequence}) + "\n").encode(), 0o644)
    return sequence, notes


def signer_name(cert: x509.Certificate, cas: list[StagedCA]) -> str | None:
    """The name of the staged CA whose key signed ``cert``, None when none did."""
    for ca in cas:
        try:
            cert.verify_directly_issued_by(ca.cert)
        except (ValueError, TypeError, InvalidSignature):
            continue
        return ca.name
    return None


def init_ca(staging: Path, name: str | None, days: int, key_type: KeyType, force: bool) -> str:
    """Make the cluster CA; a no-op when one is there. What was done, in a sentence."""
    if name is not None:
        valid_ca_name(name)  # a file stem in the staging area, never a path out of it
    staging.mkdir(mode=0o700, parents=True, exist_ok=True)
    existing = _ca_candidates(staging)
    name = name or (existing[0] if existing else default_ca_name())
    if existing and not force:
        if name in existing:
            return f"{staging / (name + '.crt')}: the cluster CA is already there; nothing done"
        raise CommandError(f"{staging}: a cluster CA ({existing[0]}) is already there; --force replaces it")
    broken = []
    if existing and force:
        old = find_ca(staging)
        if name == old.name:
            raise CommandError(
                f"{staging}: the new CA would reuse the old CA's name {old.name}, so nodes would lose the old one "
                "while hosts still use it; give --name NEW, or better, rotate without a broken handshake: "
                f"`sslreconciler pki rotate-ca --staging {staging}`"
            )
        broken = [h for h in list_hosts(staging) if h["issuer"] == old.cert.subject.rfc4514_string()]
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
        with staged_dir(staging) as fd:
            for suffix in (".key", ".crt"):
                os.rename(f"{old.name}{suffix}", f"{old.name}{suffix}.replaced-{stamp}", src_dir_fd=fd, dst_dir_fd=fd)
    key = generate_key(key_type)
    cert = make_ca(name, key, days)
    with staged_dir(staging) as fd:
        atomic_write_at(fd, f"{name}.key", key_pem(key), 0o600)
        atomic_write_at(fd, f"{name}.crt", cert_pem(cert), 0o644)
    done = f"{staging / (name + '.crt')}: cluster CA made ({key_type}, {days} days)"
    if existing:
        hosts = ", ".join(sorted({h["host"] for h in broken})) or "none staged"
        done += (
            f"\nreplaced the old CA {existing[0]} (kept as *.replaced-*). This breaks every certificate it signed"
            f" (hosts: {hosts}): no node trusts the new CA yet. Re-issue each ssl pair and each web pair "
            "(`pki issue --renew`, `pki issue --renew --web`), then install a new bundle on every node. "
            "`pki rotate-ca` does this without breaking anything."
        )
    return done


def issue(
    staging: Path,
    host: str,
    sans: list[str],
    sip_domain: str | None,
    days: int,
    web: bool,
    renew: bool,
    key_type: KeyType,
) -> str:
    ca = find_ca(staging)
    if problem := trust.ca_problem(ca.cert, dt.datetime.now(dt.UTC)):  # nothing it signs would be valid
        raise CommandError(f"{staging / ca.name}.crt: the cluster CA {problem}; roll to a new one (`pki rotate-ca`).")
    stem = f"{host}-web" if web else host
    crt_path, key_path = staging / f"{stem}.crt", staging / f"{stem}.key"
    if crt_path.exists() and not renew:
        current = read_cert(crt_path)
        signer = signer_name(current, trusted_cas(staging))
        if signer != ca.name:
            raise CommandError(
                f"{crt_path}: signed by {signer or current.issuer.rfc4514_string()}, not the current CA {ca.name}; "
                "--renew re-issues it under the current CA"
            )
        if current.not_valid_after_utc > dt.datetime.now(dt.UTC):
            raise CommandError(
                f"{crt_path}: a valid certificate is already there (until {current.not_valid_after_utc:%Y-%m-%d}); "
                "--renew replaces it"
            )
    try:
        names = parse_san(sans + ([f"URI:sip:{sip_domain}"] if sip_domain else []))
    except ValueError as exc:
        raise UsageError(f"--san: {exc}") from None
    key = generate_key(key_type)
    cert = issue_host_cert(ca.key, ca.cert, host, key, days, names)
    with staged_dir(staging) as fd:
        atomic_write_at(fd, key_path.name, key_pem(key), 0o600)
        atomic_write_at(fd, crt_path.name, cert_pem(cert), 0o644)
    return f"{crt_path}: issued for {host}, serial {cert.serial_number:x}, until {cert.not_valid_after_utc:%Y-%m-%d}"


def list_hosts(staging: Path) -> list[dict[str, Any]]:
    """Every staged host certificate: serial, expiry, days left, whether its key matches."""
    ca_names = set(_ca_candidates(staging))
    try:
        cas = trusted_cas(staging)
    except CommandError:
        cas = []
    current = cas[0].name if cas else None
    now = dt.datetime.now(dt.UTC)
    rows: list[dict[str, Any]] = []
    for crt in sorted(staging.glob("*.crt")):
        if crt.stem in ca_names:
            continue
        try:
            cert = read_cert(crt)
        except CommandError as exc:
            rows.append({"host": crt.stem, "file": crt.name, "problem": str(exc)})
            continue
        key_file = crt.with_suffix(".key")
        try:
            matches: bool | None = verify.key_matches(read_key(key_file), cert) if key_file.exists() else None
        except CommandError:
            matches = False
        web = crt.stem.endswith("-web")
        rows.append(
            {
                "host": crt.stem.removesuffix("-web"),
                "web": web,
                "file": crt.name,
                "subject": cert.subject.rfc4514_string(),
                "issuer": cert.issuer.rfc4514_string(),
                "serial": f"{cert.serial_number:x}",
                "not_after": cert.not_valid_after_utc.isoformat().replace("+00:00", "Z"),
                "days_left": (cert.not_valid_after_utc - now).days,
                "key_matches": matches,
                "ca": signer_name(cert, cas),
                "reissue": signer_name(cert, cas) != current,
            }
        )
    return rows


def render_hosts(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "no host certificates staged"
    lines = [f"{'HOST':<30} {'KIND':<4} {'SERIAL':<18} {'NOT AFTER':<10} {'DAYS':>5}  {'KEY':<8}  CA"]
    for r in rows:
        if "problem" in r:
            lines.append(f"{r['host']:<30} {r['problem']}")
            continue
        key = {True: "matches", False: "MISMATCH", None: "missing"}[r["key_matches"]]
        lines.append(
            f"{r['host']:<30} {'web' if r['web'] else 'ssl':<4} {r['serial'][:16]:<18} "
            f"{r['not_after'][:10]:<10} {r['days_left']:>5}  {key:<8}  {r.get('ca') or 'UNKNOWN'}"
            + ("  (re-issue)" if r.get("reissue") else "")
        )
    left = [f"{r['host']}{' --web' if r['web'] else ''}" for r in rows if r.get("reissue")]
    if left:
        lines.append(f"left to re-issue under the current CA ({len(left)}): {', '.join(left)}")
    return "\n".join(lines)
