"""Hook runs as the daemon shows them, at the edges (issue 26 follow-up): the newest known run wins
across restarts; results for hooks that are not configured are ignored and each result is counted
once; a recreated state dir is watched again; hook labels are unique and bounded at load; the reload
log line quotes hook names; a record that is a directory is named in the one-shot's note.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import pytest
from daemonkit import RunningDaemon

from sslreconciler.config.desired import DesiredState, load_desired_state
from sslreconciler.config.desired_model import HOOK_LABEL_LIMIT
from sslreconciler.daemon.desired import changes
from sslreconciler.model.errors import ConfigError
from sslreconciler.reconcile.hook_record import HOOK_RECORD, write_hook_record
from sslreconciler.reconcile.report import HookResult

from pkitools import Issued, Node, make_host, seed_node, write

WEB = {"name": "reload-web", "after": ["ssl-web.keystore"], "command": ["/bin/true"]}


def result(hook: str, outcome: str = "failed", when: dt.datetime | None = None) -> dict:
    started = (when or dt.datetime.now(dt.UTC)).isoformat()
    return {
        "hook": hook,
        "outcome": outcome,
        "started_at": started,
        "duration_s": 1.0,
        "exit_code": 1,
        "detail": "x.",
        "changed": [],
    }


def plant(state: Path, results: list[dict]) -> None:
    """A one-shot's record, written as one writes it (a temp renamed over the name)."""
    tmp = state / "x.tmp"
    tmp.write_text(json.dumps({"version": 1, "command": "pki install-bundle", "results": results}))
    os.chmod(tmp, 0o600)
    tmp.rename(state / HOOK_RECORD)


def outcome(d: RunningDaemon, hook: str = "reload-web") -> str | None:
    return d.health()[1].get("hooks", {}).get(hook, {}).get("outcome")


def web_hook_daemon(tmp_path: Path, ca: Issued) -> tuple[Node, Path, RunningDaemon]:
    """A seed node whose desired state has the web hook, and its daemon started, the hook's first run ok."""
    node = seed_node(tmp_path / "n", "master.example.com", ca)
    node.desired.write_text(json.dumps({"hostname": node.host, "hooks": [WEB]}))
    state = tmp_path / "d" / "state"
    d = RunningDaemon(node, tmp_path / "d", env={"SSLRECONCILER_STATE_DIR": str(state)})
    try:
        d.start()
        d.wait_for(lambda x: x["hooks"].get("reload-web", {}).get("outcome") == "ok", what="the first ok run")
    except BaseException:
        d.close()
        raise
    return node, state, d


def test_the_newest_run_wins_across_restarts(tmp_path: Path, ca: Issued) -> None:
    node, state, d = web_hook_daemon(tmp_path, ca)
    try:
        plant(state, [result("reload-web", "failed")])
        d.wait_for(lambda x: x["hooks"]["reload-web"]["outcome"] == "failed", what="the one-shot's failure")
        new = make_host(ca, node.host)  # the daemon runs the hook itself on the next change
        write(node.ssl_dir / "ssl-web.key", new.key_pem(), 0o600)
        write(node.ssl_dir / "ssl-web.crt", new.cert_pem())
        d.wait_for(lambda x: x["hooks"]["reload-web"]["outcome"] == "ok", what="the daemon's own ok run")
        d.stop()
        d.start()
        doc = d.wait_for(lambda x: "reload-web" in x.get("hooks", {}), what="the hook shown after a restart")
        assert doc["hooks"]["reload-web"]["outcome"] == "ok", doc["hooks"]
        assert doc["status"] == "ok", doc
        assert doc["counts"].get("hook_runs", {}).get("reload-web", {}).get("failed") is None, doc["counts"]
    finally:
        d.close()


def test_unconfigured_hooks_are_ignored_and_a_result_counts_once(tmp_path: Path, ca: Issued) -> None:
    _node, state, d = web_hook_daemon(tmp_path, ca)
    try:
        plant(state, [*(result(f"ghost-{i}") for i in range(200)), result("reload-web")])
        d.wait_for(lambda x: x["hooks"]["reload-web"]["outcome"] == "failed", what="the record taken")
        for _ in range(3):  # a touch is an event in the state dir, not a new run
            os.utime(state / HOOK_RECORD)
        plant(state, [result("reload-web", "timeout")])  # the watch takes events in order: this one last
        d.wait_for(lambda x: x["hooks"]["reload-web"]["outcome"] == "timeout", what="the next record taken")
        counts = d.health()[1]["counts"]["hook_runs"]
        assert counts == {"reload-web": {"ok": 1, "failed": 1, "timeout": 1}}, counts
    finally:
        d.close()


