"""Observe's side of the system trust store: read its certificate files (bytes only; decide parses them).

Where: ``system_trust.file`` / ``.dir`` from the desired state, else where OpenSSL looks
(``ssl.get_default_verify_paths()``, which honours ``SSL_CERT_FILE`` and ``SSL_CERT_DIR``). From the
directory only the ``<hash>.N`` names are read, as OpenSSL's lookup does.

What is followed: the store is outside the ssl dir and, on Debian, made of symlinks
(``/etc/ssl/certs/<hash>.0 -> X.pem -> /usr/share/ca-certificates/mozilla/X.crt``). A link is followed
only to a file really inside the store's own directory or one of ``SYSTEM_CA_DIRS`` (checked on the
descriptor), and a file is used only when no one but root or this user could have written it (owner
root or us, no group or other write bit). Every read is bounded and non-blocking (``fsio.read_at``).
A store that is absent is no finding (the pair is then unverified, as it says); a file left out is a
warning naming it.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from sslreconciler.config.desired import DesiredState
from sslreconciler.fsio import list_names, read_at
from sslreconciler.model.findings import Finding, FindingCode, SourceError, warning
from sslreconciler.reconcile.state import HASH_LINK, SystemTrustFiles

# Where distributions keep the CA files their trust stores link to.
SYSTEM_CA_DIRS = (
    Path("/etc/ssl"),
    Path("/usr/lib/ssl"),
    Path("/usr/share/ca-certificates"),
    Path("/usr/local/share/ca-certificates"),
    Path("/etc/ca-certificates"),
    Path("/etc/pki"),
    Path("/usr/share/pki"),
)
MAX_BUNDLE_BYTES = 8 * 1024 * 1024  # Mozilla's bundle is ~220 KB
MAX_FILE_BYTES = 256 * 1024
MAX_DIR_FILES = 4096


def store_paths(desired: DesiredState) -> tuple[Path | None, Path | None]:
    """The bundle file and the hash directory to read (either may be None)."""
    configured = desired.system_trust
    if configured.file is not None or configured.dir is not None:
        return configured.file, configured.dir
    import ssl  # here: its import (libssl's load) is paid only where the system store is read

    found = ssl.get_default_verify_paths()  # None for what does not exist
    return (Path(found.cafile) if found.cafile else None), (Path(found.capath) if found.capath else None)


def _unsafe(st: os.stat_result) -> str:
    if st.st_uid not in (0, os.geteuid()):
        return f"is owned by uid {st.st_uid}, neither root nor this user"
    if st.st_mode & 0o022:
        return f"is writable by group or others (mode {stat.S_IMODE(st.st_mode):04o})"
    return ""


def _read_one(dir_fd: int | None, name: str, display: str, allowed: list[Path], limit: int) -> bytes | Finding:
    try:
        data, st = read_at(dir_fd, name, display, allowed, limit)
    except SourceError as exc:
        return warning(display, f"system trust: left out: {exc.finding.reason}", exc.finding.code)
    why = _unsafe(st)
    if why:
        return warning(display, f"system trust: left out: {why}", FindingCode.UNREADABLE)
    return data


def _real_parent(path: Path) -> Path:
    return Path(os.path.realpath(path)).parent


def read_system_trust(desired: DesiredState) -> tuple[SystemTrustFiles, list[Finding]]:
    """The system store's certificate files' bytes, and a warning for each file left out."""
    bundle, directory = store_paths(desired)
    files: list[tuple[str, bytes]] = []
    findings: list[Finding] = []
    where = [str(p) for p in (bundle, directory) if p is not None]
    if bundle is not None and os.path.lexists(bundle):
        allowed = [_real_parent(bundle), *SYSTEM_CA_DIRS]
        got = _read_one(None, str(bundle), str(bundle), allowed, MAX_BUNDLE_BYTES)
        if isinstance(got, Finding):
            findings.append(got)
        else:
            files.append((str(bundle), got))
    if directory is not None:
        files.extend(_read_dir(directory, findings))
    return SystemTrustFiles(", ".join(where) or "(none found)", tuple(files)), findings


def _read_dir(directory: Path, findings: list[Finding]) -> list[tuple[str, bytes]]:
    try:
        dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return []
    except OSError as exc:
        findings.append(
            warning(str(directory), f"system trust: cannot be listed: {exc.strerror}", FindingCode.UNREADABLE)
        )
        return []
    out: list[tuple[str, bytes]] = []
    try:
        real = Path(os.readlink(f"/proc/self/fd/{dir_fd}"))
        allowed = [real, *SYSTEM_CA_DIRS]
        names, _ = list_names(dir_fd, str(directory))
        hashed = [n for n in names if HASH_LINK.match(n)][:MAX_DIR_FILES]
        for name in hashed:
            display = f"{directory}/{name}"
            got = _read_one(dir_fd, name, display, allowed, MAX_FILE_BYTES)
            if isinstance(got, Finding):
                findings.append(got)
            else:
                out.append((display, got))
    except OSError as exc:
        findings.append(
            warning(str(directory), f"system trust: cannot be listed: {exc.strerror}", FindingCode.UNREADABLE)
        )
    finally:
        os.close(dir_fd)
    return out
