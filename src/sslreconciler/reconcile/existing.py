"""What a store on disk holds now: its bytes decoded with the store password. Pure over the bytes.

Opening a PKCS#12 file derives keys from the password (tens of milliseconds a store), so the memo
spares it twice over: bytes this process last wrote or opened hold what they held then, and bytes the
state-dir record says an earlier run verified hold exactly what the plan wants.
"""

from __future__ import annotations

from dataclasses import dataclass

from sslreconciler.reconcile.memo import KnownStore, ReconcileCache, access_digest, store_spec
from sslreconciler.reconcile.plan import ArtifactPlan
from sslreconciler.reconcile.state import OutputFile
from sslreconciler.stores.entries import StoreContent, StoreUnreadable
from sslreconciler.stores.jks import read_jks
from sslreconciler.stores.pkcs12 import Profile, read_pkcs12


@dataclass(frozen=True, slots=True)
class Existing:
    content: StoreContent | None  # None: absent, not a file, no password to open it with, or unreadable
    profile: Profile | None = None
    why_unreadable: str = ""


def plan_spec(plan: ArtifactPlan) -> bytes:
    """Everything the planned store must hold, as the digest the state-dir record is checked against."""
    assert plan.content is not None and plan.password is not None
    return store_spec(plan.kind, plan.profile, plan.password, plan.content)


def existing_content(plan: ArtifactPlan, out: OutputFile, memo: ReconcileCache | None, spec: bytes | None) -> Existing:
    """What a regular output holds, decoded with the store password; the memo spares known bytes.
    ``spec``: ``plan_spec(plan)`` when there is a state-dir record to check it against, else None."""
    if out.kind != "file":
        return Existing(None, why_unreadable=out.why)
    if plan.password is None or out.data is None:  # no password to open it with: only say it is there
        return Existing(None)
    access = access_digest(plan.kind, plan.profile, plan.password)
    known = memo.stores.get(out.path) if memo is not None else None
    if known is not None and (known.digest, known.access) == (out.digest, access):  # bytes this process wrote or opened
        return Existing(known.content, known.profile)
    recorded = None
    if memo is not None and spec is not None:
        recorded = memo.recorded.get(out.path)
        if recorded is not None and (recorded.digest, recorded.spec_mac) == (out.digest.hex(), memo.spec_mac(spec)):
            return Existing(plan.content, plan.profile)  # an earlier run verified these bytes hold exactly this
    profile: Profile | None = None
    try:
        if plan.kind == "pkcs12":
            content, profile = read_pkcs12(out.data, plan.password)
        else:
            content = read_jks(out.data, plan.password)
    except StoreUnreadable as exc:
        if recorded is not None and recorded.digest == out.digest.hex():  # the bytes an earlier run wrote
            return Existing(None, why_unreadable="the store password changed since it was written")
        return Existing(None, why_unreadable=f"cannot be opened with the store password or is corrupt ({exc})")
    if memo is not None:
        memo.stores[out.path] = KnownStore(out.digest, access, content, profile)
    return Existing(content, profile)
