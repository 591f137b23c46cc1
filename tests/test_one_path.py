"""One path through the code, seen from outside (issue 12): every command that rewrites a store runs the
hooks that follow it, an unknown owner is a finding (never a crash), a future mtime cannot postpone the end
of the grace window, and a writer beside another never fails on it.

Only the CLI and the daemon are driven (subprocesses), never product modules: the package layout may change
under these tests. Hooks are small shell scripts that append what they were told to a log file, so a test
sees each run and its environment independently of the product's own report.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from daemonkit import RunningDaemon, fingerprint, wait_until

from conftest import Result, keytool_list, keytool_sha256, openssl, run_cli
from pkitools import Issued, Node, make_host, seed_node, write

HOST = "master.example.com"
WEB_STORES = {"ssl-web.keystore", "ssl-web.p12"}
HOOK_KEYS = {"hook", "outcome", "started_at", "duration_s", "exit_code", "detail", "changed"}
NO_USER = "no-such-user-zz"
NO_GROUP = "no-such-group-zz"


# --- helpers ------------------------------------------------------------------------------------------------


def hook_script(directory: Path, name: str, exit_code: int = 0) -> tuple[Path, Path]:
    """A hook (argv, no shell) that appends ``CHANGED|SSL_DIR`` to its log, then exits ``exit_code``."""
    directory.mkdir(parents=True, exist_ok=True)
    log = directory / f"{name}.log"
    script = directory / f"{name}.sh"
    script.write_text(
        "#!/bin/sh\n"
        f'printf "%s|%s\\n" "$SSLRECONCILER_CHANGED" "$SSLRECONCILER_SSL_DIR" >> "{log}"\n'
        f"exit {exit_code}\n"
    )
    script.chmod(0o755)
    return script, log


def runs(log: Path) -> list[tuple[set[str], str]]:
    """Each run a hook logged: (the artifacts in SSLRECONCILER_CHANGED, SSLRECONCILER_SSL_DIR)."""
    if not log.exists():
        return []
    out = []
    for line in log.read_text().splitlines():
        changed, _, ssl_dir = line.partition("|")
        out.append((set(changed.split()), ssl_dir))
    return out


def set_desired(desired: Path, host: str = HOST, **fields: Any) -> None:
    desired.write_text(json.dumps({"hostname": host, **fields}))


def hooks_section(out: str) -> dict[str, str]:
    """label -> outcome (and exit) of the ``hooks:`` section of a command's text output (empty when absent).

    A line is ``  LABEL: OUTCOME[ (exit N)][: what it said]``; the detail is left out here."""
    lines = out.splitlines()
    if "hooks:" not in lines:
        return {}
    section = {}
    for line in lines[lines.index("hooks:") + 1:]:
        m = re.fullmatch(r"  (\S[^:]*): ((?:ok|failed|timeout|error)(?: \(exit -?\d+\))?)(?:: .*)?", line)
        if not m:
            break
        section[m.group(1)] = m.group(2)
    return section


def openssl_sha256(crt: Path) -> str:
    out = openssl("x509", "-in", crt, "-noout", "-fingerprint", "-sha256").stdout
    return out.split("=", 1)[1].strip().replace(":", "").lower()


def common(node: Node) -> list[str | Path]:
    return ["--ssl-dir", node.ssl_dir, "--desired-state", node.desired]


def web_install(node: Node, new: Issued, work: Path, *extra: str | Path) -> Result:
    key = write(work / f"{new.fingerprint()[:12]}.key", new.key_pem(), 0o600)
    crt = write(work / f"{new.fingerprint()[:12]}.crt", new.cert_pem())
    return run_cli("web", "install", *common(node), "--cert", crt, "--key", key, *extra)


def check_hook_entry(entry: dict[str, Any], label: str, outcome: str, changed: set[str],
                     exit_code: int | None = 0) -> None:
    """One entry of a command's JSON "hooks": the shape of "hooks" in the daemon's /health."""
    assert set(entry) == HOOK_KEYS, entry
    assert entry["hook"] == label and entry["outcome"] == outcome, entry
    assert set(entry["changed"]) == changed, entry
    if exit_code is not None:
        assert entry["exit_code"] == exit_code, entry


def no_crash(result: Result) -> None:
    assert "Traceback" not in result.err, result.err


# --- 1. hooks after the one-shot commands, no daemon ------------------------------------------------------


def test_reconcile_runs_the_hooks_of_what_it_rewrote(tmp_path: Path, ca: Issued) -> None:
    node = seed_node(tmp_path / "n", HOST, ca, web=True)
    web_hook, web_log = hook_script(tmp_path / "hooks", "web")
    ssl_hook, ssl_log = hook_script(tmp_path / "hooks", "ssl")
    set_desired(node.desired, hooks=[
        {"name": "web", "after": sorted(WEB_STORES), "command": [str(web_hook)]},
        {"name": "ssl", "after": ["ssl.keystore"], "command": [str(ssl_hook)]},
    ])

    # the first reconcile writes every store: each hook runs once, told what it follows
    first = run_cli("reconcile", *common(node), "--json")
    assert first.rc == 0, first.out + first.err
    assert runs(web_log) == [(WEB_STORES, str(node.ssl_dir))]
    assert runs(ssl_log) == [({"ssl.keystore"}, str(node.ssl_dir))]
    hooks = first.json()["hooks"]
    assert set(hooks) == {"web", "ssl"}, hooks
    check_hook_entry(hooks["web"], "web", "ok", WEB_STORES)
    check_hook_entry(hooks["ssl"], "ssl", "ok", {"ssl.keystore"})

    # nothing changed: nothing rewritten, no hook runs
    again = run_cli("reconcile", *common(node), "--json")
    assert again.rc == 0, again.out + again.err
    assert again.json().get("hooks", {}) == {}
    assert len(runs(web_log)) == 1 and len(runs(ssl_log)) == 1

    # a new web pair: `check` never runs hooks, `reconcile` runs only the web one
    new = make_host(ca, HOST)
    write(node.ssl_dir / "ssl-web.key", new.key_pem(), 0o600)
    write(node.ssl_dir / "ssl-web.crt", new.cert_pem())
    checked = run_cli("check", *common(node))
    no_crash(checked)
    assert len(runs(web_log)) == 1 and len(runs(ssl_log)) == 1
    text = run_cli("reconcile", *common(node))
    assert text.rc == 0, text.out + text.err
    assert runs(web_log)[1:] == [(WEB_STORES, str(node.ssl_dir))]
    assert len(runs(ssl_log)) == 1
    assert hooks_section(text.out) == {"web": "ok (exit 0)"}, text.out
    assert keytool_sha256(node.ssl_dir / "ssl-web.keystore", "ssl-web") == new.fingerprint()


def test_a_failing_hanging_or_missing_hook_makes_reconcile_exit_1(tmp_path: Path, ca: Issued) -> None:
    node = seed_node(tmp_path / "n", HOST, ca, web=True)
    broken, broken_log = hook_script(tmp_path / "hooks", "broken", exit_code=3)
    hooks = [
        {"name": "broken", "after": ["ssl-web.keystore"], "command": [str(broken)]},
        {"name": "hang", "after": ["ssl.keystore"], "command": ["sleep", "60"], "timeout": 1},
        {"name": "absent", "after": ["ssl.p12"], "command": [str(tmp_path / "no-such-hook")]},
    ]
    set_desired(node.desired, hooks=hooks)
    result = run_cli("reconcile", *common(node), "--json")
    no_crash(result)
    assert result.rc == 1, result.out + result.err
    report = result.json()
    check_hook_entry(report["hooks"]["broken"], "broken", "failed", {"ssl-web.keystore"}, exit_code=3)
    check_hook_entry(report["hooks"]["hang"], "hang", "timeout", {"ssl.keystore"}, exit_code=None)
    check_hook_entry(report["hooks"]["absent"], "absent", "error", {"ssl.p12"}, exit_code=None)
    assert len(runs(broken_log)) == 1
    # the stores are written all the same
    assert keytool_sha256(node.ssl_dir / "ssl-web.keystore", "ssl-web") == node.web.fingerprint()
    assert keytool_sha256(node.ssl_dir / "ssl.keystore", "ssl") == node.ssl.fingerprint()

    # a new store password: every store rewritten, every hook runs again; the text output lists them
    set_desired(node.desired, hooks=hooks, password={"value": "hooks-pw"})
    text = run_cli("reconcile", *common(node))
    no_crash(text)
    assert text.rc == 1, text.out + text.err
    assert hooks_section(text.out) == {"broken": "failed (exit 3)", "hang": "timeout", "absent": "error"}, text.out
    assert "absent: error: cannot start" in text.out and "hang: timeout: killed after" in text.out, text.out
    assert len(runs(broken_log)) == 2
    assert keytool_sha256(node.ssl_dir / "ssl-web.keystore", "ssl-web", "hooks-pw") == node.web.fingerprint()


def test_a_hook_is_bounded_in_time_and_memory_whatever_it_leaves_behind(tmp_path: Path, ca: Issued) -> None:
    """A hook that leaves a child in its own session holding its output open, or prints hundreds of
    megabytes, must not hold the command past its timeout or fill its memory."""
    node = seed_node(tmp_path / "n", HOST, ca, web=True)
    hooks = [
        {"name": "escapee", "after": ["ssl.keystore"], "timeout": 5,
         "command": ["sh", "-c", "setsid sleep 600 & echo started"]},
        {"name": "stuck", "after": ["ssl.p12"], "timeout": 2,
         "command": ["sh", "-c", "setsid sleep 600 & sleep 600"]},
        {"name": "chatty", "after": ["ssl-web.keystore"], "timeout": 60,
         "command": ["sh", "-c", "head -c 300000000 /dev/zero | tr '\\0' x; echo; echo the-end"]},
    ]
    set_desired(node.desired, hooks=hooks)
    wrapper = ("import json, resource, subprocess, sys, time\n"
               "t0 = time.monotonic()\n"
               "p = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
               "print(json.dumps({'rc': p.returncode, 'out': p.stdout, 'err': p.stderr, 's': time.monotonic() - t0,"
               " 'peak_kib': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))")
    proc = subprocess.run([sys.executable, "-c", wrapper, sys.executable, "-m", "sslreconciler", "reconcile",
                           *map(str, common(node)), "--json"], capture_output=True, text=True, timeout=600)
    run = json.loads(proc.stdout)
    assert "Traceback" not in run["err"], run["err"]
    report = json.loads(run["out"])["hooks"]
    assert report["escapee"]["outcome"] == "ok" and "started" in report["escapee"]["detail"], report
    assert report["stuck"]["outcome"] == "timeout", report
    assert report["chatty"]["outcome"] == "ok" and report["chatty"]["detail"].endswith("the-end"), report
    assert len(report["chatty"]["detail"]) <= 400
    assert run["peak_kib"] < 200 * 1024, f"{run['peak_kib']} KiB peak: the output was kept whole"
    # bounded by the timeouts (2 s, plus the hooks' own run), never by the 600 s children left behind
    assert run["s"] < 300, run["s"]


def test_web_install_and_rollback_run_the_web_hook(tmp_path: Path, ca: Issued) -> None:
    node = seed_node(tmp_path / "n", HOST, ca, web=True)
    assert run_cli("reconcile", *common(node)).rc == 0  # the stores exist before any hook is named
    hook, log = hook_script(tmp_path / "hooks", "web")
    set_desired(node.desired, hooks=[{"name": "web", "after": sorted(WEB_STORES), "command": [str(hook)]}])

    new = make_host(ca, HOST)
    installed = web_install(node, new, tmp_path, "--json")
    assert installed.rc == 0, installed.out + installed.err
    assert runs(log) == [(WEB_STORES, str(node.ssl_dir))]
    check_hook_entry(installed.json()["hooks"]["web"], "web", "ok", WEB_STORES)
    assert keytool_sha256(node.ssl_dir / "ssl-web.keystore", "ssl-web") == new.fingerprint()

    back = run_cli("web", "rollback", *common(node))
    assert back.rc == 0, back.out + back.err
    assert runs(log)[1:] == [(WEB_STORES, str(node.ssl_dir))]
    assert hooks_section(back.out) == {"web": "ok (exit 0)"}, back.out
    assert keytool_sha256(node.ssl_dir / "ssl-web.keystore", "ssl-web") == node.web.fingerprint()

    # a failing hook: exit 1, the new pair installed all the same
    broken, broken_log = hook_script(tmp_path / "hooks", "broken", exit_code=3)
    set_desired(node.desired, hooks=[{"name": "web", "after": ["ssl-web.keystore"], "command": [str(broken)]}])
    newer = make_host(ca, HOST)
    failed = web_install(node, newer, tmp_path, "--json")
    no_crash(failed)
    assert failed.rc == 1, failed.out + failed.err
    check_hook_entry(failed.json()["hooks"]["web"], "web", "failed", {"ssl-web.keystore"}, exit_code=3)
    assert keytool_sha256(node.ssl_dir / "ssl-web.keystore", "ssl-web") == newer.fingerprint()
    undone = run_cli("web", "rollback", *common(node))
    no_crash(undone)
    assert undone.rc == 1, undone.out + undone.err
    assert hooks_section(undone.out) == {"web": "failed (exit 3)"}, undone.out
    assert len(runs(broken_log)) == 2
    assert keytool_sha256(node.ssl_dir / "ssl-web.keystore", "ssl-web") == node.web.fingerprint()


def _staging(tmp_path: Path) -> Path:
    staging = tmp_path / "staging"
    for args in (("init-ca", "--staging", staging, "--name", "ca.master.example.com"),
                 ("issue", "--staging", staging, HOST)):
        result = run_cli("pki", *args)
        assert result.rc == 0, result.out + result.err
    return staging


def _bundle(staging: Path, out: Path, renew: bool = False) -> Path:
    if renew:
        result = run_cli("pki", "issue", "--staging", staging, HOST, "--renew")
        assert result.rc == 0, result.out + result.err
    result = run_cli("pki", "bundle", "--staging", staging, HOST, "-o", out)
    assert result.rc == 0, result.out + result.err
    return out


def test_install_bundle_runs_the_hooks(tmp_path: Path) -> None:
    staging = _staging(tmp_path)
    node_dir = tmp_path / "node"
    node_dir.mkdir()
    desired, ssl_dir = node_dir / "desired.json", node_dir / "ssl"
    hook, log = hook_script(tmp_path / "hooks", "ssl")
    follows = {"ssl.keystore"}  # (authorities.jks holds ssl.crt too: a renewal rewrites it as well)
    set_desired(desired, hooks=[{"name": "ssl", "after": sorted(follows), "command": [str(hook)]}])
    args: list[str | Path] = ["--ssl-dir", ssl_dir, "--desired-state", desired]

    first = _bundle(staging, tmp_path / "first.tgz")
    fresh = run_cli("pki", "install-bundle", first, *args, "--json")
    assert fresh.rc == 0, fresh.out + fresh.err
    assert runs(log) == [(follows, str(ssl_dir))]
    check_hook_entry(fresh.json()["hooks"]["ssl"], "ssl", "ok", follows)

    # the same bundle again: nothing new, no hook
    same = run_cli("pki", "install-bundle", first, *args)
    assert same.rc == 0 and "nothing new" in same.out, same.out + same.err
    assert len(runs(log)) == 1 and hooks_section(same.out) == {}

    # a renewed certificate: ssl.keystore rewritten, the hook runs once more
    before = keytool_sha256(ssl_dir / "ssl.keystore", "ssl")
    renewed = run_cli("pki", "install-bundle", _bundle(staging, tmp_path / "renewed.tgz", renew=True), *args)
    assert renewed.rc == 0, renewed.out + renewed.err
    assert runs(log)[1:] == [({"ssl.keystore"}, str(ssl_dir))]
    assert hooks_section(renewed.out) == {"ssl": "ok (exit 0)"}, renewed.out
    after = keytool_sha256(ssl_dir / "ssl.keystore", "ssl")
    assert after != before and after == openssl_sha256(staging / f"{HOST}.crt")

    # a failing hook: exit 1, the bundle installed all the same
    broken, _ = hook_script(tmp_path / "hooks", "broken", exit_code=3)
    set_desired(desired, hooks=[{"name": "ssl", "after": ["ssl.keystore"], "command": [str(broken)]}])
    failed = run_cli("pki", "install-bundle", _bundle(staging, tmp_path / "third.tgz", renew=True), *args, "--json")
    no_crash(failed)
    assert failed.rc == 1, failed.out + failed.err
    check_hook_entry(failed.json()["hooks"]["ssl"], "ssl", "failed", {"ssl.keystore"}, exit_code=3)
    assert keytool_sha256(ssl_dir / "ssl.keystore", "ssl") == openssl_sha256(staging / f"{HOST}.crt") != after


# --- 1b. the same commands with the daemon running on the ssl dir --------------------------------------------


def _ran_after(log: Path, seen: int, artifact: str) -> bool:
    return any(artifact in changed for changed, _ in runs(log)[seen:])


def test_web_install_and_rollback_beside_the_daemon(tmp_path: Path, ca: Issued) -> None:
    node = seed_node(tmp_path / "n", HOST, ca, web=True)
    hook, log = hook_script(tmp_path / "hooks", "web")
    set_desired(node.desired, hooks=[{"name": "web", "after": sorted(WEB_STORES), "command": [str(hook)]}])
    d = RunningDaemon(node, tmp_path / "d")
    state = ["--state-dir", str(d.work / "state")]  # one state dir, as on a real node
    try:
        built = run_cli("reconcile", *common(node), *state)  # stores built before the daemon
        assert built.rc == 0 and f"{node.ssl_dir}: ok" in built.out, built.out + built.err
        d.start()
        d.wait_for(lambda x: x["status"] == "ok" and fingerprint(x) == node.web.fingerprint(), what="daemon ok")
        pid = d.proc.pid if d.proc else None

        new = make_host(ca, HOST)
        seen = len(runs(log))
        installed = web_install(node, new, tmp_path, *state, "--json")
        assert installed.rc == 0, installed.out + installed.err
        wait_until(lambda: _ran_after(log, seen, "ssl-web.keystore"),
                   what="the web hook after `web install` (run by the one-shot or the daemon)")
        assert keytool_sha256(node.ssl_dir / "ssl-web.keystore", "ssl-web") == new.fingerprint()
        d.wait_for(lambda x: fingerprint(x) == new.fingerprint() and x["status"] == "ok", what="daemon sees it")

        seen = len(runs(log))
        back = run_cli("web", "rollback", *common(node), *state)
        assert back.rc == 0, back.out + back.err
        wait_until(lambda: _ran_after(log, seen, "ssl-web.keystore"),
                   what="the web hook after `web rollback` (run by the one-shot or the daemon)")
        assert keytool_sha256(node.ssl_dir / "ssl-web.keystore", "ssl-web") == node.web.fingerprint()
        d.wait_for(lambda x: fingerprint(x) == node.web.fingerprint() and x["status"] == "ok", what="rolled back")
        assert d.proc is not None and d.proc.poll() is None and d.proc.pid == pid
    finally:
        d.close()


def test_install_bundle_beside_the_daemon(tmp_path: Path) -> None:
    staging = _staging(tmp_path)
    node_dir = tmp_path / "node"
    node_dir.mkdir()
    desired, ssl_dir = node_dir / "desired.json", node_dir / "ssl"
    hook, log = hook_script(tmp_path / "hooks", "ssl")
    set_desired(desired, hooks=[{"name": "ssl", "after": ["ssl.keystore"], "command": [str(hook)]}])
    node = Node(node_dir, HOST, None, None, desired_override=desired)  # type: ignore[arg-type]
    assert node.ssl_dir == ssl_dir
    d = RunningDaemon(node, tmp_path / "d")
    args: list[str | Path] = ["--ssl-dir", ssl_dir, "--desired-state", desired, "--state-dir", d.work / "state"]
    try:
        first = run_cli("pki", "install-bundle", _bundle(staging, tmp_path / "first.tgz"), *args)
        assert first.rc == 0, first.out + first.err
        d.start()
        d.wait_for(lambda x: x["status"] == "ok", what="daemon ok")

        seen = len(runs(log))
        renewed = run_cli("pki", "install-bundle", _bundle(staging, tmp_path / "renewed.tgz", renew=True), *args)
        assert renewed.rc == 0, renewed.out + renewed.err
        wait_until(lambda: _ran_after(log, seen, "ssl.keystore"),
                   what="the ssl hook after `pki install-bundle` (run by the one-shot or the daemon)")
        expected = openssl_sha256(staging / f"{HOST}.crt")
        assert keytool_sha256(ssl_dir / "ssl.keystore", "ssl") == expected
        d.wait_for(lambda x: fingerprint(x, "ssl.keystore") == expected and x["status"] == "ok",
                   what="daemon reports the renewed certificate")
    finally:
        d.close()


# --- 2. an unknown owner or group is a finding, not a crash ----------------------------------------------------


@pytest.mark.parametrize(("field", "name"), [("owner", NO_USER), ("group", NO_GROUP)])
def test_unknown_owner_in_a_live_edit_keeps_the_daemon_up(tmp_path: Path, ca: Issued, field: str, name: str) -> None:
    if os.geteuid() != 0:
        pytest.skip("owners are applied as root (CI runs as root)")
    node = seed_node(tmp_path / "n", HOST, ca, web=True)
    d = RunningDaemon(node, tmp_path / "d")

    def unknown_owner(doc: dict[str, Any]) -> list[dict[str, Any]]:
        return [f for f in doc["findings"] if f.get("code") == "unknown-owner"]

    try:
        d.start()
        d.wait_for(lambda x: x["status"] == "ok", what="daemon ok")
        assert d.proc is not None
        pid = d.proc.pid
        set_desired(node.desired, permissions={field: name})
        doc = d.wait_for(lambda x: bool(unknown_owner(x)) and x["status"] == "degraded",
                         what=f"an unknown-owner finding for {field} {name}")
        assert d.proc.poll() is None and d.proc.pid == pid, d.logs_text()
        (finding,) = unknown_owner(doc)
        assert Path(finding["file"]).resolve() == node.desired.resolve(), finding
        assert name in finding["reason"], finding
        assert d.health()[1]["status"] == "degraded"  # the socket still answers

        set_desired(node.desired)  # edited back: the finding clears
        d.wait_for(lambda x: not unknown_owner(x) and x["status"] == "ok", what="the finding cleared")
        assert d.proc.poll() is None and d.proc.pid == pid
    finally:
        d.close()


@pytest.mark.parametrize(("field", "name"), [("owner", NO_USER), ("group", NO_GROUP)])
def test_unknown_owner_in_a_one_shot_is_exit_1_with_stores_built(tmp_path: Path, ca: Issued, field: str,
                                                                  name: str) -> None:
    if os.geteuid() != 0:
        pytest.skip("owners are applied as root (CI runs as root)")
    node = seed_node(tmp_path / "n", HOST, ca, web=True)
    os.chown(node.ssl_dir, 12345, 12345)  # the service user's directory (a uid with no name is enough)
    set_desired(node.desired, permissions={field: name})

    result = run_cli("reconcile", *common(node), "--json")
    no_crash(result)
    assert result.rc == 1, result.out + result.err
    findings = [f for f in result.json()["findings"] if f.get("code") == "unknown-owner"]
    assert len(findings) == 1, result.out
    assert Path(findings[0]["file"]).resolve() == node.desired.resolve() and name in findings[0]["reason"]
    for store in ("ssl.keystore", "ssl-web.keystore", "authorities.jks", "ssl.p12", "ssl-web.p12"):
        st = (node.ssl_dir / store).stat()
        assert (st.st_uid, st.st_gid) == (12345, 12345), store  # handed to the ssl dir's owner
    assert keytool_list(node.ssl_dir / "ssl.keystore")["ssl"][0] == "PrivateKeyEntry"

    text = run_cli("reconcile", *common(node))
    no_crash(text)
    assert text.rc == 1, text.out + text.err
    assert str(node.desired) in text.out + text.err and name in text.out + text.err


# --- 3. a future mtime cannot hold a finding in "pending" ----------------------------------------------------


@pytest.mark.parametrize("ahead_s", [86400, 10 * 365 * 86400], ids=["one-day", "ten-years"])
def test_a_future_mtime_goes_degraded_when_the_grace_window_ends(tmp_path: Path, ca: Issued, ahead_s: int) -> None:
    node = seed_node(tmp_path / "n", HOST, ca, web=True)
    d = RunningDaemon(node, tmp_path / "d", settings="grace_period = 2.0")
    try:
        d.start()
        d.wait_for(lambda x: x["status"] == "ok", what="daemon ok")
        # garbage with a future mtime, swapped in by rename: the daemon never sees it with a present mtime
        garbage = write(node.ssl_dir / ".garbage", b"garbage, not a certificate\n")
        future = time.time() + ahead_s
        os.utime(garbage, (future, future))
        os.rename(garbage, node.ssl_dir / "ssl-web.crt")
        doc = d.wait_for(lambda x: x["status"] == "degraded",
                         what=f"degraded although ssl-web.crt's mtime is {ahead_s} s ahead")
        assert any("ssl-web.crt" in f["file"] for f in doc["findings"]), doc["findings"]
        assert doc["artifacts"]["ssl-web.keystore"]["action"] == "kept-last-good"
        assert keytool_sha256(node.ssl_dir / "ssl-web.keystore", "ssl-web") == node.web.fingerprint()
    finally:
        d.close()


# --- 4. a writer beside another: `web install` while reconciles run -------------------------------------------


@pytest.mark.slow
def test_web_install_beside_running_reconciles(tmp_path: Path, ca: Issued) -> None:
    node = seed_node(tmp_path / "n", HOST, ca, web=True)
    assert run_cli("reconcile", *common(node)).rc == 0
    for i in range(8):  # without the one-writer lock, some round fails with write-failed
        password = f"pass-{i}"
        set_desired(node.desired, password={"value": password})  # every store rewritten by each reconcile
        reconciles = [subprocess.Popen([sys.executable, "-m", "sslreconciler", "reconcile", *map(str, common(node)),
                                        "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                      for _ in range(2)]
        new = make_host(ca, HOST)
        installed = web_install(node, new, tmp_path)
        for proc in reconciles:
            out, err = proc.communicate(timeout=300)
            assert proc.returncode == 0 and "write-failed" not in out and "Traceback" not in err, out + err
        assert installed.rc == 0 and "write-failed" not in installed.out, installed.out + installed.err
        assert keytool_sha256(node.ssl_dir / "ssl-web.keystore", "ssl-web", password) == new.fingerprint()
        final = run_cli("reconcile", *common(node), "--json")
        assert final.rc == 0 and final.json()["status"] == "ok", final.out
        assert all(a["action"] == "unchanged" for a in final.json()["artifacts"].values()), final.out
