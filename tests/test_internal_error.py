"""An internal error (a bug inside a reconcile) names where it was raised and logs its traceback, once
per distinct error, with no secret in it (issue 23: before, the finding said only "(KeyError)" and
nothing logged the traceback).

The bug is real code failing for real: the reconciler's pure ``decide`` step is replaced (in this
process by monkeypatch, in a CLI or daemon process by a ``sitecustomize`` on PYTHONPATH, Python's own
start-up seam) by ``_broken_decide``, which hands ``printable`` a None, as a careless caller would: the
AttributeError is raised inside ``model/text.py``. On its way it fails to parse a password it holds in a
local variable, so the error's context is a ValueError whose message quotes that password: neither the
local nor that message may reach the log, the finding or the output.
"""

from __future__ import annotations

import inspect
import json
import logging
import os
import textwrap
import traceback
from pathlib import Path

import pytest
from daemonkit import RunningDaemon

from conftest import reconcile, run_cli
from pkitools import Issued, seed_node

HOST = "master.example.com"
SECRET = "hunter2-not-for-logs"
EVENT = "reconcile broke off unexpectedly"


def _broken_decide(*args: object, **kwargs: object) -> object:
    """The reconciler's decide step with a bug in it (its source also goes into the sitecustomize)."""
    from sslreconciler.model.text import printable

    password = "hunter2-not-for-logs"  # a local: never in a log
    try:
        int(password)  # a ValueError quoting its input
    except ValueError:
        printable(None)  # type: ignore[arg-type]  # the bug: raised inside model/text.py, during handling
    raise AssertionError("unreachable")


def _where_the_bug_is_raised() -> str:
    """``model/text.py:<line>``, found by making the same mistake here."""
    from sslreconciler.model.text import printable

    try:
        printable(None)  # type: ignore[arg-type]
    except AttributeError as exc:
        frame = traceback.extract_tb(exc.__traceback__)[-1]
    assert frame.filename.endswith("sslreconciler/model/text.py"), frame
    return f"model/text.py:{frame.lineno}"


def _sitecustomize(tmp: Path) -> dict[str, str]:
    """An environment whose Python starts with the reconciler's decide broken (sitecustomize)."""
    site = tmp / "site"
    site.mkdir(parents=True)
    (site / "sitecustomize.py").write_text(
        inspect.getsource(_broken_decide)
        + textwrap.dedent("""
            import sslreconciler.reconcile.reconciler

            sslreconciler.reconcile.reconciler.decide = _broken_decide
        """)
    )
    return {"PYTHONPATH": os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))}


def _internal(findings: list[dict]) -> list[dict]:
    return [f for f in findings if f["code"] == "internal"]


def _assert_traceback(text: str, where: str) -> None:
    assert "Traceback (most recent call last):" in text and "reconciler.py" in text, text
    assert "model/text.py" in text and "in printable" in text, text  # the frame that raised
    assert "AttributeError (message not logged" in text and "ValueError (message not logged" in text, text
    assert SECRET not in text.replace(f'password = "{SECRET}"', ""), text  # only as the line of code shows it
    assert "isprintable" in text  # the line of code that raised is shown, not its message


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def core_log():
    """The records the core logs (on its own logger: whatever propagation another test configured)."""
    handler = _Records()
    logger = logging.getLogger("sslreconciler.reconcile")
    logger.addHandler(handler)
    yield handler.records
    logger.removeHandler(handler)


def test_a_one_shot_names_where_it_broke_and_logs_the_traceback_once(
    tmp_path: Path, ca: Issued, monkeypatch: pytest.MonkeyPatch, core_log: list[logging.LogRecord]
) -> None:
    import sslreconciler.reconcile.reconciler

    node = seed_node(tmp_path / "n", HOST, ca)
    monkeypatch.setattr(sslreconciler.reconcile.reconciler, "decide", _broken_decide)
    where = _where_the_bug_is_raised()
    for _ in range(3):  # the same bug three times in this process, on the same ssl dir
        result = reconcile(node)
        assert result.rc == 1, result.out + result.err
        report = result.json()
        assert report["status"] == "failed"
        [finding] = _internal(report["findings"])
        assert f"AttributeError, raised at {where}" in finding["reason"], finding
        assert SECRET not in result.out + result.err
    [record] = [r for r in core_log if r.levelno == logging.ERROR]  # once, not three times
    text = record.getMessage()
    assert f"AttributeError, raised at {where}" in text and str(node.ssl_dir) in text
    _assert_traceback(text, where)
    assert record.fields["where"] == where and record.fields["error"] == "AttributeError"  # type: ignore[attr-defined]
    assert record.exc_info is None  # the handler's own formatting would print the messages


