"""Installing an HA bundle on a node: everything checked first (``check_bundle``, before the lock), then
all files in place or none (``install_at``, the change of one ``Reconciler.run``).

The bundle's format, and the checks on what it holds, are cluster/bundle.py; what the node remembers of the
bundles it installed (and so refuses: an older one), cluster/bundle_record.py.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

from sslreconciler.cluster import bundle_record, bundle_retire, bundle_sign, node_cas
from sslreconciler.cluster.bundle import (
    CA_MEMBER,
    MAX_MEMBER_BYTES,
    PRIVATE,
    Bundle,
    ca_certs,
    read_bundle,
    verify_bundle,
)
from sslreconciler.cluster.layout import NodeFiles
from sslreconciler.fsio import (
    TEMP_PREFIX,
    lstat_at,
    open_subdir,
    owner_for_new_files,
    read_at,
    write_temp_at,
)
from sslreconciler.model.errors import CommandError
from sslreconciler.model.findings import SourceError
from sslreconciler.pki import verify
from sslreconciler.pki.sources import parse_certificates, parse_private_key

BACKUP_SUFFIX = ".bundle-previous"  # what an install replaced, kept beside it


@dataclass(frozen=True, slots=True)
class Installed:
    done: list[str]  # the files written, then "removed authorities/NAME"
    notes: list[str]  # what was left, or ignored, and why: for the operator to read


@dataclass(frozen=True, slots=True)
class Checked:
    """A bundle read and verified, not yet installed: all that needs no lock."""

    path: Path
    bundle: Bundle
    endorsers: list[x509.Certificate]


def check_bundle(
    path: Path, ssl_dir: Path, files: NodeFiles, host: str | None = None, lowered: frozenset[str] = frozenset()
) -> Checked:
    """Read and verify the bundle before the lock is taken (``host``: this node's name; a bundle made for
    another host is refused. ``lowered``: the policy rules the desired state lowers to a warning), and make
    the ssl dir when a fresh node has none."""
    bundle = read_bundle(path)
    verified = verify_bundle(path, bundle, files.purposes, lowered)  # each pair for its own TLS purposes
    if host is not None and bundle.host.lower() != host.lower():
        raise CommandError(f"{path}: made for {bundle.host}, but this host is {host}; nothing installed")
    ssl_dir.mkdir(parents=True, exist_ok=True)
    return Checked(path, bundle, verified.endorsers)


def install_at(
    checked: Checked,
    ssl_dir: Path,
    ssl_fd: int,
    files: NodeFiles,
    *,
    state_dir: Path,
    takeover: bool = False,
    trust_only: bool = False,
) -> Installed:
    """Put the sources in place (only what differs), all or nothing: the change of ``install-bundle``'s
    reconcile, the writer lock held by the caller (so the daemon cannot sweep our temp files, and the CA
    files retired here and the truststore rebuilt without them are one lock session).

    ``state_dir``: where this node's bundle record is kept (cluster/bundle_record.py): a bundle older than
    the last one installed is refused. The manifest must bear the signature of the CA ``ssl.crt`` chains
    to, and that CA must be one this node already follows, unless ``takeover`` (cluster/bundle_sign.py).
    ``files``: the desired state's names for the bundle's members (cluster/layout.py).
    Every new file is staged first (a temp file beside its target); then each is swapped in, the file it
    replaces kept as ``<name>.bundle-previous``. A failure at any point puts back every file already swapped.
    ``trust_only``: only the bundle's CA files (authorities/), the host pairs left as they are (the first
    step of taking over a cluster whose CA key is gone: every node trusts the new CA before any host uses it).
    """
    path, bundle = checked.path, checked.bundle
    homeless = sorted(
        name for name in ("ssl-web.key", "ssl-web.crt") if name in bundle.files and name not in files.pairs
    )
    if homeless:
        raise CommandError(
            f"{path}: carries {homeless[0]}, but the desired state has {files.no_web}; nothing installed"
        )
    loaded = bundle_record.load(state_dir, ssl_fd, ssl_dir)
    bundle_record.check_order(path, bundle.sequence, bundle.created, loaded.record)
    if not trust_only:  # the host pair is not touched otherwise
        bundle_record.check_identity(path, ssl_fd, files.host_crt, _leaf(bundle), ca_certs(bundle))
    switched = bundle_sign.check_continuity(path, ssl_fd, checked.endorsers, loaded.record, takeover, files)
    deps = node_cas.depended(ssl_fd, loaded.record, files.host_crt, files.authorities)
    dropped = node_cas.check_shares(path, deps, ca_certs(bundle), takeover)  # keeps trust the cluster uses
    carried = {
        name.removeprefix("authorities/"): bundle_record.ders_of(data, name) or frozenset()
        for name, data in bundle.files.items()
        if CA_MEMBER.match(name)
    }
    auth_fd = _authorities_dir(ssl_dir, ssl_fd, files.authorities)
    try:
        written = _swap_in(ssl_dir, ssl_fd, auth_fd, bundle, files, trust_only)
        # CA files an earlier bundle installed and this one no longer carries (a retired CA) go.
        removed, notes = bundle_retire.retire(auth_fd, f"{ssl_dir}/{files.authorities}", loaded.record, carried)
    finally:
        os.close(auth_fd)
    record = bundle_record.NodeRecord(bundle.sequence, carried)
    problem = bundle_record.save(state_dir, ssl_fd, record, loaded.others)
    return Installed(
        written + [f"removed {files.authorities}/{name}" for name in removed],
        loaded.notes + [n for n in (switched, dropped) if n] + notes + ([problem] if problem else []),
    )


def _leaf(bundle: Bundle) -> x509.Certificate:
    """The bundle's ssl.crt leaf (verify_bundle checked it matches ssl.key)."""
    key = parse_private_key(bundle.files["ssl.key"], "ssl.key")
    return verify.order_chain(key, parse_certificates(bundle.files["ssl.crt"], "ssl.crt"), "ssl.crt")[0][0]


