"""The desired state answers its own rules (its outputs, its sources, its trust sources) in one home; a
configuration file that is a directory is told by type, not by the words of a reason; importing the
configuration package changes nothing in the process (the CLI's entry sets what the program wants)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from sslreconciler.config.desired import DesiredState, load_desired_state
from sslreconciler.daemon.watch import Relevance

from conftest import reconcile, run_cli

CUSTOM = {
    "pairs": [
        {"name": "xmlrpc", "key": "ssl.key", "cert": "ssl.crt", "keystore": "xmlrpc.jks", "pkcs12": None},
        {"name": "web", "key": "web/site.key", "cert": "web/site.crt", "keystore": None, "pkcs12": "site.p12",
         "verify": "if-available", "fallback": "xmlrpc"},
        {"name": "again", "key": "ssl.key", "cert": "ssl.crt", "keystore": "again.jks", "pkcs12": "again.p12"},
    ],
    "truststore": {"file": "trust.jks", "sources": ["authorities", "extra-cas/"], "host_pair": "xmlrpc"},
}


def _without_plugin_default() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "PYDANTIC_DISABLE_PLUGINS"}


def test_importing_the_config_package_leaves_the_environment_alone() -> None:
    code = (
        "import os; before = dict(os.environ); import sslreconciler.config, sslreconciler.config.desired, "
        "sslreconciler.config.settings; assert dict(os.environ) == before, set(os.environ.items()) ^ set(before.items())"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_without_plugin_default(),
                          timeout=60)
    assert proc.returncode == 0, proc.stderr


def test_the_cli_still_gives_its_hooks_the_plugin_default(node, tmp_path: Path) -> None:
    seen = tmp_path / "hook-env"
    node.desired.write_text(json.dumps({
        "hostname": node.host,
        "hooks": [{"after": ["ssl.keystore"], "command": ["/bin/sh", "-c", f"env > {seen}"]}],
    }))
    proc = subprocess.run(
        [sys.executable, "-m", "sslreconciler", "reconcile", "--ssl-dir", str(node.ssl_dir), "--desired-state",
         str(node.desired)],
        capture_output=True, text=True, env=_without_plugin_default(), timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "PYDANTIC_DISABLE_PLUGINS=__all__" in seen.read_text().splitlines()


def test_seed_layout_outputs_and_sources() -> None:
    seed = DesiredState()
    assert seed.output_files() == [
        "ssl.keystore", "ssl.p12", "ssl-web.keystore", "ssl-web.p12", "authorities.jks", "authorities.pem",
        *(f"live/{p}.{s}" for p in ("ssl", "ssl-web") for s in ("key", "fullchain.pem", "crt", "chain.pem")),
    ]
    assert seed.source_files() == ["ssl.key", "ssl.crt", "ssl-web.key", "ssl-web.crt"]
    assert seed.trust_sources() == ["authorities"]
    assert load_desired_state(None).output_files() == seed.output_files()


def test_custom_layout_outputs_and_sources() -> None:
    custom = DesiredState.model_validate(CUSTOM)
    assert custom.output_files() == ["xmlrpc.jks", "site.p12", "again.jks", "again.p12", "trust.jks", "authorities.pem"]
    assert custom.source_files() == ["ssl.key", "ssl.crt", "web/site.key", "web/site.crt"]  # each once
    assert custom.trust_sources() == ["authorities", "extra-cas"]  # one spelling: no trailing slash


def test_the_watcher_and_the_reconcile_use_the_states_own_outputs(node) -> None:
    node.desired.write_text(json.dumps({"hostname": node.host, **CUSTOM}))
    (node.ssl_dir / "extra-cas").mkdir()
    (node.ssl_dir / "extra-cas" / "root.crt").write_bytes(node.ca.cert_pem())
    desired = load_desired_state(node.desired)
    result = reconcile(node)
    assert result.rc == 0, result.out
    assert sorted(result.json()["artifacts"]) == sorted(desired.output_files())
    relevant = Relevance(node.ssl_dir, node.desired, desired)
    for output in desired.output_files():
        assert not relevant(str(node.ssl_dir / output)), output  # our own writes wake nothing
    for source in desired.source_files():
        assert relevant(str(node.ssl_dir / source)), source
    assert relevant(str(node.ssl_dir / "extra-cas"))
    assert relevant(str(node.ssl_dir / "extra-cas" / "root.crt"))


def test_desired_state_that_is_a_directory_is_named_so(node, tmp_path: Path) -> None:
    folder = tmp_path / "desired.d"
    folder.mkdir()
    result = run_cli("check", "--ssl-dir", node.ssl_dir, "--desired-state", folder)
    assert result.rc == 2 and "is a directory, not a JSON file" in result.err, result.err


def test_desired_state_below_a_file_is_not_called_a_directory(node, tmp_path: Path) -> None:
    # ENOTDIR's reason ("... is not a directory") holds the word: it was worded "is a directory" before.
    below_file = node.desired / "desired-state.json"
    result = run_cli("check", "--ssl-dir", node.ssl_dir, "--desired-state", below_file)
    assert result.rc == 2 and "is a directory, not a" not in result.err and "cannot be resolved" in result.err, result.err


def test_settings_that_are_a_directory_or_below_a_file(node, tmp_path: Path) -> None:
    folder = tmp_path / "settings.d"
    folder.mkdir()
    result = run_cli("check", "--config", folder, "--ssl-dir", node.ssl_dir)
    assert result.rc == 2 and "is a directory, not a TOML file" in result.err, result.err
    below_file = node.desired / "settings.toml"
    result = run_cli("check", "--config", below_file, "--ssl-dir", node.ssl_dir)
    assert result.rc == 2 and "is a directory, not a" not in result.err and "cannot be resolved" in result.err, result.err
