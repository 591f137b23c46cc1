"""monitoring/: the shipped alert rules pass Debian's `promtool check rules`, and `promtool test rules`
runs their unit tests, which cover every alert both firing and not firing."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
MONITORING = REPO / "monitoring"
RULES = MONITORING / "sslreconciler.rules.yml"

pytestmark = pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed (make tools)")


def _alerts() -> list[str]:
    doc = yaml.safe_load(RULES.read_text())
    return [r["alert"] for g in doc["groups"] for r in g["rules"] if "alert" in r]


def test_rules_check_clean() -> None:
    proc = subprocess.run(["promtool", "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"SUCCESS: {len(_alerts())} rules found" in proc.stdout


def test_rule_unit_tests_pass() -> None:
    tests = sorted((MONITORING / "tests").glob("*.yml"))
    assert tests
    proc = subprocess.run(["promtool", "test", "rules", *map(str, tests)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_every_alert_is_tested_firing_and_not_firing() -> None:
    firing: set[str] = set()
    quiet: set[str] = set()
    for path in (MONITORING / "tests").glob("*.yml"):
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                (firing if check.get("exp_alerts") else quiet).add(check["alertname"])
    alerts = set(_alerts())
    assert alerts == {
        "SslReconcilerCertificateRenewal",
        "SslReconcilerCertificateExpired",
        "SslReconcilerNodeDegraded",
        "SslReconcilerNodeFailed",
        "SslReconcilerHookFailing",
        "SslReconcilerTrustSetDrift",
        "SslReconcilerAcmeRenewalOverdue",
        "SslReconcilerMetricsStale",
        "SslReconcilerMetricsAbsent",
    }
    assert alerts - firing == set(), "alerts without a firing test"
    assert alerts - quiet == set(), "alerts without a not-firing test"


def test_a_broken_rule_fails_its_unit_test(tmp_path: Path) -> None:
    """The unit tests can fail: the same tests against rules whose default renewal window is 19 days, not 30."""
    (tmp_path / "tests").mkdir()
    (tmp_path / "sslreconciler.rules.yml").write_text(RULES.read_text().replace("30 * group", "19 * group"))
    for path in (MONITORING / "tests").glob("*.yml"):
        (tmp_path / "tests" / path.name).write_text(path.read_text())
    proc = subprocess.run(["promtool", "test", "rules", *map(str, (tmp_path / "tests").glob("*.yml"))],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "SslReconcilerCertificateRenewal" in proc.stdout + proc.stderr
