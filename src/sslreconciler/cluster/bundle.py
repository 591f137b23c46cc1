"""HA bundles: what a secondary server needs, made on the master, checked to the bone on arrival.

A bundle is a gzip tar of: ``manifest.json`` (file -> SHA-256), the host's ``ssl.key``/``ssl.crt``
(and ``ssl-web.*`` when staged), ``authorities/<ca-name>.crt`` and an ``authorities.jks``. Never another
host's key, never the CA key. Installing refuses, before anything is written, any member that is not
one of those names as a plain file (absolute paths, ``..``, links, devices, duplicates, oversize), a
manifest mismatch, a key that does not match its certificate, or a certificate not signed by the
bundled CA.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import io
import json
import os
import re
import secrets
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509

from sslreconciler.cluster import bundle_authorities
from sslreconciler.cluster.staging import read_cert, read_key, signer_name, trusted_cas
from sslreconciler.fsio import (
    TEMP_PREFIX,
    atomic_write,
    lstat_at,
    open_subdir,
    opened_dir,
    owner_for_new_files,
    read_at,
    read_regular,
    write_temp_at,
)
from sslreconciler.model.errors import CommandError
from sslreconciler.model.findings import Level, SourceError
from sslreconciler.pki import trust, verify
from sslreconciler.pki.issue import cert_pem
from sslreconciler.pki.sources import parse_certificates, parse_private_key
from sslreconciler.stores.entries import StoreContent, cert_der
from sslreconciler.stores.jks import encode_jks
from sslreconciler.writer_lock import DirLocked, lock_for_writing

FORMAT = 1
MAX_BUNDLE_BYTES = 16 * 1024 * 1024  # the .tgz file
MAX_UNPACKED_BYTES = 32 * 1024 * 1024  # everything it decompresses to, headers included
MAX_MEMBER_BYTES = 8 * 1024 * 1024
MAX_HEADER_BYTES = 64 * 1024  # a pax or GNU long-name header
MAX_MEMBERS = 32
BACKUP_SUFFIX = ".bundle-previous"  # what an install replaced, kept beside it
_EXTENDED_HEADERS = {
    tarfile.XHDTYPE,
    tarfile.XGLTYPE,
    tarfile.SOLARIS_XHDTYPE,
    tarfile.GNUTYPE_LONGNAME,
    tarfile.GNUTYPE_LONGLINK,
}
_CA_MEMBER = re.compile(r"^authorities/([A-Za-z0-9][A-Za-z0-9._-]{0,200})\.crt$")
_CA_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}$")
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
    if not member.isfile() or member.issparse():
        return "is not a plain file"
    if name not in _FIXED and not _CA_MEMBER.match(name):
        return "is not a file a bundle holds"
    if member.size > MAX_MEMBER_BYTES:
        return f"is {member.size} bytes, over the {MAX_MEMBER_BYTES}-byte limit"
    return None


class _Refused(Exception):
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
    if ("ssl-web.key" in files) != ("ssl-web.crt" in files):
        there, absent = ("ssl-web.key", "ssl-web.crt") if "ssl-web.key" in files else ("ssl-web.crt", "ssl-web.key")
        raise CommandError(f"{path}: holds {there} but no {absent}: a pair comes whole; nothing installed")
    if not _CA_NAME.match(ca_name) or not host or "\0" in host:
        raise CommandError(f"{path}: manifest.json names no usable host or CA; nothing installed")
    return Bundle(host, ca_name, files)


def verify_bundle(path: Path, bundle: Bundle, lowered: frozenset[str] = frozenset()) -> list[str]:
    """Each key matches its certificate and each certificate chains to the bundled CA. Notes, or refusal.

    The same trust function as the reconcile (pki/trust.py) with the bundled CA as the only anchor,
    then the policy rules (``lowered``: those the desired state lowers to a warning).
    """
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
            purposes = {trust.SERVER, trust.CLIENT} if target == "ssl" else {trust.SERVER}
            refused = [
                f
                for f in trust.policy_findings(checked.chain, f"{target}.crt", True, purposes, lowered)
                if f.level is Level.ERROR
            ]
            if refused:
                raise CommandError(f"{path}: {refused[0]}; nothing installed")
            notes.append(f"{target}.crt: {chain[0].subject.rfc4514_string()}, {checked.detail}")
    except SourceError as exc:
        raise CommandError(f"{path}: {exc.finding}; nothing installed") from None
    except KeyError as exc:
        raise CommandError(f"{path}: {exc.args[0]} missing from its pair; nothing installed") from None
    return notes


def install_bundle(
    path: Path, ssl_dir: Path, host: str | None = None, lowered: frozenset[str] = frozenset()
) -> list[str]:
    """Check everything, then put the sources in place (only what differs), all or nothing.

    ``host``: this node's name; a bundle made for another host is refused. ``lowered``: the policy rules
    the desired state lowers to a warning. Every new file is staged
    first (a temp file beside its target); then each is swapped in, the file it replaces kept as
    ``<name>.bundle-previous``. A failure at any point puts back every file already swapped.
    """
    bundle = read_bundle(path)
    verify_bundle(path, bundle, lowered)
    if host is not None and bundle.host.lower() != host.lower():
        raise CommandError(f"{path}: made for {bundle.host}, but this host is {host}; nothing installed")
    ssl_dir.mkdir(parents=True, exist_ok=True)
    with opened_dir(ssl_dir) as ssl_fd, contextlib.ExitStack() as held:
        try:
            held.enter_context(lock_for_writing(ssl_fd, str(ssl_dir)))  # the daemon must not sweep our temp files
        except DirLocked as exc:
            raise CommandError(f"{ssl_dir}: {exc.strerror}; nothing installed") from None
        try:
            os.mkdir("authorities", 0o755, dir_fd=ssl_fd)
        except FileExistsError:
            pass
        except OSError as exc:
            raise CommandError(f"{ssl_dir}/authorities: cannot be made: {exc.strerror}; nothing installed") from None
        try:
            auth_fd = open_subdir(ssl_fd, "authorities")
        except OSError as exc:
            raise CommandError(
                f"{ssl_dir}/authorities: not a real directory ({exc.strerror}); nothing installed"
            ) from None
        try:
            written = _swap_in(ssl_dir, ssl_fd, auth_fd, bundle)
        finally:
            os.close(auth_fd)
    # CA files an earlier bundle installed and this one no longer carries (a retired CA) go; others stay.
    authorities = {n.removeprefix("authorities/"): data for n, data in bundle.files.items() if _CA_MEMBER.match(n)}
    removed = bundle_authorities.sync(ssl_dir, authorities)
    return written + [f"removed authorities/{name}" for name in removed]


@dataclass(slots=True)
class _Staged:
    dir_fd: int
    name: str  # the target's name in that directory
    display: str
    temp: str
    backup: str | None = None  # a link to the file it replaces, once swapped
    swapped: bool = False


def _same_content(dir_fd: int, name: str, data: bytes) -> bool:
    try:
        return read_at(dir_fd, name, name, None, MAX_MEMBER_BYTES, allow_empty=True)[0] == data
    except SourceError:
        return False


def _swap_in(ssl_dir: Path, ssl_fd: int, auth_fd: int, bundle: Bundle) -> list[str]:
    authorities = sorted(name for name in bundle.files if _CA_MEMBER.match(name))  # both CAs during a rotation
    order = [*authorities, "ssl.key", "ssl.crt", "ssl-web.key", "ssl-web.crt"]
    staged: list[_Staged] = []
    try:
        for display in order:
            if display not in bundle.files:
                continue
            dir_fd, name = (
                (auth_fd, display.split("/", 1)[1]) if display.startswith("authorities/") else (ssl_fd, display)
            )
            if _same_content(dir_fd, name, bundle.files[display]):
                continue
            mode = 0o600 if display in _PRIVATE else 0o644
            temp = write_temp_at(dir_fd, name, bundle.files[display], mode, *owner_for_new_files(dir_fd))
            staged.append(_Staged(dir_fd, name, display, temp))
        for item in staged:
            if lstat_at(item.dir_fd, item.name) is not None:
                item.backup = write_link_aside(item.dir_fd, item.name)
            os.rename(item.temp, item.name, src_dir_fd=item.dir_fd, dst_dir_fd=item.dir_fd)
            item.swapped = True
    except OSError as exc:
        where = next((i.display for i in staged if not i.swapped), "a file")
        _undo(staged)
        raise CommandError(
            f"{ssl_dir}/{where}: cannot be written ({exc.strerror}); nothing installed, every file as it was"
        ) from None
    for item in staged:  # committed: keep what was replaced under a fixed name
        if item.backup is not None:
            with contextlib.suppress(OSError):
                os.rename(item.backup, item.name + BACKUP_SUFFIX, src_dir_fd=item.dir_fd, dst_dir_fd=item.dir_fd)
    for fd in {ssl_fd, auth_fd}:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    return [item.display for item in staged]


def write_link_aside(dir_fd: int, name: str) -> str:
    """A second name (a hard link, never following a symlink) for what ``name`` is now."""
    aside = f"{TEMP_PREFIX}{name}.{secrets.token_hex(4)}.tmp"
    os.link(name, aside, src_dir_fd=dir_fd, dst_dir_fd=dir_fd, follow_symlinks=False)
    return aside


def _undo(staged: list[_Staged]) -> None:
    """Put back every file already swapped and remove every temp: the node as it was."""
    for item in reversed(staged):
        with contextlib.suppress(OSError):
            if item.swapped and item.backup is not None:
                os.rename(item.backup, item.name, src_dir_fd=item.dir_fd, dst_dir_fd=item.dir_fd)
            elif item.swapped:
                os.unlink(item.name, dir_fd=item.dir_fd)
        for leftover in (item.temp, item.backup):
            if leftover is not None:
                with contextlib.suppress(OSError):
                    os.unlink(leftover, dir_fd=item.dir_fd)
