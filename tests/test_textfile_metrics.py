"""The `metrics_textfile` setting: the daemon writes its /metrics text into node_exporter's textfile
directory after every reconcile and hook outcome, atomically, mode 0644, never through a link, never a
secret; a write failure is a log line and the daemon goes on. Checked with Debian's `promtool`."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from daemonkit import RunningDaemon, http_get, wait_until

from sslreconciler.config.settings import load_settings
from sslreconciler.model.errors import ConfigError

from conftest import PASSWORD
from pkitools import Issued, make_host, seed_node, write

NAME = "sslreconciler.prom"


def _promtool_check(text: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        (None, True),
        ("/var/lib/prometheus/node-exporter/sslreconciler.prom", True),
        ("/var/lib/node_exporter/textfile_collector/pbx.prom", True),
        ("relative/sslreconciler.prom", False),  # the daemon's cwd is no place for it
        ("/var/lib/prometheus/node-exporter/sslreconciler.txt", False),  # the collector would never read it
        ("/var/lib/prometheus/node-exporter/", False),
    ],
)
def test_setting_names_an_absolute_prom_file(tmp_path: Path, value: str | None, ok: bool) -> None:
    config = tmp_path / "s.toml"
    config.write_text("" if value is None else f'metrics_textfile = "{value}"\n')
    if ok:
        assert load_settings(config, env={}).metrics_textfile == (None if value is None else Path(value))
    else:
        with pytest.raises(ConfigError) as err:
            load_settings(config, env={})
        assert "metrics_textfile" in str(err.value) and ".prom" in str(err.value)


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed (make tools)")
def test_textfile_appears_updates_and_passes_promtool(tmp_path: Path, ca: Issued) -> None:
    node = seed_node(tmp_path / "n", "master.example.com", ca, web=True)
    node.desired.write_text(json.dumps({"hostname": node.host, "hooks": [
        {"name": "reload-web", "after": ["ssl-web.keystore"],
         "command": [sys.executable, "-c", "import time, sys; time.sleep(1.5); sys.exit(3)"]},
    ]}))
    textdir = tmp_path / "textfile"
    textdir.mkdir(mode=0o755)
    target = textdir / NAME
    victim = tmp_path / "victim"
    victim.write_text("not yours\n")
    target.symlink_to(victim)  # a link in the way is replaced, never written through
    d = RunningDaemon(node, tmp_path / "d", settings=f'metrics_textfile = "{target}"')
    old_umask = os.umask(0o077)  # as the unit's UMask=: the file must still be 0644
    try:
        d.start()
        os.umask(old_umask)
        wait_until(lambda: target.is_file() and not target.is_symlink(), timeout=60, what="the textfile")
        assert victim.read_text() == "not yours\n"
        st = target.lstat()
        assert stat.S_ISREG(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o644
        text = target.read_text()
        assert "sslreconciler_reconciles_total 1\n" in text
        assert "sslreconciler_expiry_warning_seconds 2592000\n" in text  # the default 30 days: the alert's window
        assert f'serial_number="{node.web.cert.serial_number:x}"' in text
        # the hook's outcome follows in the file once it ends (it sleeps 1.5 s, then exits 3)
        wait_until(lambda: 'sslreconciler_hook_last_outcome{hook="reload-web",outcome="failed"} 1' in target.read_text(),
                   timeout=60, what="the hook's outcome in the textfile")
        text = target.read_text()
        assert text == http_get(d.socket, "/metrics")[1].decode()  # the same text the socket serves
        check = _promtool_check(text)
        assert check.returncode == 0, check.stdout + check.stderr
        assert PASSWORD not in text and "PRIVATE KEY" not in text
        # a new web certificate: the next reconcile rewrites the file
        new = make_host(ca, "master.example.com")
        write(node.ssl_dir / "ssl-web.key", new.key_pem(), 0o600)
        write(node.ssl_dir / "ssl-web.crt", new.cert_pem())
        wait_until(lambda: f'serial_number="{new.cert.serial_number:x}"' in target.read_text(), timeout=60,
                   what="the new certificate in the textfile")
        assert stat.S_IMODE(target.stat().st_mode) == 0o644
        assert _promtool_check(target.read_text()).returncode == 0
        assert sorted(p.name for p in textdir.iterdir()) == [NAME]  # no temp file left for the collector
    finally:
        os.umask(old_umask)
        d.close()


def test_write_failure_is_logged_and_the_daemon_goes_on(tmp_path: Path, ca: Issued) -> None:
    node = seed_node(tmp_path / "n", "master.example.com", ca)
    textdir = tmp_path / "not-yet"
    target = textdir / NAME
    d = RunningDaemon(node, tmp_path / "d", settings=f'metrics_textfile = "{target}"\nresync_interval = 1.0')
    try:
        d.start()
        code, doc = d.health()
        assert code == 200 and doc["status"] == "ok"
        wait_until(lambda: d.reconciles() >= 3, timeout=60, what="a few resyncs")
        failures = [r for r in d.logs() if r.get("event", "").startswith("cannot write the metrics textfile")]
        assert len(failures) == 1, failures  # once per reason, not once per reconcile
        assert failures[0]["file"] == str(target) and failures[0]["reason"] == "No such file or directory"
        assert failures[0]["event"].endswith("(docs/monitoring.md).")
        textdir.mkdir()
        wait_until(target.is_file, timeout=60, what="the textfile once its directory exists")
        wait_until(lambda: any(r.get("event", "").startswith("metrics textfile written again") for r in d.logs()),
                   timeout=30, what="the recovery logged")
        assert d.proc is not None and d.proc.poll() is None
    finally:
        d.close()
