"""`pki renew` never leaves a certificate due again at once (issue 25, problem 4): a lifetime not longer
than the window gets the default host lifetime and the output says so; a `--days` not longer than the window,
or a CA that expires within it, is refused with nothing written. Two runs in a row: the second changes nothing."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from sslreconciler.cluster.renew import HOST_DAYS, Lifetime, Staged, check, lifetime
from sslreconciler.model.errors import CommandError

from conftest import openssl, run_cli

NOW = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
FAR = NOW + dt.timedelta(days=3000)


def _item(days: int) -> Staged:
    return Staged("h.example.com", "h.example.com", False, NOW + dt.timedelta(days=days), days)


@pytest.mark.parametrize(
    ("own", "within", "days", "want"),
    [
        (10, 30, None, Lifetime(HOST_DAYS, "default", 10)),  # the churn of issue 25: 10 days in a 30-day window
        (30, 30, None, Lifetime(HOST_DAYS, "default", 30)),  # equal is due again at once too
        (31, 30, None, Lifetime(31, "kept", 31)),
        (1095, 30, None, Lifetime(1095, "kept", 1095)),
        (10, 0, None, Lifetime(10, "kept", 10)),
        (10, 30, 365, Lifetime(365, "--days", 10)),
        (10, 30, 20, Lifetime(20, "--days", 10)),  # chosen, then refused by check
    ],
)
def test_the_lifetime_a_due_certificate_gets(own: int, within: int, days: int | None, want: Lifetime) -> None:
    assert lifetime(_item(own), within, days) == want


@pytest.mark.parametrize(
    ("chosen", "within", "ca_not_after", "refused"),
    [
        (Lifetime(HOST_DAYS, "default", 10), 30, FAR, None),
        (Lifetime(31, "kept", 31), 30, FAR, None),
        (Lifetime(20, "--days", 10), 30, FAR, "--days 20: not longer than the --within 30 window"),
        (Lifetime(30, "--days", 10), 30, FAR, "--days 30: not longer than the --within 30 window"),
        (Lifetime(HOST_DAYS, "default", 10), 2000, FAR, "--within 2000: not shorter than the default host lifetime"),
        (Lifetime(HOST_DAYS, "default", 10), 30, NOW + dt.timedelta(days=29), "ca.crt: the cluster CA expires on"),
        (Lifetime(HOST_DAYS, "default", 10), 30, NOW + dt.timedelta(days=30), "ca.crt: the cluster CA expires on"),
        (Lifetime(HOST_DAYS, "default", 10), 30, NOW + dt.timedelta(days=31), None),
    ],
)
def test_what_would_be_due_again_at_once_is_refused(
        chosen: Lifetime, within: int, ca_not_after: dt.datetime, refused: str | None) -> None:
    if refused is None:
        check(chosen, within, "ca", ca_not_after, NOW)
        return
    with pytest.raises(CommandError) as e:
        check(chosen, within, "ca", ca_not_after, NOW)
    assert refused in str(e.value) and "nothing renewed" in str(e.value)


def _ok(*args: str | Path) -> str:
    result = run_cli(*args)
    assert result.rc == 0, result.out + result.err
    return result.out


def _files(staging: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in staging.iterdir() if p.is_file()}


def _not_due_within(cert: Path, days: int) -> bool:
    """openssl's own word: the certificate does not expire within ``days``."""
    return openssl("x509", "-in", cert, "-noout", "-checkend", str(days * 86400), check=False).returncode == 0


def test_a_short_certificate_renewed_twice_in_a_row_changes_nothing_the_second_time(tmp_path: Path) -> None:
    staging = tmp_path / "staging"
    ca = staging / "ca.master.example.com.crt"
    _ok("pki", "init-ca", "--staging", staging, "--name", "ca.master.example.com")
    _ok("pki", "issue", "--staging", staging, "short.example.com", "--days", "10", "--sip-domain", "example.com")
    _ok("pki", "issue", "--staging", staging, "short.example.com", "--web", "--days", "10")
    _ok("pki", "issue", "--staging", staging, "fine.example.com", "--days", "400")
    assert not _not_due_within(staging / "short.example.com.crt", 30)

    out = _ok("pki", "renew", "--staging", staging, "--within", "30")
    assert out.startswith("short.example.com: renewed ssl (short.example.com.crt)")
    assert "1095 days, the default host lifetime: its own 10 days are not longer than the 30-day window" in out
    crt = staging / "short.example.com.crt"
    openssl("verify", "-CAfile", ca, crt)
    assert _not_due_within(crt, 1090) and not _not_due_within(crt, 1100)

    # The second run: nothing due, nothing written (the web pair waits for --web-too).
    before = _files(staging)
    assert _ok("pki", "renew", "--staging", staging, "--within", "30") == \
        "nothing expires within 30 days; nothing renewed\n"
    assert before == _files(staging)

    # --json says it too: days, where they came from, the lifetime before.
    renewed = json.loads(_ok("pki", "renew", "--staging", staging, "--within", "30", "--web-too", "--json"))
    assert [(r["file"], r["days"], r["days_from"], r["previous_days"]) for r in renewed] == [
        ("short.example.com-web.crt", 1095, "default", 10)]
    assert _not_due_within(staging / "short.example.com-web.crt", 1090)
    before = _files(staging)
    assert json.loads(_ok("pki", "renew", "--staging", staging, "--within", "30", "--web-too", "--json")) == []
    assert before == _files(staging)


def test_days_not_longer_than_the_window_is_refused_with_nothing_written(tmp_path: Path) -> None:
    staging = tmp_path / "staging"
    _ok("pki", "init-ca", "--staging", staging, "--name", "ca.master.example.com")
    _ok("pki", "issue", "--staging", staging, "a.example.com", "--days", "10")
    _ok("pki", "issue", "--staging", staging, "b.example.com", "--days", "12")
    before = _files(staging)
    for days in ("20", "30"):
        result = run_cli("pki", "renew", "--staging", staging, "--within", "30", "--days", days)
        assert result.rc == 2 and result.out == ""  # a usage error (test_import_ca_edges.py)
        assert f"--days {days}: not longer than the --within 30 window" in result.err
        assert "Give --days longer than the window" in result.err
        assert before == _files(staging)
    result = run_cli("pki", "renew", "--staging", staging, "--within", "2000")
    assert result.rc == 1 and "not shorter than the default host lifetime (1095 days)" in result.err
    assert before == _files(staging)
    assert "longer than the window" in run_cli("pki", "renew", "--help").out


def test_a_ca_that_expires_within_the_window_is_refused_with_nothing_written(tmp_path: Path) -> None:
    staging = tmp_path / "staging"
    _ok("pki", "init-ca", "--staging", staging, "--name", "ca.short.example.com", "--days", "20")
    _ok("pki", "issue", "--staging", staging, "h.example.com", "--days", "10")
    before = _files(staging)
    result = run_cli("pki", "renew", "--staging", staging, "--within", "30")
    assert result.rc == 1
    assert "ca.short.example.com.crt: the cluster CA expires on" in result.err and "pki rotate-ca" in result.err
    assert before == _files(staging)