def test_a_one_shot_process_prints_the_traceback_on_stderr_and_keeps_stdout_for_the_report(
    tmp_path: Path, ca: Issued
) -> None:
    node = seed_node(tmp_path / "n", HOST, ca)
    where = _where_the_bug_is_raised()
    result = run_cli("reconcile", "--ssl-dir", node.ssl_dir, "--desired-state", node.desired, "--json",
                     env=_sitecustomize(tmp_path), process=True)
    assert result.rc == 1, result.err
    [finding] = _internal(json.loads(result.out)["findings"])  # stdout is the report alone
    assert f"raised at {where}" in finding["reason"]
    assert result.err.count("Traceback (most recent call last):") == 2  # the bug and its context, once
    assert result.err.startswith(f"sslreconciler: {node.ssl_dir}: {EVENT} (AttributeError, raised at {where})")
    _assert_traceback(result.err, where)
    assert SECRET not in result.out
    text = run_cli("check", "--ssl-dir", node.ssl_dir, "--desired-state", node.desired,
                   env=_sitecustomize(tmp_path / "check"), process=True)  # a dry run: the same safety net
    assert text.rc == 1 and f"raised at {where}" in text.out, text.out + text.err
    assert text.err.count(EVENT) == 1


def test_the_daemon_logs_the_traceback_once_and_health_names_where(tmp_path: Path, ca: Issued) -> None:
    node = seed_node(tmp_path / "n", HOST, ca)
    where = _where_the_bug_is_raised()
    daemon = RunningDaemon(node, tmp_path / "d", env=_sitecustomize(tmp_path))
    try:
        daemon.start()
        doc = daemon.wait_for(lambda d: _internal(d["findings"]), what="the internal finding")
        assert doc["status"] == "failed"
        [finding] = _internal(doc["findings"])
        assert f"AttributeError, raised at {where}" in finding["reason"], finding
        for _ in range(2):  # a change the watcher sees: another reconcile, the same bug
            count = daemon.reconciles()
            os.utime(node.ssl_dir / "ssl.crt")
            doc = daemon.wait_for(lambda d, n=count: d["counts"]["reconciles"] > n, what="a reconcile after a change")
            assert [f["reason"] for f in _internal(doc["findings"])] == [finding["reason"]]
    finally:
        daemon.stop()
        daemon.close()
    logs = daemon.logs()
    logged = [line for line in logs if line.get("event") == EVENT and "exception" in line]
    assert len(logged) == 1, daemon.logs_text()  # three reconciles, one traceback
    [line] = logged
    assert line["where"] == where and line["error"] == "AttributeError" and line["level"] == "error"
    assert line["ssl_dir"] == str(node.ssl_dir) and line["logger"] == "sslreconciler.reconcile"
    _assert_traceback(line["exception"], where)
    assert not any("raw" in entry for entry in logs), daemon.logs_text()  # every line JSON: nothing on stderr
    assert SECRET not in daemon.logs_text().replace(f'password = \\"{SECRET}\\"', "")


def test_a_bug_inside_a_commands_change_is_an_internal_finding_not_a_traceback_with_its_message(
    tmp_path: Path, ca: Issued, monkeypatch: pytest.MonkeyPatch, core_log: list[logging.LogRecord]
) -> None:
    """A command's change (web rollback's here) that breaks on a bug, not a refusal: the lock is let go,
    the report says where, the traceback is logged without the message, and the command exits 1."""
    import sslreconciler.cluster.webcert

    def broken_rollback(*args: object, **kwargs: object) -> str:
        raise ValueError(f"read {SECRET} from a file")

    node = seed_node(tmp_path / "n", HOST, ca, web=True)
    monkeypatch.setattr(sslreconciler.cluster.webcert, "rollback_at", broken_rollback)
    result = run_cli("web", "rollback", "--ssl-dir", node.ssl_dir, "--desired-state", node.desired)
    assert result.rc == 1, result.out + result.err
    # the innermost frame of the package: the handler that called the (patched) change
    assert "(ValueError, raised at cli/web_cmds.py:" in result.out, result.out
    assert SECRET not in result.out + result.err
    assert "the change broke off unexpectedly" in result.err
    [record] = [r for r in core_log if r.levelno == logging.ERROR]
    assert SECRET not in record.getMessage() and "ValueError (message not logged" in record.getMessage()
    again = run_cli("reconcile", "--ssl-dir", node.ssl_dir, "--desired-state", node.desired)  # the lock was let go
    assert again.rc == 0, again.out + again.err
