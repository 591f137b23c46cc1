"""The status escalations' one home (model.status.ESCALATIONS), in-process: a failed hook, an overdue ACME
renewal and an unusable ACME record each lower a node to WARNING and never raise it, in the one-shot
report and in the daemon's health document alike."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from sslreconciler.daemon.document import health_document
from sslreconciler.model.findings import FindingCode, warning
from sslreconciler.model.status import ESCALATIONS, Escalation, Status, escalated
from sslreconciler.reconcile.report import HookResult, Report

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
FAILED_HOOK = HookResult("restart", "failed", "2026-01-01T00:00:00Z", 0.1, 1, "exit 1", ("ssl-web.crt",))


@pytest.mark.parametrize(
    ("status", "escalations", "expected"),
    [
        (Status.OK, [], Status.OK),
        (Status.OK, [Escalation.HOOK_FAILED], Status.WARNING),
        (Status.OK, [Escalation.ACME_OVERDUE], Status.WARNING),
        (Status.OK, [Escalation.ACME_RECORD_UNUSABLE], Status.WARNING),
        (Status.OK, list(Escalation), Status.WARNING),
        (Status.DEGRADED, [Escalation.HOOK_FAILED], Status.DEGRADED),  # never better than the stores
        (Status.PENDING, [Escalation.ACME_OVERDUE], Status.PENDING),
    ],
)
def test_escalated(status: Status, escalations: list[Escalation], expected: Status) -> None:
    assert escalated(status, escalations) is expected


def test_every_escalation_is_in_the_table() -> None:
    assert set(ESCALATIONS) == set(Escalation)


def _report(hooks: list[HookResult] | None = None) -> Report:
    return Report("/ssl", NOW, 0.0, [], [], [], hook_results=hooks or [])


def _doc(acme: dict[str, Any] | None, hooks: dict[str, HookResult] | None = None) -> dict[str, Any]:
    return dict(health_document(_report(), "start", {}, hooks or {}, "/d.json", None, acme, 1.0))


def test_a_one_shot_with_a_failed_hook_is_a_warning() -> None:
    assert _report().status is Status.OK
    assert _report([FAILED_HOOK]).status is Status.WARNING


def test_the_daemon_document_escalates_as_the_table_says() -> None:
    assert _doc(None)["status"] == Status.OK
    assert _doc(None, {"restart": FAILED_HOOK})["status"] == Status.WARNING
    assert _doc({"overdue": False})["status"] == Status.OK
    assert _doc({"overdue": True})["status"] == Status.WARNING
    problem = warning("/state/acme.json", "the ACME record is not JSON", FindingCode.ACME).to_dict()
    doc = _doc({"problem": problem})
    assert doc["status"] == Status.WARNING
    assert problem in doc["findings"] and "acme" not in doc
