"""Compare each planned artifact with what is on disk; write only what differs; keep the last good.

This is the imperative shell around the pure plan: it opens existing stores with the desired
password, rewrites on any semantic difference (entries, password, PKCS#12 profile), fixes modes and
owners in place, and keeps OpenSSL hash links in step.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import grp
import hashlib
import os
import pwd
import stat
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

from sslreconciler.config.desired import Permissions
from sslreconciler.fsio import (
    atomic_symlink_at,
    atomic_write_at,
    list_names,
    lstat_at,
    open_dir,
    open_subdir,
    owner_for_new_files,
    read_at,
    remove_stale_temp_files,
    set_attributes_at,
)
from sslreconciler.model.errors import ConfigError
from sslreconciler.model.findings import Finding, Level, SourceError, error
from sslreconciler.reconcile.contents import ArtifactPlan, Plan
from sslreconciler.reconcile.memo import ReconcileCache
from sslreconciler.reconcile.observe import HASH_LINK
from sslreconciler.reconcile.report import (
    Action,
    ArtifactReport,
    CertInfo,
    LinkReport,
    Report,
    SourceCert,
    Status,
    worst,
)
from sslreconciler.reconcile.trustset import trust_set
from sslreconciler.stores.entries import StoreContent, StoreUnreadable
from sslreconciler.stores.jks import encode_jks, read_jks
from sslreconciler.stores.pkcs12 import encode_pkcs12, read_pkcs12

MAX_STORE_BYTES = 256 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Ownership:
    uid: int | None = None
    gid: int | None = None


def resolve_ownership(permissions: Permissions) -> Ownership:
    """uid/gid to apply; only as root (an unprivileged run cannot chown, and need not)."""
    if os.geteuid() != 0:
        return Ownership()
    try:
        uid = pwd.getpwnam(permissions.owner).pw_uid if permissions.owner else None
    except KeyError:
        raise ConfigError("desired state", f"no such user {permissions.owner!r}", "permissions.owner") from None
    try:
        gid = grp.getgrnam(permissions.group).gr_gid if permissions.group else None
    except KeyError:
        raise ConfigError("desired state", f"no such group {permissions.group!r}", "permissions.group") from None
    return Ownership(uid, gid)


@dataclass(slots=True)
class OnDisk:
    """What an artifact path holds now."""

    exists: bool
    regular: bool = True
    symlink: bool = False
    content: StoreContent | None = None
    why_unreadable: str = ""
    stat: os.stat_result | None = None
    profile: str | None = None
    digest: bytes = b""  # SHA-256 of the bytes read


def _access_digest(plan: ArtifactPlan) -> bytes:
    """How a store is opened (kind, password, profile), as a digest kept in memory only."""
    return hashlib.sha256(f"{plan.kind}\0{plan.profile}\0{plan.password}".encode()).digest()


def _spec(plan: ArtifactPlan) -> bytes:
    """Everything an artifact must hold and how it is opened, as one digest (never stored as is)."""
    assert plan.content is not None
    h = hashlib.sha256(_access_digest(plan))
    for key in plan.content.keys:
        h.update(key.alias.encode() + b"\0" + key.key_der + b"".join(key.chain))
    for alias, der in plan.content.trusted:
        h.update(alias.encode() + b"\0" + der)
    return h.digest()


def _record(cache: ReconcileCache | None, path: Path, plan: ArtifactPlan, digest: bytes) -> None:
    if cache is not None and cache.record_key and plan.content is not None:
        cache.recorded[str(path)] = (digest.hex(), cache.spec_mac(_spec(plan)))


def _read_existing(ssl_fd: int, path: Path, plan: ArtifactPlan, cache: ReconcileCache | None = None) -> OnDisk:
    """What the output ``plan.name`` holds, read through the ssl dir's descriptor, never via a link."""
    try:
        st = lstat_at(ssl_fd, plan.name)
    except OSError as exc:
        return OnDisk(exists=True, regular=False, why_unreadable=f"cannot be looked at ({exc.strerror})")
    if st is None:
        return OnDisk(exists=False)
    if stat.S_ISLNK(st.st_mode):
        return OnDisk(exists=True, symlink=True, why_unreadable="is a symlink (outputs are never written through one)")
    if not stat.S_ISREG(st.st_mode):
        return OnDisk(exists=True, regular=False, why_unreadable="is not a regular file")
    if st.st_size > MAX_STORE_BYTES:
        return OnDisk(exists=True, stat=st, why_unreadable="is larger than any store this program writes")
    try:
        data, st = read_at(ssl_fd, plan.name, plan.name, None, MAX_STORE_BYTES, allow_empty=True)
    except SourceError as exc:
        if exc.finding.code in ("symlink", "not-a-file"):  # swapped since the lstat: treat as in the way
            return OnDisk(exists=True, symlink=exc.finding.code == "symlink", why_unreadable=exc.finding.reason)
        return OnDisk(exists=True, stat=st, why_unreadable=f"cannot be read ({exc.finding.reason})")
    if plan.password is None:  # no password to open it with: only say it is there
        return OnDisk(exists=True, stat=st)
    digest = hashlib.sha256(data).digest()
    access = _access_digest(plan)
    known = cache.stores.get(str(path)) if cache is not None else None
    if known is not None and known[:2] == (digest, access):  # bytes this process wrote or opened before
        return OnDisk(True, content=known[2], stat=st, profile=known[3], digest=digest)
    recorded = cache.recorded.get(str(path)) if cache is not None and plan.content is not None else None
    if recorded is not None and cache is not None and recorded == (digest.hex(), cache.spec_mac(_spec(plan))):
        return OnDisk(True, content=plan.content, stat=st, profile=plan.profile, digest=digest)  # an earlier run's
    try:
        if plan.kind == "pkcs12":
            content, profile = read_pkcs12(data, plan.password)
            disk = OnDisk(True, content=content, stat=st, profile=profile, digest=digest)
        else:
            disk = OnDisk(True, content=read_jks(data, plan.password), stat=st, digest=digest)
    except StoreUnreadable as exc:
        if recorded is not None and recorded[0] == digest.hex():  # the bytes an earlier run wrote: not corrupt
            return OnDisk(True, stat=st, why_unreadable="the store password changed since it was written")
        return OnDisk(True, stat=st, why_unreadable=f"cannot be opened with the store password or is corrupt ({exc})")
    if cache is not None and disk.content is not None:
        cache.stores[str(path)] = (digest, access, disk.content, disk.profile)
    return disk


