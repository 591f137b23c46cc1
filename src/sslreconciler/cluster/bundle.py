"""HA bundles: what a secondary server needs, made on the master, checked to the bone on arrival.

A bundle is a gzip tar of: ``manifest.json`` (file -> SHA-256), the host's ``ssl.key``/``ssl.crt``
(and ``ssl-web.*`` when staged), ``authorities/<ca-name>.crt`` and an ``authorities.jks``. Never another
host's key, never the CA key. Installing refuses, before anything is written, any member that is not
one of those names as a plain file (absolute paths, ``..``, links, devices, duplicates, oversize), a
manifest mismatch, a key that does not match its certificate, or a certificate not signed by the
bundled CA. The manifest's ``sequence`` (higher for every bundle the staging area makes) lets a node
refuse a bundle older than the one it installed (cluster/bundle_record.py); ``manifest.sig``, the signature
of the CA that issued ``ssl.crt`` over the manifest's bytes, lets it believe the manifest
(cluster/bundle_sign.py). This module is the format and the checks on arrival; making a bundle is
cluster/bundle_make.py, putting the files in place cluster/bundle_install.py.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import re
import tarfile
import zlib
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509

from sslreconciler.cluster import bundle_sign
from sslreconciler.cluster.sequence import MAX_AHEAD, plausible, when
from sslreconciler.fsio import read_regular
from sslreconciler.model import boundedjson
from sslreconciler.model.errors import CommandError, SslReconcilerError
from sslreconciler.model.findings import SourceError
from sslreconciler.pki import trust, verify
from sslreconciler.pki.sources import parse_certificates, parse_private_key
from sslreconciler.pki.verdict import judge_chain

FORMAT = 1
MAX_BUNDLE_BYTES = 16 * 1024 * 1024  # the .tgz file
MAX_UNPACKED_BYTES = 32 * 1024 * 1024  # everything it decompresses to, headers included
MAX_MEMBER_BYTES = 8 * 1024 * 1024
MAX_HEADER_BYTES = 64 * 1024  # a pax or GNU long-name header
MAX_MEMBERS = 32
MANIFEST_DEPTH = 8  # the manifest's own shape is 2 deep
_EXTENDED_HEADERS = {
    tarfile.XHDTYPE,
    tarfile.XGLTYPE,
    tarfile.SOLARIS_XHDTYPE,
    tarfile.GNUTYPE_LONGNAME,
    tarfile.GNUTYPE_LONGLINK,
}
CA_MEMBER = re.compile(r"^authorities/([A-Za-z0-9][A-Za-z0-9._-]{0,200})\.crt$")
COSIGNED_MEMBER = re.compile(r"^cosigned/([A-Za-z0-9][A-Za-z0-9._-]{0,200})\.sig$")  # bundle_sign.COSIGNED
_CA_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}$")
_FIXED = {"manifest.json", bundle_sign.SIGNATURE, "ssl.key", "ssl.crt", "ssl-web.key", "ssl-web.crt", "authorities.jks"}
PRIVATE = {"ssl.key", "ssl-web.key"}


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True, slots=True)
class Bundle:
    host: str
    ca_name: str
    files: dict[str, bytes]
    sequence: int | None = None  # None: made by a version before sequences
    created: str = ""
    manifest: bytes = b""  # its exact bytes, as signed
    signature: bytes | None = None  # manifest.sig; None: made by a version before signatures
    cosignatures: dict[str, bytes] = field(default_factory=dict)  # CA name -> cosigned/<name>.sig


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
    if not member.isfile() or member.issparse():
        return "is not a plain file"
    if name not in _FIXED and not CA_MEMBER.match(name) and not COSIGNED_MEMBER.match(name):
        return "is not a file a bundle holds"
    if member.size > MAX_MEMBER_BYTES:
        return f"is {member.size} bytes, over the {MAX_MEMBER_BYTES}-byte limit"
    return None


class _Refused(SslReconcilerError):
    """A limit hit while streaming: the reason, refused before anything more is read."""


class _Unpacked(io.RawIOBase):
    """The decompressed bytes of a gzip stream, cut off past MAX_UNPACKED_BYTES."""

    def __init__(self, data: bytes) -> None:
        self._data = memoryview(data)
        self._pos = 0
        self._inflate = zlib.decompressobj(wbits=31)  # gzip framing
        self._total = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        want = len(buffer)
        out = b""
        while not out:
            if self._inflate.unconsumed_tail:
                chunk = self._inflate.unconsumed_tail
            elif self._pos < len(self._data):
                chunk, self._pos = bytes(self._data[self._pos : self._pos + 65536]), self._pos + 65536
            elif self._inflate.eof or not self._pos:
                return 0
            else:
                raise EOFError("compressed data ends early")
            if self._inflate.eof:
                return 0  # anything after the gzip member is ignored, as gzip does for padding
            out = self._inflate.decompress(chunk, want)
        self._total += len(out)
        if self._total > MAX_UNPACKED_BYTES:
            raise _Refused(f"unpacks to more than {MAX_UNPACKED_BYTES} bytes")
        buffer[: len(out)] = out
        return len(out)


class _BoundedTarInfo(tarfile.TarInfo):
    """Refuses an oversized pax or GNU long-name header before tarfile reads it into memory."""

    def _proc_member(self, tar: tarfile.TarFile) -> Any:
        if self.type in _EXTENDED_HEADERS and self.size > MAX_HEADER_BYTES:
            raise _Refused(f"has a {self.size}-byte extended header, over the {MAX_HEADER_BYTES}-byte limit")
        return tarfile.TarInfo.__dict__["_proc_member"](self, tar)


def read_bundle(path: Path) -> Bundle:
    """Everything in the bundle, checked while streaming; CommandError naming the bundle (and member)."""
    try:
        data = read_regular(path, str(path), MAX_BUNDLE_BYTES)
    except SourceError as exc:
        raise CommandError(f"{exc.finding}; nothing installed") from None
    files: dict[str, bytes] = {}
    count = 0
    try:
        stream = io.BufferedReader(_Unpacked(data), 65536)
        with tarfile.open(fileobj=stream, mode="r|", tarinfo=_BoundedTarInfo) as tar:
            for member in tar:
                count += 1
                if count > MAX_MEMBERS:
                    raise _Refused(f"has more than {MAX_MEMBERS} members, more than a bundle holds")
                problem = _member_problem(member)
                if problem:
                    raise CommandError(f"{path}: member {member.name!r} {problem}; nothing installed")
                if member.name in files:
                    raise CommandError(f"{path}: member {member.name!r} appears twice; nothing installed")
                extracted = tar.extractfile(member)
                assert extracted is not None
                files[member.name] = extracted.read(MAX_MEMBER_BYTES + 1)
    except _Refused as exc:
        raise CommandError(f"{path}: {exc}; nothing installed") from None
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        raise CommandError(
            f"{path}: not a readable gzip tar (truncated or corrupt: {exc}); nothing installed"
        ) from None
    return _check_manifest(path, files)


def _check_manifest(path: Path, files: dict[str, bytes]) -> Bundle:
    signature = files.pop(bundle_sign.SIGNATURE, None)  # not in the manifest: it is the manifest's
    cosignatures = {match.group(1): files.pop(name) for name in list(files) if (match := COSIGNED_MEMBER.match(name))}
    try:
        body = files.pop("manifest.json")
        manifest = boundedjson.loads(body, MANIFEST_DEPTH)
        listed: dict[str, str] = manifest["files"]
        host, ca_name = str(manifest["host"]), str(manifest["ca"])
        if manifest.get("format") != FORMAT or not isinstance(listed, dict):
            raise ValueError("unknown format")
        sequence = manifest.get("sequence")
        if sequence is not None and (not isinstance(sequence, int) or isinstance(sequence, bool) or sequence < 0):
            raise ValueError("sequence is not a count")
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
        if sha256_hex(data) != listed[name]:
            raise CommandError(f"{path}: {name} does not match its SHA-256 in the manifest; nothing installed")
    if f"authorities/{ca_name}.crt" not in files or "ssl.key" not in files or "ssl.crt" not in files:
        raise CommandError(f"{path}: needs ssl.key, ssl.crt and authorities/{ca_name}.crt; nothing installed")
    if ("ssl-web.key" in files) != ("ssl-web.crt" in files):
        there, absent = ("ssl-web.key", "ssl-web.crt") if "ssl-web.key" in files else ("ssl-web.crt", "ssl-web.key")
        raise CommandError(f"{path}: holds {there} but no {absent}: a pair comes whole; nothing installed")
    if not _CA_NAME.match(ca_name) or not host or "\0" in host:
        raise CommandError(f"{path}: manifest.json names no usable host or CA; nothing installed")
    if sequence is not None and not plausible(sequence):
        raise CommandError(
            f"{path}: its sequence stands for {when(sequence)}, more than {MAX_AHEAD.days} day ahead of this "
            "machine's clock: no master with a right clock made it (a forged manifest, or the master's clock ran "
            "ahead). If the master's clock was wrong: set it right, remove bundle-sequence.json from its staging "
            "area and make the bundle again; if this machine's clock is behind, set it right; nothing installed"
        )
    if cosignatures and signature is None:
        raise CommandError(
            f"{path}: manifest.json has co-signatures but no signature (no manifest.sig): it was changed after the "
            "master made it; nothing installed"
        )
    missing = sorted(name for name in cosignatures if f"authorities/{name}.crt" not in files)
    if missing:
        raise CommandError(f"{path}: co-signed by {missing[0]}, a CA the bundle does not carry; nothing installed")
    created = str(manifest.get("created", ""))
    return Bundle(host, ca_name, files, sequence, created, body, signature, cosignatures)


@dataclass(frozen=True, slots=True)
class Verified:
    notes: list[str]
    endorsers: list[x509.Certificate]  # the CA of ssl.crt that signed the manifest, then its co-signers; none:
    # an unsigned bundle from before signatures


def verify_bundle(
    path: Path, bundle: Bundle, purposes: Mapping[str, Collection[str]], lowered: frozenset[str] = frozenset()
) -> Verified:
    """Each key matches its certificate, each certificate chains to the bundled CA, and the manifest is
    signed by the CA ``ssl.crt`` chains to. Notes and that CA, or refusal.

    The same trust function as the reconcile (pki/trust.py) with the bundled CA as the only anchor,
    then the policy rules (``lowered``: those the desired state lowers to a warning; ``purposes``: the TLS
    uses each pair, "ssl" and "ssl-web", must allow: those of the desired state's pair it goes to).
    """
    now = dt.datetime.now(dt.UTC)
    issuer: x509.Certificate | None = None
    try:
        anchors = ca_certs(bundle)
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
            uses = purposes.get(target, {trust.SERVER})
            # the one chain verdict, with the bundled CAs as the only anchors: the pair must verify
            verdict = judge_chain(chain, trust.Anchors.of(anchors), now, f"{target}.crt", uses, lowered, require=True)
            if not verdict.trust:
                raise CommandError(
                    f"{path}: {target}.crt is not signed by the bundled CA {bundle.ca_name}"
                    f"{' (or the other bundled CAs)' if len(anchors) > 1 else ''}: "
                    f"{verdict.detail}; nothing installed"
                )
            refused = verdict.refusal
            if refused is not None:
                raise CommandError(f"{path}: {refused}; nothing installed")
            notes.append(f"{target}.crt: {chain[0].subject.rfc4514_string()}, {verdict.detail}")
            if target == "ssl":
                issuer = verdict.chain[-1]  # the anchor: the bundled CA ssl.crt chains to
    except SourceError as exc:
        raise CommandError(f"{path}: {exc.finding}; nothing installed") from None
    except KeyError as exc:
        raise CommandError(f"{path}: {exc.args[0]} missing from its pair; nothing installed") from None
    assert issuer is not None  # ssl.crt is required and verified above
    signer = bundle_sign.signer(path, bundle.manifest, bundle.signature, bundle.sequence, issuer)
    if signer is None:
        return Verified(notes, [])
    cosigned = {
        name: (parse_certificates(bundle.files[f"authorities/{name}.crt"], name), signature)
        for name, signature in bundle.cosignatures.items()
    }
    return Verified(notes, [signer, *bundle_sign.cosigners(path, bundle.manifest, cosigned)])


def ca_certs(bundle: Bundle) -> list[x509.Certificate]:
    """Every CA the bundle carries: during a rotation a pair may be signed by either."""
    return [
        cert
        for name in sorted(bundle.files)
        if CA_MEMBER.match(name)
        for cert in parse_certificates(bundle.files[name], name)
    ]