def test_a_recreated_state_dir_is_watched_again(tmp_path: Path, ca: Issued) -> None:
    node = seed_node(tmp_path / "n", "master.example.com", ca)
    node.desired.write_text(json.dumps({"hostname": node.host, "hooks": [WEB]}))
    state = tmp_path / "d" / "state"
    d = RunningDaemon(node, tmp_path / "d", settings="resync_interval = 2", env={"SSLRECONCILER_STATE_DIR": str(state)})
    try:
        d.start()
        d.wait_for(lambda x: x["hooks"].get("reload-web", {}).get("outcome") == "ok", what="the first ok run")
        plant(state, [result("reload-web", "failed")])
        d.wait_for(lambda x: x["hooks"]["reload-web"]["outcome"] == "failed", what="the record taken")
        state.rename(state.with_name("state.old"))
        state.mkdir(mode=0o700)
        plant(state, [result("reload-web", "timeout")])
        d.wait_for(
            lambda x: x["hooks"]["reload-web"]["outcome"] == "timeout",
            timeout=30,
            what="the record in the recreated state dir, by the next resync",
        )
        plant(state, [result("reload-web", "error")])
        d.wait_for(lambda x: x["hooks"]["reload-web"]["outcome"] == "error", what="the next record, watched")
    finally:
        d.close()


def _desired(tmp_path: Path, hooks: list[dict]) -> Path:
    path = tmp_path / "desired.json"
    path.write_text(json.dumps({"hooks": hooks}))
    os.chmod(path, 0o644)
    return path


def test_duplicate_hook_labels_are_a_config_error(tmp_path: Path) -> None:
    hooks = [
        {"name": "reload", "after": ["ssl.keystore"], "command": ["/bin/false"]},
        WEB,
        {"name": "reload", "after": ["ssl-web.keystore"], "command": ["/bin/true"]},
    ]
    with pytest.raises(ConfigError) as err:
        load_desired_state(_desired(tmp_path, hooks))
    assert "hooks[0] and hooks[2]" in str(err.value) and "unique" in str(err.value), err.value
    unnamed = [
        {"after": ["ssl.keystore"], "command": ["/bin/true"]},
        {"after": ["ssl-web.keystore"], "command": ["/bin/true"]},
    ]
    with pytest.raises(ConfigError, match=r"hooks\[0\] and hooks\[1\]"):
        load_desired_state(_desired(tmp_path, unnamed))


def test_a_label_over_the_limit_is_a_config_error(tmp_path: Path) -> None:
    long = [{"after": ["ssl.keystore"], "command": ["/bin/echo", "x" * HOOK_LABEL_LIMIT]}]
    with pytest.raises(ConfigError) as err:
        load_desired_state(_desired(tmp_path, long))
    assert "hooks[0]" in str(err.value) and str(HOOK_LABEL_LIMIT) in str(err.value), err.value
    fits = [{"after": ["ssl.keystore"], "command": ["/bin/echo", "x" * (HOOK_LABEL_LIMIT - 10)]}]
    assert len(load_desired_state(_desired(tmp_path, fits)).hooks) == 1


def test_the_reload_line_quotes_hook_names() -> None:
    forged = "x\n2026-12-06T00:00:00Z [error    ] FORGED line\x1b[2J"
    new = DesiredState.model_validate(
        {
            "hooks": [
                {"name": forged, "after": ["ssl.keystore"], "command": ["/bin/true"]},
                {"name": "-a b", "after": ["ssl.keystore"], "command": ["/bin/true"]},
            ]
        }
    )
    line = changes(DesiredState(), new)
    assert "\n" not in line and "\x1b" not in line, line
    assert line == f"hooks +{forged!r} +'-a b'", line


def test_a_record_that_is_a_directory_is_named(tmp_path: Path) -> None:
    (tmp_path / HOOK_RECORD).mkdir()
    run = HookResult("reload-web", "ok", dt.datetime.now(dt.UTC).isoformat(), 0.1, 0, "", ())
    note = write_hook_record(tmp_path, "reconcile", [run])
    assert note is not None and str(tmp_path / HOOK_RECORD) in note and "is a directory" in note, note