def _authorities_dir(ssl_dir: Path, ssl_fd: int, authorities: str) -> int:
    """A descriptor of ``authorities/`` (the desired state's first trust source), made when missing (a
    plain name) and then the ssl dir owner's, as every file root makes there: the daemon, running as that
    user, adds hash links to it."""
    made = False
    if "/" not in authorities:
        try:
            os.mkdir(authorities, 0o755, dir_fd=ssl_fd)
            made = True
        except FileExistsError:
            pass
        except OSError as exc:
            raise CommandError(f"{ssl_dir}/{authorities}: cannot be made: {exc.strerror}; nothing installed") from None
    try:
        auth_fd = open_subdir(ssl_fd, authorities)
    except OSError as exc:
        raise CommandError(
            f"{ssl_dir}/{authorities}: not a real directory ({exc.strerror}); nothing installed"
        ) from None
    uid, gid = owner_for_new_files(ssl_fd)
    if made and uid is not None:
        try:
            os.fchown(auth_fd, uid, -1 if gid is None else gid)
        except OSError as exc:
            os.close(auth_fd)
            raise CommandError(f"{ssl_dir}/{authorities}: cannot be given to uid {uid}: {exc.strerror}") from None
    return auth_fd


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


def _swap_in(
    ssl_dir: Path, ssl_fd: int, auth_fd: int, bundle: Bundle, files: NodeFiles, trust_only: bool = False
) -> list[str]:
    authorities = sorted(name for name in bundle.files if CA_MEMBER.match(name))  # both CAs during a rotation
    order = [*authorities, *(() if trust_only else ("ssl.key", "ssl.crt", "ssl-web.key", "ssl-web.crt"))]
    staged: list[_Staged] = []
    try:
        for member in order:
            if member not in bundle.files:
                continue
            if member.startswith("authorities/"):
                dir_fd, name = auth_fd, member.split("/", 1)[1]
                display = f"{files.authorities}/{name}"
            else:
                dir_fd, name = ssl_fd, files.pairs[member]
                display = name
            if _same_content(dir_fd, name, bundle.files[member]):
                continue
            mode = 0o600 if member in PRIVATE else 0o644
            temp = write_temp_at(dir_fd, name, bundle.files[member], mode, *owner_for_new_files(dir_fd))
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
