"""The renew-or-not decision, table-tested in-process: no server, no clock, no files."""

from __future__ import annotations

import datetime as dt

import pytest

from sslreconciler.reconcile.acme_decide import CertFacts, Memory, Wanted, backoff, decide, is_overdue, renewal_point

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)
DIR = "https://acme.example/dir"
NAMES = frozenset({"pbx.example.com"})


def cert(fp: str = "ours", names: frozenset[str] = NAMES, days: int = 90) -> CertFacts:
    return CertFacts(fp, names, T0, T0 + days * DAY)


def wanted(names: frozenset[str] = NAMES, renew_before: dt.timedelta | None = None, drop_in: str = "keep",
           directory: str = DIR, key: str = "k1") -> Wanted:
    return Wanted(directory, names, renew_before, drop_in, key)


OURS = Memory(issued_fingerprint="ours", issued_directory=DIR)
FAILED_TWICE = Memory("ours", DIR, failures=2, last_failure=T0 + 61 * DAY, failed_config_key="k1")
# a failure "in the future" (a forged record, a clock set back) holds nothing back, and never overflows
FAILED_AT_MAX = Memory("ours", DIR, failures=3, last_failure=dt.datetime.max.replace(tzinfo=dt.UTC),
                       failed_config_key="k1")
FAILED_IN_2999 = Memory(None, None, failures=3, last_failure=dt.datetime(2999, 1, 1, tzinfo=dt.UTC),
                        failed_config_key="k1")

CASES = [
    # (id, now, wanted, cert, memory, ari, force, renew?, reason contains)
    ("missing", T0, wanted(), None, Memory(), None, False, True, "missing"),
    ("fresh ours", T0 + 10 * DAY, wanted(), cert(), OURS, None, False, False, "renewal point 2026-03-02"),
    ("one third left", T0 + 60 * DAY, wanted(), cert(), OURS, None, False, True, "has passed"),
    ("just before", T0 + 60 * DAY - dt.timedelta(seconds=1), wanted(), cert(), OURS, None, False, False, "nothing"),
    ("renew_before later than a third", T0 + 70 * DAY, wanted(renew_before=10 * DAY), cert(), OURS, None, False, False, "nothing"),
    ("renew_before due", T0 + 60 * DAY, wanted(renew_before=30 * DAY), cert(), OURS, None, False, True, "passed"),
    ("ari early", T0 + 20 * DAY, wanted(), cert(), OURS, T0 + 15 * DAY, False, True, "2026-01-16"),
    ("ari later", T0 + 61 * DAY, wanted(), cert(), OURS, T0 + 70 * DAY, False, False, "nothing"),
    ("expired", T0 + 91 * DAY, wanted(), cert(), OURS, None, False, True, "expired"),
    ("names changed", T0 + DAY, wanted(frozenset({"pbx.example.com", "www.example.com"})), cert(), OURS, None,
     False, True, "does not cover www.example.com"),
    ("other directory", T0 + DAY, wanted(directory="https://other/dir"), cert(), OURS, None, False, True,
     "another ACME directory"),
    ("drop-in kept", T0 + DAY, wanted(), cert("admin"), OURS, None, False, False, "dropped-in"),
    ("drop-in kept whatever names", T0 + DAY, wanted(frozenset({"x.example.com"})), cert("admin"), OURS, None,
     False, False, "dropped-in"),
    ("drop-in near expiry", T0 + 61 * DAY, wanted(), cert("admin"), OURS, None, False, True, "dropped-in"),
    ("drop-in replace", T0 + DAY, wanted(drop_in="replace"), cert("admin"), Memory(), None, False, True, "replace"),
    ("forced", T0 + DAY, wanted(), cert(), OURS, None, True, True, "forced"),
    ("backing off", T0 + 61 * DAY + dt.timedelta(hours=1), wanted(), cert(), FAILED_TWICE, None, False, False,
     "backing off after 2 failed attempts until 2026-03-03T02:00:00Z"),
    ("back-off over", T0 + 61 * DAY + dt.timedelta(hours=2), wanted(), cert(), FAILED_TWICE, None, False, True,
     "passed"),
    ("config changed lifts back-off", T0 + 61 * DAY + dt.timedelta(hours=1), wanted(key="k2"), cert(),
     FAILED_TWICE, None, False, True, "passed"),
    ("failure at the largest date", T0 + 61 * DAY, wanted(), cert(), FAILED_AT_MAX, None, False, True, "passed"),
    ("failure far ahead", T0, wanted(), None, FAILED_IN_2999, None, False, True, "missing"),
    ("force beats back-off", T0 + 61 * DAY + dt.timedelta(hours=1), wanted(), cert(), FAILED_TWICE, None, True,
     True, "forced"),
]


@pytest.mark.parametrize(("now", "want", "facts", "memory", "ari", "force", "renew", "reason"),
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_decide(now, want, facts, memory, ari, force, renew, reason) -> None:
    decision = decide(now, want, facts, memory, ari, force)
    assert decision.renew is renew, decision
    assert reason in decision.reason, decision.reason
    if facts is not None:
        assert decision.renewal_due is not None
    assert decision.backing_off is ("backing off" in reason)


def test_renewal_point_and_backoff_and_overdue() -> None:
    assert renewal_point(cert(), None, None) == T0 + 60 * DAY
    assert renewal_point(cert(), 10 * DAY, T0) == T0 + 80 * DAY  # an explicit setting beats the server's window
    assert [backoff(n) for n in (0, 1, 2, 3)] == [dt.timedelta(0), dt.timedelta(hours=1), dt.timedelta(hours=2),
                                                  dt.timedelta(hours=4)]
    assert backoff(40) == DAY
    assert not is_overdue(None, T0)
    assert not is_overdue(T0, T0 + DAY)
    assert is_overdue(T0, T0 + DAY + dt.timedelta(seconds=1))
    assert not is_overdue(dt.datetime.max.replace(tzinfo=dt.UTC), T0)  # no overflow on the largest date