def _why_rewrite(plan: ArtifactPlan, disk: OnDisk) -> str:
    """Empty when the store on disk already holds exactly what the plan wants."""
    assert plan.content is not None
    if not disk.exists:
        return "missing"
    if disk.content is None:
        return disk.why_unreadable or "unreadable"
    diff = plan.content.differences(disk.content)
    if diff:
        return diff
    if plan.kind == "pkcs12" and disk.profile != plan.profile:
        return f"PKCS#12 profile is {disk.profile or 'unknown'}, should be {plan.profile}"
    return ""


def _encode(plan: ArtifactPlan) -> bytes:
    assert plan.content is not None and plan.password is not None
    if plan.kind == "pkcs12":
        return encode_pkcs12(plan.content.keys[0], plan.password, plan.profile)
    return encode_jks(plan.content, plan.password)


def _leaf(content: StoreContent | None) -> CertInfo | None:
    if content is None or not content.keys:
        return None
    return CertInfo.of(x509.load_der_x509_certificate(content.keys[0].chain[0]))


def _fix_attributes(ssl_fd: int, name: str, st: os.stat_result, mode: int, owner: Ownership) -> str:
    """Correct mode and owner in place on the very inode checked (same bytes); what was corrected."""
    fixed = []
    chown = (owner.uid is not None and st.st_uid != owner.uid) or (owner.gid is not None and st.st_gid != owner.gid)
    if chown:
        fixed.append("owner")
    chmod = stat.S_IMODE(st.st_mode) != mode
    if chmod:
        fixed.append(f"mode {stat.S_IMODE(st.st_mode):04o} -> {mode:04o}")
    set_attributes_at(
        ssl_fd,
        name,
        st,
        mode if chmod else None,
        owner.uid if chown else None,
        owner.gid if chown else None,
    )
    return ", ".join(fixed)


