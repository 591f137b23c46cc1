"""A one-shot command imports only what its path needs (issue 27: start-up is imports).

Each command runs in a new interpreter, as a user's would, through the CLI's own ``main``; that process
then prints what ``sys.modules`` holds. No timing is asserted: which modules are loaded is the behaviour,
and each test also checks that the command did its work and that what it does need was loaded (so an
assertion cannot pass because nothing ran).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from daemonkit import RunningDaemon

from pkitools import Issued, seed_node

REPO = Path(__file__).resolve().parent.parent

# Runs ``main(argv)``, then writes its exit code and the loaded modules as JSON to $PROBE_OUT.
_PROBE = r"""
import json, os, sys
from sslreconciler.cli import main
code = main(sys.argv[1:])
with open(os.environ["PROBE_OUT"], "w") as out:
    json.dump({"code": code, "modules": sorted(sys.modules)}, out)
"""

# Never on the usual path of a one-shot: reading a store nothing vouches for (pyjks and what it pulls
# in), ACME, the daemon's watcher and logging, and pydantic's plugin discovery (importlib.metadata).
NOT_FOR_RECONCILE = ["jks", "pyasn1", "twofish", "Cryptodome", "acme", "josepy", "requests", "watchdog",
                     "structlog", "importlib.metadata", "http.client", "difflib"]
# `status` with --socket: a socket exchange and a table, nothing of the settings or of X.509.
# (The CLI's stand-in for pydantic's plugin loader, "pydantic.plugin._loader", is registered by every
# command and is not pydantic: it is left out before the check.)
NOT_FOR_STATUS = ["pydantic", "pydantic_core", "cryptography", "typing", "pathlib", "tomllib",
                  "importlib.metadata", "jks", "structlog", "sslreconciler.config.settings"]


def probe(*argv: str | Path, env: dict[str, str] | None = None) -> tuple[int, set[str], str]:
    """``sslreconciler ARGV`` in a new interpreter: exit code, loaded modules, stdout."""
    with tempfile.TemporaryDirectory() as tmp:
        found = Path(tmp) / "probe.json"
        proc = subprocess.run([sys.executable, "-c", _PROBE, *map(str, argv)], capture_output=True, text=True,
                              timeout=120, env={**os.environ, **(env or {}), "PROBE_OUT": str(found)}, cwd=REPO)
        assert found.exists(), f"the command did not finish: exit {proc.returncode}\n{proc.stderr}"
        doc = json.loads(found.read_text())
    return doc["code"], set(doc["modules"]), proc.stdout


def loaded(modules: set[str], names: list[str]) -> list[str]:
    """Which of ``names`` (a package or a module) is loaded, itself or any module under it."""
    real = modules - {"pydantic.plugin._loader"} if "pydantic" not in modules else modules
    return [n for n in names if any(m == n or m.startswith(n + ".") for m in real)]


@pytest.fixture
def seed(tmp_path: Path, ca: Issued):
    return seed_node(tmp_path / "n", "master.example.com", ca, web=True)


def test_a_fresh_reconcile_and_its_no_op_import_nothing_they_do_not_need(seed, tmp_path: Path) -> None:
    argv = ["reconcile", "--ssl-dir", seed.ssl_dir, "--desired-state", seed.desired, "--state-dir", tmp_path / "st"]
    for run in ("fresh build", "no-op"):
        code, modules, out = probe(*argv)
        assert code == 0, out
        assert (seed.ssl_dir / "ssl.keystore").is_file() and "ssl.keystore" in out
        assert loaded(modules, ["pydantic", "cryptography.x509", "sslreconciler.reconcile.reconciler"]) == [
            "pydantic", "cryptography.x509", "sslreconciler.reconcile.reconciler"], run
        assert loaded(modules, NOT_FOR_RECONCILE) == [], run
    if not Path("/etc/sslreconciler/sslreconciler.toml").is_file():  # given by flags: no TOML to read
        assert "tomllib" not in modules


def test_a_settings_file_is_still_read_and_a_misspelt_field_still_named(seed, tmp_path: Path) -> None:
    """tomllib and difflib load where they are used: a settings file, a field that is not one."""
    settings = tmp_path / "s.toml"
    settings.write_text(f'ssl_dir = "{seed.ssl_dir}"\ndesired_state = "{seed.desired}"\n')
    code, modules, out = probe("check", "--config", settings)
    assert code == 0 and "tomllib" in modules, out
    settings.write_text(f'ssl_dri = "{seed.ssl_dir}"\n')
    proc = subprocess.run([sys.executable, "-m", "sslreconciler", "check", "--config", str(settings)],
                          capture_output=True, text=True, timeout=120, cwd=REPO)
    assert proc.returncode == 2 and "did you mean 'ssl_dir'?" in proc.stderr, proc.stderr


def test_pydantic_finds_no_plugin_and_is_never_asked_to_look(seed, tmp_path: Path) -> None:
    """The CLI's plugin loader answers "none" without importing importlib.metadata; the models still
    validate (a bad desired state is still refused, in our words)."""
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"hostname": "master.example.com", "pkcs12_profile": "newest"}))
    code, modules, _ = probe("check", "--ssl-dir", seed.ssl_dir, "--desired-state", bad)
    assert code == 2
    assert "pydantic" in modules and "importlib.metadata" not in modules
    code, modules, _ = probe("check", "--ssl-dir", seed.ssl_dir, "--desired-state", seed.desired)
    assert code == 0 and "importlib.metadata" not in modules


def test_status_against_a_running_daemon_loads_no_settings_and_no_x509(seed, tmp_path: Path) -> None:
    daemon = RunningDaemon(seed, tmp_path / "d").start()
    try:
        code, modules, out = probe("status", "--socket", daemon.socket)
        assert code == 0 and out.startswith("SSLRECONCILER OK"), out
        assert loaded(modules, ["socket", "json", "sslreconciler.cli.status"]) == ["socket", "json",
                                                                                   "sslreconciler.cli.status"]
        assert loaded(modules, NOT_FOR_STATUS) == []
        # the same socket from $SSLRECONCILER_SOCKET, and from a settings file (which does load them)
        code, modules, out = probe("status", env={"SSLRECONCILER_SOCKET": str(daemon.socket)})
        assert code == 0 and out.startswith("SSLRECONCILER OK") and loaded(modules, NOT_FOR_STATUS) == []
        code, modules, out = probe("status", "--config", daemon.config)
        assert code == 0 and out.startswith("SSLRECONCILER OK"), out
        assert "sslreconciler.config.settings" in modules
    finally:
        daemon.close()


def test_help_loads_neither_pydantic_nor_x509() -> None:
    for argv in (["--help"], ["reconcile", "--help"], ["status", "--help"]):
        proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "sslreconciler", *argv], capture_output=True,
                              text=True, timeout=120, cwd=REPO)
        assert proc.returncode == 0 and "usage: sslreconciler" in proc.stdout
        names = {line.rsplit("|", 1)[1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}
        assert "sslreconciler.cli.app" in names  # importtime did list the imports
        assert loaded(names, ["pydantic", "cryptography", "jks", "importlib.metadata"]) == [], argv


def test_the_plugin_loader_stand_in_steps_aside_for_any_name_it_does_not_know() -> None:
    """A pydantic release that asks its loader for more than ``get_plugins`` gets pydantic's own module
    (slower, never a failed command)."""
    code = (
        "import sys, sslreconciler.cli as c; c._no_plugin_loader(); "
        "from pydantic.plugin._loader import get_plugins; assert list(get_plugins()) == []; "
        "assert 'importlib.metadata' not in sys.modules; "
        "from pydantic.plugin._loader import PYDANTIC_ENTRY_POINT_GROUP as g; assert g == 'pydantic'; "
        "assert 'importlib.metadata' in sys.modules; print('ok')"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert proc.stdout.strip() == "ok", proc.stderr
