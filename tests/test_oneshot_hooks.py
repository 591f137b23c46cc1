"""Hooks run by one-shot commands are seen by the running daemon (issue 26): root's `pki install-bundle`,
`web install` and `reconcile` leave their hooks' results in the daemon's state dir (hook-results.json);
the daemon, run as the service user, shows them in /health, /metrics and `status` at once. Configured
hooks that never ran are listed as `never-run`. A record that cannot be believed is a finding, never a
crash; root never writes through a link the service user placed there.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from bundlekit import host_bundle, service_node
from daemonkit import RunningDaemon, http_get
from userkit import as_user, chown_tree, make_service_user, make_world

from sslreconciler.reconcile.hook_record import BadHookRecord, parse_hook_record

from conftest import run_cli
from pkitools import Issued, make_ca, make_host, seed_node, write

HOST = "sec1.example.com"
RECORD = "hook-results.json"
HOOKS = [
    {"name": "reload-fails", "after": ["ssl.keystore"], "command": ["/bin/false"]},
    {"name": "reload-web", "after": ["ssl-web.keystore"], "command": ["/bin/true"]},
]


@pytest.fixture
def service_user():
    yield from make_service_user("h")


@pytest.fixture
def world() -> Iterator[Path]:
    yield from make_world()


def outcomes(doc: dict) -> dict[str, str]:
    return {label: h["outcome"] for label, h in doc.get("hooks", {}).items()}


def metrics(d: RunningDaemon) -> str:
    code, body = http_get(d.socket, "/metrics")
    assert code == 200
    return body.decode()


def status_text(d: RunningDaemon) -> str:
    result = run_cli("status", "--config", d.config)
    return result.out + result.err


def test_root_one_shots_hooks_reach_the_service_users_daemon(
    world: Path, service_user, monkeypatch: pytest.MonkeyPatch
) -> None:
    bundle = host_bundle(world / "pki", HOST)
    # Root's commands name the daemon's settings (--config) and a state dir of root's own, as the Ansible
    # role does; nothing in the environment says where the daemon keeps its state.
    monkeypatch.delenv("SSLRECONCILER_STATE_DIR")
    node = service_node(world, service_user, host=HOST)
    root_state = node.root / "state"
    node.desired.write_text(json.dumps({"hostname": HOST, "hooks": HOOKS}))
    d = RunningDaemon(node, world / "daemon", wrapper=as_user(service_user))
    daemon_state = d.work / "state"
    # As on a node: root's settings (root reads no settings another user could change), the service
    # user's state dir (systemd's StateDirectory=) and socket dir.
    daemon_state.mkdir(mode=0o700)
    os.chown(daemon_state, service_user.pw_uid, service_user.pw_gid)
    chown_tree(d.sockdir, service_user)
    victim = write(world / "victim", b"root's own file\n", 0o644)
    try:
        d.start()
        # Configured hooks are listed from the start, as never run: /health, /metrics and `status`.
        doc = d.wait_for(lambda x: "hooks" in x, what="the first document")
        assert outcomes(doc) == {"reload-fails": "never-run", "reload-web": "never-run"}, doc.get("hooks")
        assert 'sslreconciler_hook_last_outcome{hook="reload-fails",outcome="never-run"} 1' in metrics(d)
        assert "reload-web: never-run" in status_text(d)

        # The service user's own state dir holds a link named like the record, to a file of root's.
        os.symlink(victim, daemon_state / RECORD)
        os.lchown(daemon_state / RECORD, service_user.pw_uid, service_user.pw_gid)

        installed = run_cli("pki", "install-bundle", bundle, "--config", d.config, "--state-dir", root_state, "--json")
        done = time.monotonic()
        assert installed.rc == 1, installed.out + installed.err  # a hook failed
        assert outcomes(installed.json()) == {"reload-fails": "failed", "reload-web": "ok"}
        doc = d.wait_for(
            lambda x: outcomes(x) == {"reload-fails": "failed", "reload-web": "ok"},
            timeout=60,
            what="root's install-bundle hooks in the daemon's /health",
        )
        seen_after = time.monotonic() - done
        assert seen_after < 10, seen_after
        assert doc["hooks"]["reload-fails"]["exit_code"] == 1
        assert doc["hooks"]["reload-fails"]["started_at"] == installed.json()["hooks"]["reload-fails"]["started_at"]
        d.wait_for(lambda x: x["status"] == "warning", timeout=60, what="the node warning: a hook failed")
        text = metrics(d)
        assert 'sslreconciler_hook_runs_total{hook="reload-fails",outcome="failed"} 1' in text, text
        assert 'sslreconciler_hook_last_outcome{hook="reload-fails",outcome="failed"} 1' in text
        assert 'sslreconciler_hook_last_outcome{hook="reload-web",outcome="ok"} 1' in text
        out = status_text(d)
        assert "reload-fails: failed (exit 1)" in out and "reload-web: ok (exit 0)" in out, out
        # Root wrote a new file in the service user's dir, the user's, 0600; the link's target is untouched.
        assert victim.read_bytes() == b"root's own file\n"
        st = (daemon_state / RECORD).lstat()
        assert stat.S_ISREG(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600
        assert (st.st_uid, st.st_gid) == (service_user.pw_uid, service_user.pw_gid)
        assert json.loads((daemon_state / RECORD).read_bytes())["command"] == "pki install-bundle"
        assert not (root_state / RECORD).exists()  # root's own state dir keeps the bundle record only

        # `web install` as root: the web hook ran a second time, counted once more.
        new = make_host(make_ca("ca.web.example.org"), HOST)
        key = write(world / "web.key", new.key_pem(), 0o600)
        crt = write(world / "web.crt", new.cert_pem())
        web = run_cli(
            "web", "install", "--config", d.config, "--state-dir", root_state, "--cert", crt, "--key", key, "--json"
        )
        assert outcomes(web.json()) == {"reload-web": "ok"}, web.out + web.err
        d.wait_for(
            lambda x: x["counts"]["hook_runs"].get("reload-web", {}).get("ok") == 2,
            timeout=60,
            what="web install's hook counted in the daemon",
        )
        assert 'sslreconciler_hook_runs_total{hook="reload-web",outcome="ok"} 2' in metrics(d)
    finally:
        d.stop()
    # `reconcile` as root while the daemon is down: the daemon shows its hook run when it starts.
    (node.ssl_dir / "ssl.keystore").unlink()
    again = run_cli("reconcile", "--config", d.config, "--state-dir", root_state, "--json")
    assert outcomes(again.json()) == {"reload-fails": "failed"}, again.out + again.err
    try:
        d.start()
        doc = d.wait_for(
            lambda x: (
                x.get("hooks", {}).get("reload-fails", {}).get("started_at")
                == again.json()["hooks"]["reload-fails"]["started_at"]
            ),
            timeout=60,
            what="reconcile's hook run in /health after a restart",
        )
        assert doc["hooks"]["reload-fails"]["outcome"] == "failed"
        assert "reload-fails: failed (exit 1)" in status_text(d)
    finally:
        d.close()


def test_a_record_that_cannot_be_believed_is_a_finding_never_a_crash(tmp_path: Path, ca: Issued) -> None:
    node = seed_node(tmp_path / "n", "master.example.com", ca)
    node.desired.write_text(json.dumps({"hostname": node.host, "hooks": [HOOKS[1]]}))
    d = RunningDaemon(node, tmp_path / "d", env={"SSLRECONCILER_STATE_DIR": str(tmp_path / "d" / "state")})
    record = tmp_path / "d" / "state" / RECORD
    good = {
        "version": 1,
        "command": "reconcile",
        "results": [
            {
                "hook": "reload-web",
                "outcome": "timeout",
                "started_at": "2026-12-06T10:00:00.000001Z",
                "duration_s": 30.0,
                "exit_code": None,
                "detail": "killed after 30 s.",
                "changed": ["ssl-web.keystore"],
            }
        ],
    }

    def refused(what: str) -> dict:
        doc = d.wait_for(
            lambda x: any(f["code"] == "hook-record" and what in f["reason"] for f in x["findings"]),
            timeout=60,
            what=f"a hook-record finding saying {what!r}",
        )
        assert doc["hooks"]["reload-web"]["outcome"] != "timeout"
        return doc

    try:
        d.start()
        d.wait_for(lambda x: x["status"] == "ok", what="ok")
        with record.open("wb") as f:  # huge: refused by its size, never read whole
            f.truncate(64 * 1024 * 1024)
        doc = refused("limit")
        assert doc["status"] == "warning" and "Remove the file" in json.dumps(doc["findings"])
        record.unlink()
        record.write_text("[" * 100000)  # deep
        refused("nests deeper")
        record.write_text(json.dumps(good))
        os.chown(record, 65534, 65534)  # another user's
        refused("owned by uid 65534")
        record.unlink()
        good["results"][0]["started_at"] = dt.datetime.now(dt.UTC).isoformat()  # after the daemon's own run
        record.write_text(json.dumps(good))  # the daemon's own user, 0644 by umask: not writable by others
        doc = d.wait_for(lambda x: outcomes(x).get("reload-web") == "timeout", timeout=60, what="a good record")
        assert not [f for f in doc["findings"] if f["code"] == "hook-record"] and doc["status"] == "warning"
        assert d.proc is not None and d.proc.poll() is None
    finally:
        d.close()


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"{}", "is not a hook record"),
        (b'{"results": [1]}', "a result is not an object"),
        (b'{"results": [{"hook": "h", "outcome": "fine"}]}', "outcome is not one of"),
        (b'{"results": [{"hook": "h", "outcome": "ok", "started_at": "yesterday"}]}', "is not a time"),
        (
            b'{"results": [{"hook": "h", "outcome": "ok", "started_at": "2026-01-01T00:00:00Z", "duration_s": true}]}',
            "duration_s",
        ),
        (
            b'{"results": [{"hook": "h", "outcome": "ok", "started_at": "2026-01-01T00:00:00Z", "duration_s": 1,'
            b' "exit_code": 99999999999999999999999}]}',
            "digits",
        ),
        (b'{"results": [{"hook": "' + b"x" * 5000 + b'", "outcome": "ok"}]}', "at most 4096"),
        (b'{"results": ' + json.dumps([{}] * 300).encode() + b"}", "more than 256"),
        (b"\xff\xfe", "not JSON"),
    ],
)
def test_hook_record_parse_table(data: bytes, reason: str) -> None:
    with pytest.raises(BadHookRecord, match=reason):
        parse_hook_record(data)


def test_hook_record_parse_keeps_a_good_one() -> None:
    raw = {
        "results": [
            {
                "hook": "h",
                "outcome": "failed",
                "started_at": "2026-01-01T00:00:00Z",
                "duration_s": 0.5,
                "exit_code": 3,
                "detail": "no.",
                "changed": ["ssl.keystore"],
            }
        ]
    }
    (result,) = parse_hook_record(json.dumps(raw).encode())
    assert (result.hook, result.outcome, result.exit_code, result.changed) == ("h", "failed", 3, ("ssl.keystore",))


def test_a_link_in_place_of_the_daemons_state_dir_is_not_written_through(
    tmp_path: Path, ca: Issued, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SSLRECONCILER_STATE_DIR")
    node = seed_node(tmp_path / "n", "master.example.com", ca)
    node.desired.write_text(json.dumps({"hostname": node.host, "hooks": [HOOKS[1]]}))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    (tmp_path / "daemon-state").symlink_to(elsewhere)
    config = write(tmp_path / "sslreconciler.toml",
                   f'ssl_dir = "{node.ssl_dir}"\nstate_dir = "{tmp_path / "daemon-state"}"\n'
                   f'desired_state = "{node.desired}"\n'.encode(), 0o644)
    result = run_cli("reconcile", "--config", config, "--state-dir", tmp_path / "own-state")
    assert result.rc == 0, result.out + result.err
    assert "reload-web: ok" in result.out
    assert f"the daemon's state dir {tmp_path / 'daemon-state'}: is a symbolic link" in result.err
    assert "the running daemon does not see these hook runs." in result.err
    assert not (elsewhere / RECORD).exists()