def _attributes_differ(st: os.stat_result, mode: int, owner: Ownership) -> bool:
    return (
        stat.S_IMODE(st.st_mode) != mode
        or (owner.uid is not None and st.st_uid != owner.uid)
        or (owner.gid is not None and st.st_gid != owner.gid)
    )


def apply_artifact(
    plan: ArtifactPlan,
    ssl_dir: Path,
    owner: Ownership,
    dry_run: bool,
    findings: list[Finding],
    cache: ReconcileCache | None = None,
    ssl_fd: int | None = None,
) -> ArtifactReport:
    if ssl_fd is None:
        ssl_fd = open_dir(ssl_dir)
        try:
            return apply_artifact(plan, ssl_dir, owner, dry_run, findings, cache, ssl_fd)
        finally:
            os.close(ssl_fd)
    report = _apply_artifact(plan, ssl_dir, ssl_fd, owner, dry_run, findings, cache)
    report.sources = plan.sources
    return report


def _apply_artifact(
    plan: ArtifactPlan,
    ssl_dir: Path,
    ssl_fd: int,
    owner: Ownership,
    dry_run: bool,
    findings: list[Finding],
    cache: ReconcileCache | None,
) -> ArtifactReport:
    path = ssl_dir / plan.name
    disk = _read_existing(ssl_fd, path, plan, cache)
    related = [f for f in findings if f.file in plan.sources]
    status: Status = worst(["degraded" if f.level is Level.ERROR else "warning" for f in related])
    note = f" ({plan.note})" if plan.note else ""
    if plan.content is None:
        if disk.exists and disk.regular and not disk.symlink:
            return ArtifactReport(
                plan.name,
                plan.kind,
                "kept-last-good",
                worst([status, "degraded"]),
                f"kept the last good store: {plan.blocked_by}",
                _leaf(disk.content),
            )
        return ArtifactReport(plan.name, plan.kind, "failed", "failed", f"cannot be built: {plan.blocked_by}")
    if disk.exists and not disk.regular:
        findings.append(error(plan.name, "is in the way: not a regular file, so it cannot be replaced", "not-a-file"))
        return ArtifactReport(plan.name, plan.kind, "failed", "failed", "an output path holds a non-file")
    why = _why_rewrite(plan, disk)
    certificate = _leaf(plan.content)
    if not why:
        assert disk.stat is not None
        _record(cache, path, plan, disk.digest)
        action: Action = "unchanged"
        message = "up to date"
        if _attributes_differ(disk.stat, plan.mode, owner):
            if dry_run:
                message = "up to date; would fix mode/owner"
            else:
                try:
                    message = f"fixed {_fix_attributes(ssl_fd, plan.name, disk.stat, plan.mode, owner)}"
                except OSError as exc:
                    findings.append(error(plan.name, f"mode/owner not fixed: {exc.strerror}", "attributes"))
                    return ArtifactReport(
                        plan.name, plan.kind, action, "degraded", f"mode/owner not fixed ({exc.strerror})", certificate
                    )
        return ArtifactReport(plan.name, plan.kind, action, status, message + note, certificate)
    if dry_run:
        return ArtifactReport(plan.name, plan.kind, "would-write", status, f"would rewrite: {why}{note}", certificate)
    try:
        encoded = _encode(plan)
        dir_uid, dir_gid = owner_for_new_files(ssl_fd)
        uid = dir_uid if owner.uid is None else owner.uid
        gid = dir_gid if owner.gid is None else owner.gid
        atomic_write_at(ssl_fd, plan.name, encoded, plan.mode, uid, gid)
        if cache is not None:
            written = (hashlib.sha256(encoded).digest(), _access_digest(plan), plan.content, plan.profile)
            cache.stores[str(path)] = written
            _record(cache, path, plan, written[0])
    except OSError as exc:
        findings.append(error(plan.name, f"cannot be written: {exc.strerror}", "write-failed"))
        action = "kept-last-good" if disk.exists else "failed"
        return ArtifactReport(
            plan.name,
            plan.kind,
            action,
            "failed" if action == "failed" else "degraded",
            f"write failed ({exc.strerror})",
            _leaf(disk.content),
        )
    return ArtifactReport(
        plan.name, plan.kind, "written", status, f"rewritten: {why}{note}", certificate, previous=_leaf(disk.content)
    )


