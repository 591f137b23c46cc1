"""The master's signature on a bundle's manifest, and what a node checks of it before writing a thing.

``pki bundle`` signs the exact bytes of ``manifest.json`` with the key of the staged CA that issued the
host's ``ssl.crt`` and adds the signature as the member ``manifest.sig``: the raw signature bytes,
RSASSA-PKCS1-v1_5 or ECDSA (DER-encoded r, s) over SHA-256, as that CA's key is RSA or EC. The manifest
lists every other member's SHA-256, so the signature covers the host, the sequence and every file: a
bundle edited after the master made it (a raised sequence on a replayed pre-retirement bundle) no longer
verifies, and only the CA key, which never leaves the staging area, can make one that does.

During a CA rotation the staging area holds both CA keys, and every other CA it trusts co-signs the same
bytes: ``cosigned/<ca-name>.sig``, the signature of ``authorities/<ca-name>.crt``'s key.

The node then asks who signed (continuity): the signing CA, or a co-signer, must be one an earlier bundle
installed (the DERs in its bundle record) or the issuer of its current ``ssl.crt``. A bundle from another
staging area (another cluster's CA) is refused unless the operator says ``--takeover``. A fresh node (no
record, no ``ssl.crt``) takes the first signed bundle. A CA rotation stays within this rule: the
mid-rotation bundle is signed by the old CA and carries the new one, so the reissued and retiring bundles
(signed by the new CA) follow; a node that missed the mid-rotation bundle follows through the old CA's
co-signature on the reissued one. Once the old CA is retired nothing co-signs: a node that missed the whole
rotation needs ``--takeover``.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from sslreconciler.cluster import node_cas
from sslreconciler.cluster.bundle_record import MAX_CA_BYTES, NodeRecord
from sslreconciler.cluster.layout import NodeFiles
from sslreconciler.fsio import open_subdir, read_at
from sslreconciler.model.errors import CommandError
from sslreconciler.model.findings import SourceError
from sslreconciler.pki import trust, verify
from sslreconciler.pki.sources import PrivateKey, parse_certificates

SIGNATURE = "manifest.sig"
COSIGNED = "cosigned/"  # + <ca-name>.sig
MAX_SIGNATURE_BYTES = 2048  # RSA-16384 is 2048 bytes; an ECDSA P-521 signature about 140


def sign(key: PrivateKey, manifest: bytes) -> bytes:
    """The signature ``manifest.sig`` holds, chosen by the CA key's type."""
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return key.sign(manifest, ec.ECDSA(hashes.SHA256()))
    return key.sign(manifest, padding.PKCS1v15(), hashes.SHA256())


def _verifies(ca: x509.Certificate, manifest: bytes, signature: bytes) -> bool:
    public = ca.public_key()
    try:
        if isinstance(public, ec.EllipticCurvePublicKey):
            public.verify(signature, manifest, ec.ECDSA(hashes.SHA256()))
        elif isinstance(public, rsa.RSAPublicKey):
            public.verify(signature, manifest, padding.PKCS1v15(), hashes.SHA256())
        else:
            return False
    except (InvalidSignature, ValueError):
        return False
    return True


def fingerprint(cert: x509.Certificate) -> str:
    return hashlib.sha256(trust.der(cert)).hexdigest()


def named(cert: x509.Certificate) -> str:
    return f"{trust.describe(cert)} (SHA-256 {fingerprint(cert)})"


def signer(
    path: Path, manifest: bytes, signature: bytes | None, sequence: int | None, issuer: x509.Certificate
) -> x509.Certificate | None:
    """The CA that signed the manifest: ``issuer``, the bundled CA ``ssl.crt`` chains to. None for an
    unsigned bundle from before sequences (the upgrade path; bundle_record orders it). Else refused."""
    if signature is None:
        if sequence is None:
            return None
        raise CommandError(
            f"{path}: manifest.json has a sequence but no signature (no manifest.sig): the master signs every "
            "bundle it numbers, so this one was changed after the master made it; nothing installed"
        )
    if len(signature) > MAX_SIGNATURE_BYTES or not _verifies(issuer, manifest, signature):
        raise CommandError(
            f"{path}: manifest.sig is not the signature of {named(issuer)}, the bundled CA that issued its "
            "ssl.crt, over manifest.json: manifest.json (or its signature) was changed after the master made it; "
            "nothing installed"
        )
    return issuer


