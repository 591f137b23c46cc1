"""An operator's manual runs: safe CSRs, the service's credential by hand, clean errors and exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import PASSWORD, keytool_list, openssl, reconcile, run_cli, snapshot
from pkitools import Node


def _pubkey_of_csr(csr: Path) -> str:
    return openssl("req", "-in", csr, "-noout", "-pubkey").stdout


def _pubkey_of_key(key: Path) -> str:
    return openssl("pkey", "-in", key, "-pubout").stdout


# --- web csr ---------------------------------------------------------------------------------------------


def test_web_csr_keeps_the_pending_key_unless_told(node: Node, tmp_path: Path) -> None:
    common = ["--ssl-dir", node.ssl_dir, "--desired-state", node.desired]
    pending = node.ssl_dir / "ssl-web.key.pending"
    first = run_cli("web", "csr", *common, "--subject", "/CN=master.example.com", "-o", tmp_path / "a.csr")
    assert first.rc == 0 and str(pending) in first.out and "a new pending key" in first.out, first.err
    key = pending.read_bytes()
    assert _pubkey_of_csr(tmp_path / "a.csr") == _pubkey_of_key(pending)

    again = run_cli("web", "csr", *common, "--subject", "/CN=master.example.com", "--san", "DNS:pbx.example.com",
                    "-o", tmp_path / "b.csr")
    assert again.rc == 0 and "pending key made earlier" in again.out and "--new-key" in again.out
    assert pending.read_bytes() == key  # the CSR already at the CA still matches
    assert _pubkey_of_csr(tmp_path / "b.csr") == _pubkey_of_key(pending)
    assert "DNS:pbx.example.com" in openssl("req", "-in", tmp_path / "b.csr", "-noout", "-text").stdout

    fresh = run_cli("web", "csr", *common, "--subject", "/CN=master.example.com", "--new-key", "-o", tmp_path / "c.csr")
    assert fresh.rc == 0 and "a new pending key" in fresh.out
    assert pending.read_bytes() != key and _pubkey_of_csr(tmp_path / "c.csr") == _pubkey_of_key(pending)
    assert oct(pending.stat().st_mode & 0o777) == "0o600"


@pytest.mark.parametrize("case", ["missing-output-dir", "bad-san", "empty-subject", "bad-subject"])
def test_a_failed_web_csr_writes_nothing(node: Node, tmp_path: Path, case: str) -> None:
    common = ["--ssl-dir", node.ssl_dir, "--desired-state", node.desired]
    assert run_cli("web", "csr", *common, "--subject", "/CN=m", "-o", tmp_path / "ok.csr").rc == 0
    before = snapshot(node.ssl_dir)
    args = {
        "missing-output-dir": ["--subject", "/CN=m", "--new-key", "-o", tmp_path / "nowhere" / "x.csr"],
        "bad-san": ["--subject", "/CN=m", "--new-key", "--san", "FTP:x", "-o", tmp_path / "x.csr"],
        "empty-subject": ["--subject", "", "--new-key", "-o", tmp_path / "x.csr"],
        "bad-subject": ["--subject", "CN", "--new-key", "-o", tmp_path / "x.csr"],
    }[case]
    result = run_cli("web", "csr", *common, *args)
    assert result.rc == 2 and "Traceback" not in result.err, result.err
    word = {"missing-output-dir": "-o", "bad-san": "--san", "empty-subject": "--subject", "bad-subject": "--subject"}
    assert result.err.startswith("sslreconciler: usage error: " + word[case]), result.err
    assert "(use e.g." in result.err or case in ("missing-output-dir", "bad-san")
    assert snapshot(node.ssl_dir) == before and not (tmp_path / "x.csr").exists()


def test_web_csr_without_an_ssl_dir_is_a_usage_error(tmp_path: Path) -> None:
    result = run_cli("web", "csr", "--ssl-dir", tmp_path / "absent", "--subject", "/CN=m", "-o", tmp_path / "x.csr")
    assert result.rc == 2 and "--ssl-dir" in result.err and "Traceback" not in result.err


# --- usage errors exit 2, naming the option ---------------------------------------------------------------


def test_usage_errors_exit_2_naming_the_option(node: Node, tmp_path: Path) -> None:
    staging = tmp_path / "staging"
    assert run_cli("pki", "init-ca", "--staging", staging, "--name", "ca.t").rc == 0
    bad_san = run_cli("pki", "issue", "--staging", staging, "h.example.com", "--san", "FTP:x")
    assert bad_san.rc == 2 and "--san" in bad_san.err and "DNS:, IP: or URI:" in bad_san.err
    assert run_cli("pki", "issue", "--staging", staging, "h.example.com").rc == 0
    no_dir = run_cli("pki", "bundle", "--staging", staging, "h.example.com", "-o", tmp_path / "nowhere" / "b.tgz")
    assert no_dir.rc == 2 and "-o" in no_dir.err and "does not exist" in no_dir.err and "Traceback" not in no_dir.err
    for command in ("check", "reconcile"):
        missing = run_cli(command, "--ssl-dir", tmp_path / "absent", "--desired-state", node.desired)
        assert missing.rc == 2 and "--ssl-dir" in missing.err and "no such directory" in missing.err


# --- SIGPIPE ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", [["schema"], ["check"], ["--help"], ["status"]])
def test_a_closed_pipe_ends_quietly(node: Node, tmp_path: Path, command: list[str]) -> None:
    err = tmp_path / "err"
    args = [*command, "--ssl-dir", str(node.ssl_dir), "--desired-state", str(node.desired),
            "--socket", str(tmp_path / "no.sock")] if command[0] != "--help" else command
    if command == ["schema"]:
        args = ["schema"]
    # the reader is gone before the writer starts: every write meets a closed pipe
    script = f'{sys.executable} -m sslreconciler {" ".join(args)} 2>{err} | true'
    for _ in range(3):
        subprocess.run(["bash", "-c", script], check=False, timeout=120, env=os.environ)
        text = err.read_text()
        assert "Traceback" not in text and "BrokenPipe" not in text and "Broken pipe" not in text, text


# --- the service's credential, by hand --------------------------------------------------------------------


def _credential_node(node: Node, tmp_path: Path) -> Path:
    node.desired.write_text(json.dumps({"hostname": node.host, "password": {"credential": "store-password"}}))
    creds = tmp_path / "etc-sslreconciler"
    creds.mkdir()
    (creds / "store-password").write_text("s3cret-by-hand\n")
    os.chmod(creds / "store-password", 0o600)
    return creds


def test_manual_runs_read_the_credential_from_credentials_dir(node: Node, tmp_path: Path) -> None:
    creds = _credential_node(node, tmp_path)
    missing = reconcile(node)
    assert missing.rc != 0
    text = missing.out + missing.err
    assert "/etc/sslreconciler/store-password" in text and "credentials_dir" in text and "s3cret" not in text
    config = tmp_path / "settings.toml"
    config.write_text(f'credentials_dir = "{creds}"\n')
    by_settings = reconcile(node, "--config", config)
    assert by_settings.rc == 0 and by_settings.json()["status"] == "ok", by_settings.out + by_settings.err
    assert keytool_list(node.ssl_dir / "ssl.keystore", password="s3cret-by-hand") == {"ssl": ("PrivateKeyEntry", 1)}
    (creds / "store-password").write_text("another\n")
    by_env = reconcile(node, command="check")
    assert by_env.rc != 0  # the env var is not set: the default dir has no such file
    by_env = run_cli("check", "--ssl-dir", node.ssl_dir, "--desired-state", node.desired, "--json",
                     env={"SSLRECONCILER_CREDENTIALS_DIR": str(creds)})
    assert by_env.rc == 0 and "another" not in by_env.out, by_env.out  # the secret is never shown
    plan = by_env.json()["artifacts"]["ssl.keystore"]
    assert plan["action"] == "would-write" and "the store password changed" in plan["message"], plan
    systemd = run_cli("check", "--ssl-dir", node.ssl_dir, "--desired-state", node.desired, "--json",
                      env={"CREDENTIALS_DIRECTORY": str(tmp_path / "nothing-here"),
                           "SSLRECONCILER_CREDENTIALS_DIR": str(creds)})
    assert "nothing-here/store-password" in systemd.out + systemd.err  # under systemd its directory wins


def test_a_relative_password_file_is_relative_to_the_desired_state(node: Node, tmp_path: Path) -> None:
    (node.desired.parent / "store.pw").write_text("relative-pw\n")
    node.desired.write_text(json.dumps({"hostname": node.host, "password": {"file": "store.pw"}}))
    result = reconcile(node)  # the working directory is the repository, not the node
    assert result.rc == 0, result.out + result.err
    assert keytool_list(node.ssl_dir / "ssl.keystore", password="relative-pw")
    assert PASSWORD != "relative-pw"


# --- hook status follows the hooks; status tells certificates apart ---------------------------------------


def test_hook_status_follows_the_hooks(tmp_path: Path, ca) -> None:
    from daemonkit import RunningDaemon, fingerprint

    from pkitools import make_host, seed_node, write

    node = seed_node(tmp_path / "n", "master.example.com", ca)
    flag = tmp_path / "fail-now"
    flag.write_text("")
    script = f"import os, sys; sys.exit(3 if os.path.exists({str(flag)!r}) else 0)"
    hooks = [{"name": "flaky", "after": ["ssl-web.keystore"], "command": [sys.executable, "-c", script]}]
    node.desired.write_text(json.dumps({"hostname": node.host, "hooks": hooks}))
    d = RunningDaemon(node, tmp_path / "d")

    def swap_web() -> str:
        new = make_host(ca, "master.example.com")
        write(node.ssl_dir / ".k", new.key_pem(), 0o600)
        write(node.ssl_dir / ".c", new.cert_pem())
        os.rename(node.ssl_dir / ".k", node.ssl_dir / "ssl-web.key")
        os.rename(node.ssl_dir / ".c", node.ssl_dir / "ssl-web.crt")
        d.wait_for(lambda x: fingerprint(x) == new.fingerprint(), what="swap")
        return new.fingerprint()

    def status() -> tuple[int, str]:
        result = run_cli("status", "--socket", d.socket)
        return result.rc, result.out

    try:
        d.start()
        d.wait_for(lambda x: x["hooks"].get("flaky", {}).get("outcome") == "failed", what="the hook failed")
        rc, out = status()
        assert rc == 1 and "WARNING" in out.splitlines()[0] and out.splitlines()[0].endswith(", 1 failed hook"), out
        assert "flaky: failed (exit 3)" in out
        assert d.health()[1]["counts"]["hook_failures"] == 1

        flag.unlink()  # the next run succeeds: the warning goes
        fp = swap_web()
        d.wait_for(lambda x: x["hooks"]["flaky"]["outcome"] == "ok" and x["status"] == "ok", what="hook ok again")
        rc, out = status()
        assert rc == 0 and "0 failed hooks" in out.splitlines()[0] and "flaky: ok (exit 0)" in out, out
        web_row = next(line for line in out.splitlines() if line.startswith("ssl-web.keystore "))
        assert fp[:12] in web_row  # the fingerprint prefix tells this certificate from the last one

        flag.write_text("")
        swap_web()
        d.wait_for(lambda x: x["hooks"]["flaky"]["outcome"] == "failed", what="failed again")
        node.desired.write_text(json.dumps({"hostname": node.host}))  # the hook is removed, the daemon reloaded
        d.send(__import__("signal").SIGHUP)
        doc = d.wait_for(lambda x: x["hooks"] == {} and x["status"] == "ok", what="the removed hook gone")
        assert doc["counts"]["hook_failures"] == 0
        rc, out = status()
        assert rc == 0 and "flaky" not in out, out
    finally:
        d.close()


# --- messages that say what to do -------------------------------------------------------------------------


def test_an_encrypted_key_finding_gives_the_fix(node: Node, tmp_path: Path) -> None:
    plain = tmp_path / "plain.key"
    plain.write_bytes((node.ssl_dir / "ssl.key").read_bytes())
    openssl("pkey", "-in", plain, "-aes256", "-passout", "pass:secret", "-out", node.ssl_dir / "ssl.key")
    result = reconcile(node, command="check")
    finding = next(f for f in result.json()["findings"] if f["code"] == "encrypted-key")
    assert "openssl pkey -in" in finding["reason"] and "-out" in finding["reason"], finding
    assert "no key password is configured" not in finding["reason"]


def test_a_pair_that_builds_no_store_is_a_warning(node: Node) -> None:
    node.desired.write_text(json.dumps({"hostname": node.host, "pairs": [
        {"name": "ssl", "key": "ssl.key", "cert": "ssl.crt"}]}))
    report = reconcile(node, command="check").json()
    finding = next(f for f in report["findings"] if f["code"] == "no-store")
    assert finding["level"] == "warning" and '"keystore"' in finding["reason"] and '"ssl"' in finding["reason"]


@pytest.mark.parametrize(("body", "words"), [
    ({"hostnme": "x"}, "hostnme: unknown field; did you mean 'hostname'?"),
    ({"pairs": [{"name": "a", "key": "a.key", "cert": "a.crt", "keystor": "a.jks"}]},
     "pairs.0.keystor: unknown field; did you mean 'keystore'?"),
    ({"password": "changeit"}, 'password: must be an object: {"value": "..."}'),
    ({"expiry_warning_days": "soon"}, "expiry_warning_days: must be a whole number"),
])
def test_config_errors_in_our_words(node: Node, body: dict, words: str) -> None:
    node.desired.write_text(json.dumps(body))
    result = reconcile(node, command="check")
    assert result.rc == 2 and words in result.err and str(node.desired) in result.err, result.err
    assert "Input should" not in result.err and "pydantic" not in result.err


def test_a_misspelt_setting_gets_a_suggestion(node: Node, tmp_path: Path) -> None:
    config = tmp_path / "s.toml"
    config.write_text('credential_dir = "/x"\n')
    result = run_cli("check", "--config", config, "--ssl-dir", node.ssl_dir, "--desired-state", node.desired)
    assert result.rc == 2 and "did you mean 'credentials_dir'?" in result.err and str(config) in result.err


# --- --help and the man page ------------------------------------------------------------------------------


def test_help_shows_defaults_and_only_relevant_options() -> None:
    from conftest import REPO

    run = run_cli("status", "--help").out.replace("\n", " ")
    assert "/run/sslreconciler/health.sock" in " ".join(run.split())
    assert "/var/lib/sslreconciler" in run_cli("reconcile", "--help").out
    for path in (["schema"], ["pki", "issue"], ["pki", "rotate-ca"], ["pki", "list"]):
        text = run_cli(*path, "--help").out
        assert "--ssl-dir" not in text and "--socket" not in text, path
    assert "--ssl-dir" in run_cli("pki", "install-bundle", "--help").out
    assert "rsa2048, rsa4096, ec-p256" in run_cli("pki", "init-ca", "--help").out
    top = run_cli("--help").out
    assert "SSLRECONCILER_CREDENTIALS_DIR" in top and "CREDENTIALS_DIRECTORY" in top
    page = (REPO / "docs" / "sslreconciler.1").read_text()
    assert ".SH ENVIRONMENT" in page and "SSLRECONCILER_CREDENTIALS_DIR" in page
    assert "rsa2048, rsa4096, ec\\-p256" in page
    readme = (REPO / "README.md").read_text()
    assert "### Environment" in readme and "SSLRECONCILER_CREDENTIALS_DIR" in readme
