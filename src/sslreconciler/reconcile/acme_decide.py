"""Renew or not, and when: a pure function of what was observed (table-tested, no I/O, no clock).
In the core, not in cluster/acme, because the daemon's /health asks the same "overdue?" question
(through reconcile.acme_state) and a shell never imports another shell.

The rule (docs/acme.md): a missing certificate, one ACME issued from another directory, one that no
longer covers the wanted names, or one past its renewal point is renewed now. A certificate an admin
dropped in (not the one the ACME record says it installed) wins until its own renewal point, unless
``drop_in`` is ``replace``. After a failure, runs back off (doubling from an hour, at most a day) while
the configuration stays the same; ``--force`` ignores all of it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

BACKOFF_FIRST = dt.timedelta(hours=1)
BACKOFF_MAX = dt.timedelta(days=1)
# A renewal point passed this long ago without a new certificate is overdue (status WARNING): the
# timer runs twice a day, so one missed run is normal, two are not.
OVERDUE_AFTER = dt.timedelta(days=1)


@dataclass(frozen=True, slots=True)
class CertFacts:
    """The web certificate in the ssl dir, as observed."""

    fingerprint: str
    names: frozenset[str]
    not_before: dt.datetime
    not_after: dt.datetime


@dataclass(frozen=True, slots=True)
class Wanted:
    """What the desired state's ``acme`` block asks for."""

    directory: str
    names: frozenset[str]
    renew_before: dt.timedelta | None
    drop_in: str  # keep | replace
    config_key: str  # a digest of the settings that matter; a change lifts a back-off


@dataclass(frozen=True, slots=True)
class Memory:
    """What the state dir's ACME record remembers."""

    issued_fingerprint: str | None = None
    issued_directory: str | None = None
    failures: int = 0
    last_failure: dt.datetime | None = None
    failed_config_key: str | None = None


@dataclass(frozen=True, slots=True)
class Decision:
    renew: bool
    reason: str
    renewal_due: dt.datetime | None  # the current certificate's renewal point, when there is one
    next_attempt: dt.datetime | None = None  # when not renewing: the earliest moment a run would act
    backing_off: bool = False  # renewal wanted, held back by earlier failures


def renewal_point(cert: CertFacts, renew_before: dt.timedelta | None, ari_start: dt.datetime | None) -> dt.datetime:
    """When the certificate is due: the server's ARI window, else renew_before, else a third of its life left."""
    if renew_before is not None:
        return cert.not_after - renew_before
    if ari_start is not None:
        return ari_start
    return cert.not_after - (cert.not_after - cert.not_before) / 3


def backoff(failures: int) -> dt.timedelta:
    if failures <= 0:
        return dt.timedelta(0)
    return min(BACKOFF_FIRST * (1 << min(failures - 1, 16)), BACKOFF_MAX)


def is_overdue(renewal_due: dt.datetime | None, now: dt.datetime) -> bool:
    return renewal_due is not None and now - OVERDUE_AFTER > renewal_due  # no sum with a hostile far date


def decide(
    now: dt.datetime,
    wanted: Wanted,
    cert: CertFacts | None,
    memory: Memory,
    ari_start: dt.datetime | None = None,
    force: bool = False,
) -> Decision:
    due = renewal_point(cert, wanted.renew_before, ari_start) if cert else None
    if force:
        return Decision(True, "forced (--force)", due)
    why = _reason_to_renew(now, wanted, cert, memory, due)
    if why is None:
        assert due is not None and cert is not None
        kept = "" if memory.issued_fingerprint == cert.fingerprint else " (a dropped-in certificate: kept until then)"
        return Decision(False, f"nothing to do: renewal point {iso(due)}{kept}", due, due)
    if (
        memory.failures > 0
        and memory.last_failure is not None
        and memory.last_failure <= now  # one "after now" (a forged record, a clock set back) holds nothing back
        and memory.failed_config_key == wanted.config_key
    ):
        retry_at = memory.last_failure + backoff(memory.failures)  # at most now + BACKOFF_MAX
        if now < retry_at:
            return Decision(
                False,
                f"{why}, but backing off after {memory.failures} failed attempt"
                f"{'s' if memory.failures > 1 else ''} until {iso(retry_at)} (--force tries now)",
                due,
                retry_at,
                backing_off=True,
            )
    return Decision(True, why, due)


def _reason_to_renew(
    now: dt.datetime, wanted: Wanted, cert: CertFacts | None, memory: Memory, due: dt.datetime | None
) -> str | None:
    if cert is None or due is None:
        return "no web certificate of its own (ssl-web.key/ssl-web.crt missing)"
    if now >= cert.not_after:
        return f"the web certificate expired at {iso(cert.not_after)}"
    ours = memory.issued_fingerprint == cert.fingerprint
    if not ours:
        if wanted.drop_in == "replace":
            return "the web certificate was not issued by this ACME client and acme.drop_in is replace"
        if now >= due:
            return f"the dropped-in web certificate reached its renewal point {iso(due)}"
        return None
    if memory.issued_directory != wanted.directory:
        return f"the web certificate came from another ACME directory ({memory.issued_directory})"
    missing = sorted(wanted.names - cert.names)
    if missing:
        return f"the web certificate does not cover {', '.join(missing)}"
    if now >= due:
        return f"the renewal point {iso(due)} has passed"
    return None


def iso(when: dt.datetime) -> str:
    """A moment as the ACME record and its messages write it."""
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