def _existing_links(dir_fd: int, rel: str) -> dict[str, str]:
    out: dict[str, str] = {}
    names, _ = list_names(dir_fd, rel)  # names that are not UTF-8 were reported by gather_inputs
    for name in names:
        if HASH_LINK.match(name):
            with contextlib.suppress(OSError):
                out[name] = os.readlink(name, dir_fd=dir_fd)  # EINVAL: not a link
    return out


def apply_links(
    ssl_dir: Path,
    wanted: dict[str, dict[str, str]],
    dry_run: bool,
    findings: list[Finding],
    ssl_fd: int | None = None,
) -> list[LinkReport]:
    """Keep each trust directory's <hash>.N links in step, working inside that directory's descriptor.

    A trust directory that is a symlink (or reached through one) is left alone: its links could be
    anyone's. A link that cannot be made or removed is a finding, never an exception.
    """
    if ssl_fd is None:
        ssl_fd = open_dir(ssl_dir)
        try:
            return apply_links(ssl_dir, wanted, dry_run, findings, ssl_fd)
        finally:
            os.close(ssl_fd)
    reports = []
    for rel, links in wanted.items():
        try:
            dir_fd = open_subdir(ssl_fd, rel)
        except OSError as exc:
            why = "is a symlink or not a real directory" if exc.errno in (errno.ELOOP, errno.ENOTDIR) else exc.strerror
            findings.append(
                error(
                    rel, f"hash links not kept: {why}; links are only made in a directory inside the ssl dir", "links"
                )
            )
            continue
        try:
            reports.append(_apply_dir_links(dir_fd, rel, links, dry_run, findings))
        finally:
            os.close(dir_fd)
    return reports


def _apply_dir_links(
    dir_fd: int, rel: str, links: dict[str, str], dry_run: bool, findings: list[Finding]
) -> LinkReport:
    if not dry_run:
        remove_stale_temp_files(dir_fd)  # temp links a killed run left
    have = _existing_links(dir_fd, rel)
    report = LinkReport(rel)
    for name, target in sorted(links.items()):
        if have.get(name) == target:
            report.unchanged += 1
            continue
        if name not in have and lstat_at(dir_fd, name) is not None:
            findings.append(error(f"{rel}/{name}", "is a file where a hash link belongs; left alone", "not-a-link"))
            continue
        if not dry_run:
            try:
                atomic_symlink_at(dir_fd, name, target)
            except OSError as exc:
                findings.append(error(f"{rel}/{name}", f"hash link cannot be made: {exc.strerror}", "link-failed"))
                continue
        report.added.append(name)
    for name in sorted(set(have) - set(links)):
        if not dry_run:
            try:
                os.unlink(name, dir_fd=dir_fd)
            except FileNotFoundError:
                pass
            except OSError as exc:
                findings.append(
                    error(f"{rel}/{name}", f"stale hash link cannot be removed: {exc.strerror}", "link-failed")
                )
                continue
        report.removed.append(name)
    if (report.added or report.removed) and not dry_run:
        with contextlib.suppress(OSError):
            os.fsync(dir_fd)
    return report


def apply_plan(
    plan: Plan,
    ssl_dir: Path,
    owner: Ownership,
    dry_run: bool,
    started: dt.datetime,
    t0: float,
    cache: ReconcileCache | None = None,
    ssl_fd: int | None = None,
) -> Report:
    findings = list(plan.findings)
    own_fd = ssl_fd is None
    fd = open_dir(ssl_dir) if ssl_fd is None else ssl_fd
    try:
        artifacts = [apply_artifact(a, ssl_dir, owner, dry_run, findings, cache, fd) for a in plan.artifacts]
        links = apply_links(ssl_dir, plan.links, dry_run, findings, fd)
    finally:
        if own_fd:
            os.close(fd)
    certificates = [SourceCert(file, CertInfo.of(cert)) for file, cert in plan.certificates]
    report = Report(str(ssl_dir), started, time.monotonic() - t0, artifacts, findings, links, dry_run, certificates)
    report.trust = trust_set(plan.trusted)
    return report
