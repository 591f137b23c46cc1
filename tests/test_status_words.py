"""`status` names the worst cause in words on its first line (the Nagios/Icinga line: state word and exit
code unchanged), the text reports show each finding's code, and every count has the right plural."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

from sslreconciler.cli.status import render

from conftest import reconcile, run_cli
from pkitools import Issued, make_host, seed_node, write

OVERDUE = {"overdue": True, "renewal_due": "2026-12-01T00:00:00Z", "last_result": "failed"}
NEVER_RUN = {"outcome": "never-run", "started_at": None, "exit_code": None, "detail": ""}  # as the daemon lists it
CODES = {"OK": 0, "WARNING": 1, "CRITICAL": 2}
HOOK_FAILED = {"outcome": "failed", "exit_code": 3, "started_at": "2026-12-05T10:00:00Z", "detail": "boom"}


def _finding(level: str, file: str, reason: str, code: str, pending: bool = False) -> dict[str, str]:
    return {"level": level, "file": file, "reason": reason, "code": code, **({"pending": "true"} if pending else {})}


def _doc(status: str, **parts: Any) -> dict[str, Any]:
    return {"status": status, "artifacts": {"a.jks": {"status": "ok"}, "b.jks": {"status": "ok"}}, **parts}


@pytest.mark.parametrize(
    ("doc", "label", "line"),
    [
        (_doc("ok"), "OK", "SSLRECONCILER OK - ok: 2 artifacts, 0 errors, 0 warnings, 0 failed hooks"),
        (  # the example: an escalation, no finding
            _doc("warning", acme=OVERDUE),
            "WARNING",
            "SSLRECONCILER WARNING - ssl-web.crt: ACME renewal overdue since 2026-12-01, last run failed (acme); "
            "warning: 2 artifacts, 0 errors, 0 warnings, 0 failed hooks",
        ),
        (  # a finding beats an escalation of the same rank; one of each count in the singular
            _doc("warning", acme=OVERDUE, findings=[_finding("warning", "ssl.crt", "expires in 3 days", "expiring")]),
            "WARNING",
            "SSLRECONCILER WARNING - ssl.crt: expires in 3 days (expiring); "
            "warning: 2 artifacts, 0 errors, 1 warning, 0 failed hooks",
        ),
        (  # an error beats an earlier warning and a failed hook
            _doc(
                "degraded",
                hooks={"reload": HOOK_FAILED},
                findings=[
                    _finding("warning", "x.crt", "w", "hostname"),
                    _finding("error", "ssl.key", "is pending", "garbage", pending=True),
                    _finding("error", "ssl.crt", "does not match the private key in ssl.key", "key-mismatch"),
                ],
            ),
            "CRITICAL",
            "SSLRECONCILER CRITICAL - ssl.crt: does not match the private key in ssl.key (key-mismatch); "
            "degraded: 2 artifacts, 2 errors, 1 warning, 1 failed hook",
        ),
        (
            _doc("warning", hooks={"reload": HOOK_FAILED, "ok": {"outcome": "ok", "detail": ""}, "new": NEVER_RUN}),
            "WARNING",
            "SSLRECONCILER WARNING - hook reload: failed with exit 3 at 2026-12-05T10:00:00Z (hook-failed); "
            "warning: 2 artifacts, 0 errors, 0 warnings, 1 failed hook",
        ),
        (  # a daemon still starting: its message
            {"status": "pending", "message": "starting: first reconcile not done yet", "artifacts": {}, "findings": []},
            "WARNING",
            "SSLRECONCILER WARNING - starting: first reconcile not done yet; pending: 0 artifacts, 0 errors, 0 warnings, "
            "0 failed hooks",
        ),
        (  # no finding: the artifact's own status and message; a "|" would start performance data
            {"status": "failed", "artifacts": {"t.jks": {"status": "failed", "message": "broke | off"}}},
            "CRITICAL",
            "SSLRECONCILER CRITICAL - t.jks: broke / off (failed); failed: 1 artifact, 0 errors, 0 warnings, "
            "0 failed hooks",
        ),
    ],
)
def test_the_summary_line_names_the_worst_cause(doc: dict[str, Any], label: str, line: str) -> None:
    assert render(doc, CODES[label]).splitlines()[0] == line  # type: ignore[arg-type]


def test_any_hook_outcome_renders() -> None:
    """``status`` renders whatever outcome the daemon reports, a configured hook that never ran included."""
    doc = _doc("warning", hooks={"new": NEVER_RUN, "reload": HOOK_FAILED})
    text = render(doc, 1)  # type: ignore[arg-type]
    assert (
        "  new: never-run (no run known since the daemon started)" in text
        and "  reload: failed (exit 3) at 2026-12-05T10:00:00Z: boom" in text
    )
    assert text.splitlines()[0].endswith("1 failed hook")


def test_a_long_cause_is_cut_to_one_short_line() -> None:
    doc = _doc("warning", findings=[_finding("warning", "f.crt", "word\n" * 200, "warning")])
    line = render(doc, 1).splitlines()[0]  # type: ignore[arg-type]
    assert "\n" not in line and line.endswith("0 failed hooks") and len(line) < 400 and "..." in line


# --- the CLI, one-shot --------------------------------------------------------------------------------------


def test_the_text_report_shows_codes_and_plurals(tmp_path: Path, ca: Issued) -> None:
    node = seed_node(tmp_path / "n", "master.example.com", ca)
    soon = make_host(ca, node.host, days=10)
    write(node.ssl_dir / "ssl.key", soon.key_pem(), 0o600)
    write(node.ssl_dir / "ssl.crt", soon.cert_pem())
    for command in ("check", "reconcile"):
        result = run_cli(command, "--ssl-dir", node.ssl_dir, "--desired-state", node.desired)
        assert result.rc == 0, result.out + result.err
        assert "findings (0 errors, 1 warning):" in result.out, result.out
        line = next(x for x in result.out.splitlines() if "[expiring]" in x)
        assert line.startswith("  warning [expiring]: ssl.crt: expires in ") and line.endswith("."), line
    as_json = reconcile(node, command="check").json()
    assert [f["code"] for f in as_json["findings"]] == ["expiring"]  # the JSON is as it was


# --- the daemon and `status` --------------------------------------------------------------------------------


def _iso(when: dt.datetime) -> str:
    return when.replace(microsecond=0).isoformat().replace("+00:00", "Z")


@pytest.mark.slow
def test_status_names_the_worst_cause_from_a_running_daemon(tmp_path: Path, ca: Issued) -> None:
    from daemonkit import RunningDaemon

    if os.geteuid() != 0:
        pytest.skip("the daemon tests run as root")
    node = seed_node(tmp_path / "n", "master.example.com", ca, web=True)
    now = dt.datetime.now(dt.UTC)
    acme = {"directory": "https://acme.invalid/directory", "challenge": {"listen": "127.0.0.1:8402"}}
    node.desired.write_text(json.dumps({"hostname": node.host, "acme": acme}))
    state = tmp_path / "d" / "state"
    d = RunningDaemon(node, tmp_path / "d", env={"SSLRECONCILER_STATE_DIR": str(state)})
    state.mkdir(parents=True, exist_ok=True)
    due = now - dt.timedelta(days=5)
    record = {
        "directory": acme["directory"],
        "names": [node.host],
        "not_after": _iso(now + dt.timedelta(days=20)),
        "renewal_due": _iso(due),
        "last_attempt": _iso(now - dt.timedelta(hours=2)),
        "last_result": "failed",
        "last_error": {"type": "connection", "detail": "connection refused"},
        "failures": 3,
    }
    write(state / "acme.json", json.dumps(record).encode())

    def status() -> tuple[int, list[str]]:
        result = run_cli("status", "--socket", d.socket)
        return result.rc, result.out.splitlines()

    try:
        d.start()
        d.wait_for(lambda x: (x.get("acme") or {}).get("overdue") is True, what="the overdue renewal seen")
        rc, lines = status()
        assert rc == 1, lines
        assert lines[0] == (
            f"SSLRECONCILER WARNING - ssl-web.crt: ACME renewal overdue since {_iso(due)[:10]}, last run failed "
            "(acme); warning: 14 artifacts, 0 errors, 0 warnings, 0 failed hooks"
        ), lines[0]

        # a certificate running out: a finding, named before the escalation, its code in the findings list
        soon = make_host(ca, node.host, days=10)
        write(node.ssl_dir / ".k", soon.key_pem(), 0o600)
        write(node.ssl_dir / ".c", soon.cert_pem())
        os.rename(node.ssl_dir / ".k", node.ssl_dir / "ssl.key")
        os.rename(node.ssl_dir / ".c", node.ssl_dir / "ssl.crt")
        d.wait_for(lambda x: any(f["code"] == "expiring" for f in x["findings"]), what="the expiry warning")
        rc, lines = status()
        assert rc == 1 and re.match(r"SSLRECONCILER WARNING - ssl\.crt: expires in \d+ days", lines[0]), lines
        assert "(expiring); warning: 14 artifacts, 0 errors, 1 warning, 0 failed hooks" in lines[0], lines[0]
        finding = next(x for x in lines if x.startswith("  warning [expiring]: ssl.crt: "))
        assert "pki renew" in finding and finding.endswith("."), finding
    finally:
        d.close()
