"""Making an HA bundle on the master (``pki bundle``): the host's pairs from the staging area, every CA
the staging area trusts, an ``authorities.jks``, and the manifest signed by the CA of ``ssl.crt`` (the other
rotation CA co-signs). The format, and the checks a node makes on arrival, are cluster/bundle.py."""

from __future__ import annotations

import datetime as dt
import io
import json
import tarfile
from pathlib import Path

from cryptography import x509

from sslreconciler.cluster import bundle_sign, staging_cas
from sslreconciler.cluster.bundle import FORMAT, PRIVATE, sha256_hex
from sslreconciler.cluster.staging import next_sequence, read_cert, read_key, signer_name, trusted_cas
from sslreconciler.fsio import atomic_write
from sslreconciler.model.errors import CommandError
from sslreconciler.model.jks_alias import java_lower
from sslreconciler.pki import verify
from sslreconciler.pki.issue import cert_pem
from sslreconciler.stores.entries import StoreContent, cert_der
from sslreconciler.stores.jks import encode_jks


def _add(tar: tarfile.TarFile, name: str, data: bytes, mtime: float) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o600 if name in PRIVATE else 0o644
    info.mtime = int(mtime)
    info.uname = info.gname = "root"
    tar.addfile(info, io.BytesIO(data))


def create_bundle(staging: Path, host: str, output: Path, password: str = "changeit") -> tuple[list[str], list[str]]:
    """Write the bundle for ``host``; the member names and notes. During a CA rotation it carries both CAs."""
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
    signer = next(each for each in cas if each.name == signer_name(host_cert, cas))  # checked above
    cosigners = [each for each in cas if each is not signer]
    trusted = {}
    for name, each_cert in [*((c.name, c.cert) for c in cas), *staging_cas.trust_only(staging)]:
        files[f"authorities/{name}.crt"] = cert_pem(each_cert)  # a trust-only CA too: carried, never signing
        trusted[java_lower(name)] = cert_der(each_cert)
    trusted[java_lower(host)] = cert_der(host_cert)
    files["authorities.jks"] = encode_jks(StoreContent.of(trusted=trusted), password)
    sequence, notes = next_sequence(staging)  # a node refuses any bundle below the last it installed
    manifest = {
        "format": FORMAT,
        "host": host,
        "ca": ca.name,
        "cas": [each.name for each in cas] + [name for name, _ in staging_cas.trust_only(staging)],
        "created": dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z"),
        "sequence": sequence,
        "files": {name: sha256_hex(data) for name, data in sorted(files.items())},
    }
    body = json.dumps(manifest, indent=2).encode()
    buffer = io.BytesIO()
    now = dt.datetime.now(dt.UTC).timestamp()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        _add(tar, "manifest.json", body, now)
        _add(tar, bundle_sign.SIGNATURE, bundle_sign.sign(signer.key, body), now)  # what a node believes
        for other in cosigners:  # during a rotation: a node that knows only the other CA follows too
            _add(tar, f"{bundle_sign.COSIGNED}{other.name}.sig", bundle_sign.sign(other.key, body), now)
        for name, data in sorted(files.items()):
            _add(tar, name, data, now)
    atomic_write(output, buffer.getvalue(), 0o600)  # it holds a private key
    cosigned = [f"{bundle_sign.COSIGNED}{each.name}.sig" for each in cosigners]
    return ["manifest.json", bundle_sign.SIGNATURE, *cosigned, *sorted(files)], notes
