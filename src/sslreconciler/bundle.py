"""HA bundles: what a secondary server needs, made on the master, checked to the bone on arrival.

A bundle is a gzip tar of: ``manifest.json`` (file -> SHA-256), the host's ``ssl.key``/``ssl.crt``
(and ``ssl-web.*`` when staged), ``authorities/<ca-name>.crt`` and an ``authorities.jks``. Never another
host's key, never the CA key. Installing refuses, before anything is written, any member that is not
one of those names as a plain file (absolute paths, ``..``, links, devices, duplicates, oversize), a
manifest mismatch, a key that does not match its certificate, or a certificate not signed by the
bundled CA.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import os
import re
import stat
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

from sslreconciler import bundle_authorities
from sslreconciler.errors import CommandError
from sslreconciler.findings import SourceError
from sslreconciler.fsio import atomic_write
from sslreconciler.pki import verify
from sslreconciler.pki.issue import cert_pem
from sslreconciler.pki.sources import parse_certificates, parse_private_key
from sslreconciler.staging import read_cert, read_key, signer_name, trusted_cas
from sslreconciler.stores.entries import StoreContent, cert_der
from sslreconciler.stores.jks import encode_jks

FORMAT = 1
MAX_BUNDLE_BYTES = 16 * 1024 * 1024
MAX_MEMBER_BYTES = 8 * 1024 * 1024
MAX_MEMBERS = 32
_CA_MEMBER = re.compile(r"^authorities/([A-Za-z0-9][A-Za-z0-9._-]{0,200})\.crt$")
_FIXED = {"manifest.json", "ssl.key", "ssl.crt", "ssl-web.key", "ssl-web.crt", "authorities.jks"}
_PRIVATE = {"ssl.key", "ssl-web.key"}


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _add(tar: tarfile.TarFile, name: str, data: bytes, mtime: float) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o600 if name in _PRIVATE else 0o644
    info.mtime = int(mtime)
    info.uname = info.gname = "root"
    tar.addfile(info, io.BytesIO(data))


def create_bundle(staging: Path, host: str, output: Path, password: str = "changeit") -> list[str]:
    """Write the bundle for ``host``; the member names. During a CA rotation it carries both CAs."""
    cas = trusted_cas(staging)
    ca = cas[0]
    files: dict[str, bytes] = {}
    for stem, target in ((host, "ssl"), (f"{host}-web", "ssl-web")):
        crt, key = staging / f"{stem}.crt", staging / f"{stem}.key"
        if not crt.exists():
            if target == "ssl":
                raise CommandError(
                    f"{crt}: no certificate staged for {host} (run `pki issue --staging {staging} {host}`)"
                )
            continue
        cert = read_cert(crt)
        if not verify.key_matches(read_key(key), cert):
            raise CommandError(f"{crt}: does not match the private key in {key.name}")
        if signer_name(cert, cas) is None:
            raise CommandError(
                f"{crt}: signed by none of the CAs the staging area trusts ({', '.join(c.name for c in cas)}); "
                f"re-issue it (`pki issue --staging {staging} {host} --renew{' --web' if target == 'ssl-web' else ''}`)"
            )
        files[f"{target}.key"] = key.read_bytes()
        files[f"{target}.crt"] = crt.read_bytes()
    host_cert = x509.load_pem_x509_certificate(files["ssl.crt"])
    trusted = {}
    for each in cas:
        files[f"authorities/{each.name}.crt"] = cert_pem(each.cert)
        trusted[each.name.lower()] = cert_der(each.cert)
    trusted[host.lower()] = cert_der(host_cert)
    files["authorities.jks"] = encode_jks(StoreContent.of(trusted=trusted), password)
    manifest = {
        "format": FORMAT,
        "host": host,
        "ca": ca.name,
        "cas": [each.name for each in cas],
        "created": dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z"),
        "files": {name: _sha256(data) for name, data in sorted(files.items())},
    }
    buffer = io.BytesIO()
    now = dt.datetime.now(dt.UTC).timestamp()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        _add(tar, "manifest.json", json.dumps(manifest, indent=2).encode(), now)
        for name, data in sorted(files.items()):
            _add(tar, name, data, now)
    atomic_write(output, buffer.getvalue(), 0o600)  # it holds a private key
    return ["manifest.json", *sorted(files)]


@dataclass(frozen=True, slots=True)
class Bundle:
    host: str
    ca_name: str
    files: dict[str, bytes]


def _member_problem(member: tarfile.TarInfo) -> str | None:
    name = member.name
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        return "has an absolute path"
    if ".." in Path(name).parts or "\\" in name:
        return "climbs out with .."
    if member.issym() or member.islnk():
        return "is a link"
    if member.isdev() or member.isfifo() or member.ischr() or member.isblk():
        return "is a device or FIFO"
    if not member.isfile():
        return "is not a plain file"
    if name not in _FIXED and not _CA_MEMBER.match(name):
        return "is not a file a bundle holds"
    if member.size > MAX_MEMBER_BYTES:
        return f"is {member.size} bytes, over the {MAX_MEMBER_BYTES}-byte limit"
    return None


def read_bundle(path: Path) -> Bundle:
    """Everything in the bundle, checked; CommandError naming the bundle (and member) otherwise."""
    try:
        st = os.stat(path)
        if not stat.S_ISREG(st.st_mode):
            raise CommandError(f"{path}: not a regular file")
        if st.st_size > MAX_BUNDLE_BYTES:
            raise CommandError(f"{path}: {st.st_size} bytes, over the {MAX_BUNDLE_BYTES}-byte limit")
        data = path.read_bytes()
    except OSError as exc:
        raise CommandError(f"{path}: cannot be read: {exc.strerror}") from None
    files: dict[str, bytes] = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            members = tar.getmembers()
            if len(members) > MAX_MEMBERS:
                raise CommandError(f"{path}: {len(members)} members, more than a bundle holds")
            for member in members:
                problem = _member_problem(member)
                if problem:
                    raise CommandError(f"{path}: member {member.name!r} {problem}; nothing installed")
                if member.name in files:
                    raise CommandError(f"{path}: member {member.name!r} appears twice; nothing installed")
                extracted = tar.extractfile(member)
                assert extracted is not None
                files[member.name] = extracted.read(MAX_MEMBER_BYTES + 1)
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        raise CommandError(
            f"{path}: not a readable gzip tar (truncated or corrupt: {exc}); nothing installed"
        ) from None
    return _check_manifest(path, files)


def _check_manifest(path: Path, files: dict[str, bytes]) -> Bundle:
    try:
        manifest = json.loads(files.pop("manifest.json"))
        listed: dict[str, str] = manifest["files"]
        host, ca_name = str(manifest["host"]), str(manifest["ca"])
        if manifest.get("format") != FORMAT or not isinstance(listed, dict):
            raise ValueError("unknown format")
    except KeyError:
        raise CommandError(f"{path}: no manifest.json, or one without files/host/ca; nothing installed") from None
    except (ValueError, TypeError) as exc:
        raise CommandError(f"{path}: manifest.json is not valid ({exc}); nothing installed") from None
    if set(listed) != set(files):
        extra, missing = sorted(set(files) - set(listed)), sorted(set(listed) - set(files))
        raise CommandError(
            f"{path}: members and manifest disagree (unlisted {extra}, missing {missing}); nothing installed"
        )
    for name, data in files.items():
        if _sha256(data) != listed[name]:
            raise CommandError(f"{path}: {name} does not match its SHA-256 in the manifest; nothing installed")
    if f"authorities/{ca_name}.crt" not in files or "ssl.key" not in files or "ssl.crt" not in files:
        raise CommandError(f"{path}: needs ssl.key, ssl.crt and authorities/{ca_name}.crt; nothing installed")
    return Bundle(host, ca_name, files)


def verify_bundle(path: Path, bundle: Bundle) -> list[str]:
    """Each key matches its certificate and each certificate chains to the bundled CA. Notes, or refusal."""
    now = dt.datetime.now(dt.UTC)
    try:
        ca_certs = [  # every CA the bundle carries: during a rotation a pair may be signed by either
            cert
            for name in sorted(bundle.files)
            if _CA_MEMBER.match(name)
            for cert in parse_certificates(bundle.files[name], name)
        ]
        notes = []
        for target in ("ssl", "ssl-web"):
            if f"{target}.crt" not in bundle.files:
                continue
            key = parse_private_key(bundle.files[f"{target}.key"], f"{target}.key")
            chain, _ = verify.order_chain(
                key,
                parse_certificates(bundle.files[f"{target}.crt"], f"{target}.crt"),
                f"{target}.crt",
                f"{target}.key",
            )
            checked = verify.verify_chain(chain[0], chain[1:], ca_certs, now)
            if not checked.ok:
                raise CommandError(
                    f"{path}: {target}.crt is not signed by the bundled CA {bundle.ca_name}"
                    f"{' (or the other bundled CAs)' if len(ca_certs) > 1 else ''}: "
                    f"{checked.detail}; nothing installed"
                )
            notes.append(f"{target}.crt: {chain[0].subject.rfc4514_string()}, {checked.detail}")
    except SourceError as exc:
        raise CommandError(f"{path}: {exc.finding}; nothing installed") from None
    except KeyError as exc:
        raise CommandError(f"{path}: {exc.args[0]} missing from its pair; nothing installed") from None
    return notes


def install_bundle(path: Path, ssl_dir: Path) -> list[str]:
    """Check everything, then put the sources in place (only what differs). The files written."""
    bundle = read_bundle(path)
    verify_bundle(path, bundle)
    ssl_dir.mkdir(parents=True, exist_ok=True)
    (ssl_dir / "authorities").mkdir(mode=0o755, exist_ok=True)
    written = []
    authorities = sorted(name for name in bundle.files if _CA_MEMBER.match(name))
    order = [*authorities, "ssl.key", "ssl.crt", "ssl-web.key", "ssl-web.crt"]
    for name in order:
        if name not in bundle.files:
            continue
        target = ssl_dir / name
        try:
            if target.is_file() and not target.is_symlink() and target.read_bytes() == bundle.files[name]:
                continue
        except OSError:
            pass
        atomic_write(target, bundle.files[name], 0o600 if name in _PRIVATE else 0o644)
        written.append(name)
    # CA files an earlier bundle installed and this one no longer carries (a retired CA) go; others stay.
    removed = bundle_authorities.sync(ssl_dir, {n.removeprefix("authorities/"): bundle.files[n] for n in authorities})
    return written + [f"removed authorities/{name}" for name in removed]
