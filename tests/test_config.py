"""Desired state and settings: defaults, overrides, password sources, and clear errors (exit 2)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from javakit import store_probe

from conftest import REPO, keytool_list, reconcile, run_cli
from pkitools import Issued, seed_node


def test_schema_lists_every_documented_field() -> None:
    result = run_cli("schema")
    assert result.rc == 0
    schema = json.loads(result.out)
    doc = (REPO / "docs" / "desired-state.md").read_text()
    for field in schema["properties"]:
        assert f"`{field}`" in doc, field
    for model in ("KeyPair", "PemOutputs", "TrustStore", "Permissions", "PasswordSource", "Hook", "Acme", "AcmeChallenge",
                  "AcmeEab"):
        for field in schema["$defs"][model]["properties"]:
            assert f"`{field}`" in doc, (model, field)


def test_example_desired_state_is_the_seed_default(node) -> None:
    example = REPO / "config" / "desired-state.example.json"
    with_example = reconcile(node, "--desired-state", example, command="check").json()
    without = reconcile(node, "--desired-state", node.root / "absent.json", command="check").json()
    assert with_example["artifacts"].keys() == without["artifacts"].keys()


def test_shipped_settings_file_validates(node) -> None:
    result = run_cli("check", "--config", REPO / "config" / "sslreconciler.toml", "--ssl-dir", node.ssl_dir,
                     "--desired-state", node.desired)
    assert result.rc == 0, result.err


def test_renamed_and_extra_pairs(node) -> None:
    node.desired.write_text(json.dumps({
        "hostname": node.host,
        "pairs": [
            {"name": "xmlrpc", "key": "ssl.key", "cert": "ssl.crt", "alias": "Master", "keystore": "xmlrpc.jks",
             "pkcs12": None},
            {"name": "web", "key": "web/site.key", "cert": "web/site.crt", "keystore": None,
             "pkcs12": "site.p12", "verify": "if-available", "fallback": "xmlrpc"},
        ],
        "truststore": {"file": "trust.jks", "host_pair": "xmlrpc"},
    }))
    result = reconcile(node)
    assert result.rc == 0, result.out
    assert set(result.json()["artifacts"]) == {"xmlrpc.jks", "site.p12", "trust.jks", "authorities.pem"}
    assert keytool_list(node.ssl_dir / "xmlrpc.jks") == {"master": ("PrivateKeyEntry", 1)}
    assert keytool_list(node.ssl_dir / "site.p12", storetype="PKCS12") == {"web": ("PrivateKeyEntry", 1)}
    assert not (node.ssl_dir / "ssl.keystore").exists()


def test_password_from_file_and_credential(node, tmp_path: Path, java_classes: Path) -> None:
    secret = tmp_path / "store-password"
    secret.write_text("file-pass-123\n")
    node.desired.write_text(json.dumps({"hostname": node.host, "password": {"file": str(secret)}}))
    assert reconcile(node).rc == 0
    assert keytool_list(node.ssl_dir / "ssl.keystore", password="file-pass-123") == {"ssl": ("PrivateKeyEntry", 1)}

    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "sslreconciler-password").write_text("cred-pass-456")
    node.desired.write_text(json.dumps({"hostname": node.host, "password": {"credential": "sslreconciler-password"}}))
    result = run_cli("reconcile", "--ssl-dir", node.ssl_dir, "--desired-state", node.desired, "--json",
                     env={"CREDENTIALS_DIRECTORY": str(creds)})
    assert result.rc == 0
    stores = {n: a for n, a in result.json()["artifacts"].items() if not a["kind"].startswith("pem")}  # no password
    assert {a["action"] for a in stores.values()} == {"written"}  # new password, new stores
    probe = store_probe(java_classes, "system", "JKS", node.ssl_dir / "authorities.jks", "cred-pass-456")
    assert probe.rc == 0, probe

    # the credential gone: stores are kept as they are, the report says why
    result = reconcile(node)
    assert result.rc == 1
    stores = {n: a for n, a in result.json()["artifacts"].items() if not a["kind"].startswith("pem")}
    assert {a["action"] for a in stores.values()} == {"kept-last-good"}
    reason = result.json()["findings"][0]["reason"]  # by hand: the fallback directory, and where it came from
    assert "/etc/sslreconciler/sslreconciler-password" in reason and "credentials_dir" in reason


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ('{"pkcs12_profile": "ancient"}', "pkcs12_profile"),
        ('{"pairs": [{"name": "x", "key": "/etc/passwd", "cert": "x.crt"}]}', "pairs.0.key"),
        ('{"colour": "blue"}', "colour"),
        ('{"password": {"value": "a", "file": "/b"}}', "exactly one of"),
        ("{not json", "invalid JSON"),
        ('{"pairs": [{"name": "a", "key": "a.key", "cert": "a.crt", "fallback": "zz"}]}', "fallback"),
    ],
)
def test_invalid_desired_state_exits_2_naming_file_and_field(node, content: str, words: str) -> None:
    node.desired.write_text(content)
    result = reconcile(node)
    assert result.rc == 2
    assert str(node.desired) in result.err and words in result.err, result.err
    assert "Traceback" not in result.err and result.out == ""


@pytest.mark.parametrize(
    ("toml", "words"),
    [
        ("quiet_period = 'soon'", "quiet_period"),
        ("ssl_dir = ", "invalid TOML"),
        ("unknown_thing = 1", "unknown_thing"),
        ("max_wait = -1", "max_wait"),
    ],
)
def test_invalid_settings_exit_2(node, tmp_path: Path, toml: str, words: str) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(toml + "\n")
    result = run_cli("reconcile", "--config", config, "--ssl-dir", node.ssl_dir)
    assert result.rc == 2 and str(config) in result.err and words in result.err, result.err
    assert "Traceback" not in result.err


def test_settings_precedence_file_env_flag(node, tmp_path: Path, ca: Issued) -> None:
    other = seed_node(tmp_path / "other", "master.example.com", ca)
    config = tmp_path / "s.toml"
    config.write_text(f'ssl_dir = "{tmp_path / "nowhere"}"\ndesired_state = "{node.desired}"\n')
    from_file = run_cli("check", "--config", config, "--json")
    assert from_file.rc == 2 and "no such directory" in from_file.err and str(tmp_path / "nowhere") in from_file.err
    from_env = run_cli("check", "--config", config, "--json", env={"SSLRECONCILER_SSL_DIR": str(node.ssl_dir)})
    assert from_env.rc == 0 and from_env.json()["ssl_dir"] == str(node.ssl_dir)
    from_flag = run_cli("check", "--config", config, "--json", "--ssl-dir", other.ssl_dir,
                        env={"SSLRECONCILER_SSL_DIR": str(node.ssl_dir)})
    assert from_flag.json()["ssl_dir"] == str(other.ssl_dir)
    bad_env = run_cli("check", "--config", config, env={"SSLRECONCILER_QUIET_PERIOD": "x"})
    assert bad_env.rc == 2 and "SSLRECONCILER_" in bad_env.err and "quiet_period" in bad_env.err


def test_missing_config_file_named(tmp_path: Path) -> None:
    result = run_cli("check", "--config", tmp_path / "nope.toml")
    assert result.rc == 2 and "nope.toml: file not found" in result.err


def test_unprivileged_user_needs_only_ssl_dir_and_home(tmp_path: Path, ca: Issued) -> None:
    """reconcile --ssl-dir DIR as a plain user: stores in DIR, state under ~/.local/state, nothing else."""
    import os
    import pwd
    import shutil
    import subprocess
    import sys
    import tempfile

    from userkit import as_user

    from conftest import snapshot

    if os.geteuid() != 0:
        pytest.skip("already unprivileged: every other test covers this")
    root = Path(tempfile.mkdtemp(prefix="sslrec-nobody-"))
    try:
        os.chmod(root, 0o755)
        node = seed_node(root / "node", "master.example.com", ca)
        home = root / "home"
        home.mkdir()
        for path in [root / "node", *(root / "node").rglob("*"), home]:
            os.lchown(path, 65534, 65534)
        before = {p for p in root.rglob("*")}
        env = {k: v for k, v in os.environ.items() if k not in ("XDG_STATE_HOME", "SSLRECONCILER_STATE_DIR")}
        nobody = pwd.getpwuid(65534)
        proc = subprocess.run(as_user(nobody, sys.executable, "-m", "sslreconciler", "reconcile", "--ssl-dir",
                                      node.ssl_dir, "--desired-state", node.desired, "--json"),
                              capture_output=True, text=True, timeout=120, env={**env, "HOME": str(home)}, cwd=root)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert json.loads(proc.stdout)["status"] == "ok"
        created = {p.relative_to(root).as_posix() for p in set(root.rglob("*")) - before}
        outside = {p for p in created if not p.startswith(("node/ssl/", "home/.local/state/"))}
        assert outside == {"home/.local", "home/.local/state"}, outside
        assert "home/.local/state/sslreconciler/last-report.json" in created
        assert {p for p in created if p.startswith("node/ssl/")} >= {
            "node/ssl/ssl.keystore", "node/ssl/authorities.jks", "node/ssl/ssl-web.p12"}
        assert os.stat(node.ssl_dir / "ssl.keystore").st_uid == 65534
        assert snapshot(node.ssl_dir)  # readable
    finally:
        shutil.rmtree(root, ignore_errors=True)