def cosigners(
    path: Path, manifest: bytes, cosignatures: dict[str, tuple[list[x509.Certificate], bytes]]
) -> list[x509.Certificate]:
    """The bundled CAs whose co-signatures verify: ``name -> [its certificates, signature]``. A co-signature
    that does not verify is a changed manifest (or signature): refused."""
    endorsers = []
    for name, (certs, signature) in sorted(cosignatures.items()):
        ca = next(
            (c for c in certs if len(signature) <= MAX_SIGNATURE_BYTES and _verifies(c, manifest, signature)), None
        )
        if ca is None:
            raise CommandError(
                f"{path}: {COSIGNED}{name}.sig is not the signature of authorities/{name}.crt over manifest.json: "
                "manifest.json (or that signature) was changed after the master made it; nothing installed"
            )
        endorsers.append(ca)
    return endorsers


def check_continuity(
    path: Path,
    ssl_fd: int,
    endorsers: list[x509.Certificate],
    record: NodeRecord | None,
    takeover: bool,
    files: NodeFiles,
) -> str:
    """Refuse a bundle signed by a CA this node has never trusted through a bundle, unless ``takeover``.
    ``files``: where this node keeps the host pair and the CA files (the desired state's names).

    Known: the DERs of the CA files earlier bundles installed (root's record); without a record, whatever
    issued the current ``ssl.crt`` (a file the service user owns: not asked while root's record speaks). A
    note when ``--takeover`` switched the CA; "" otherwise.
    """
    if not endorsers:
        return ""  # an unsigned bundle from before sequences: accepted only while no sequenced one was
    signed_by = endorsers[0]
    recorded = frozenset().union(*record.authorities.values()) if record else frozenset()
    current = _current(ssl_fd, files.host_crt)
    if not recorded and not current:
        return ""  # a fresh node: the first signed bundle decides
    for ca in endorsers:
        if fingerprint(ca) in recorded:
            return ""
        if not recorded and any(trust.der(c) == trust.der(ca) or trust.signed_by(c, ca) for c in current):
            return ""
    known = _known(ssl_fd, record, recorded, [] if recorded else current, files)
    if takeover:
        return f"--takeover: this node now follows {named(signed_by)} instead of {known}"
    raise CommandError(
        f"{path}: signed by {named(signed_by)}, but this node follows {known}: a bundle from another cluster's "
        "master (another staging area)? If this node is meant to switch to that CA, install it with --takeover; "
        "nothing installed"
    )


def _current(ssl_fd: int, host_crt: str) -> list[x509.Certificate]:
    try:
        return parse_certificates(read_at(ssl_fd, host_crt, host_crt, None, MAX_CA_BYTES)[0], host_crt)
    except SourceError:
        return []  # none (readable) yet


def _known(
    ssl_fd: int, record: NodeRecord | None, recorded: frozenset[str], current: list[x509.Certificate], files: NodeFiles
) -> str:
    """The CAs this node follows: by subject and fingerprint where a file in authorities/ still holds them."""
    held = _recorded_certs(ssl_fd, record, recorded, files.authorities)
    names = [named(held[fp]) if fp in held else f"a CA with SHA-256 {fp}" for fp in sorted(recorded)]
    leaf = next((c for c in current if not verify.is_ca(c)), current[0] if current else None)
    if leaf is not None and not any(trust.signed_by(leaf, c) for c in held.values()):
        issuer = next(  # named by its fingerprint too when a file in authorities/ holds it
            (c for _, c in node_cas.authorities_held(ssl_fd, files.authorities).values() if trust.signed_by(leaf, c)),
            None,
        )
        names.append(
            f"{leaf.issuer.rfc4514_string()} (the issuer of its ssl.crt)"
            + (f", SHA-256 {fingerprint(issuer)}" if issuer else "")
        )
    return ", ".join(names) or "no CA"


def _recorded_certs(
    ssl_fd: int, record: NodeRecord | None, recorded: frozenset[str], authorities: str
) -> dict[str, x509.Certificate]:
    if record is None:
        return {}
    try:
        auth_fd = open_subdir(ssl_fd, authorities)
    except OSError:
        return {}
    held: dict[str, x509.Certificate] = {}
    try:
        for name in sorted(record.authorities):
            try:
                certs = parse_certificates(read_at(auth_fd, name, name, None, MAX_CA_BYTES)[0], name)
            except SourceError:
                continue
            held.update({fingerprint(c): c for c in certs if fingerprint(c) in recorded})
    finally:
        os.close(auth_fd)
    return held
