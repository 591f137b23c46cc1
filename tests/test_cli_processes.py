"""Every command once as a real process, in its ordinary form, its effect checked with another tool.

Most tests run the CLI in the test process (conftest.run_cli, tests/clikit.py): these keep what only a
real ``python -m sslreconciler`` shows: the entry point, imports from a cold start, the exit status of a
process, the hardening ``main`` does to its own process (RLIMIT_CORE, inherited by its children).
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tarfile
from pathlib import Path

import jsonschema
import pytest
from acmekit import Pebble, WebrootServer, acme_block
from clikit import call_main
from daemonkit import RunningDaemon, http_get

from conftest import Result, keytool_list, openssl, run_cli, snapshot
from pkitools import Issued, Node, seed_node, write

HOST = "pbx.example.com"


def cli(*args: str | Path, timeout: float = 300) -> Result:
    return run_cli(*args, timeout=timeout, process=True)


def on(node: Node) -> list[str | Path]:
    return ["--ssl-dir", node.ssl_dir, "--desired-state", node.desired]


def fingerprint(pem: Path) -> str:
    return openssl("x509", "-in", pem, "-noout", "-fingerprint", "-sha256").stdout.strip()


def serial(pem: Path) -> int:
    return int(openssl("x509", "-in", pem, "-noout", "-serial").stdout.strip().split("=", 1)[1], 16)


def test_check_writes_nothing_then_reconcile_builds_the_stores(node: Node) -> None:
    before = snapshot(node.ssl_dir)
    checked = cli("check", *on(node), "--json")
    assert checked.rc == 0, checked.out + checked.err
    assert json.loads(checked.out)["artifacts"]["ssl.keystore"]["action"] != "unchanged"
    assert snapshot(node.ssl_dir) == before
    done = cli("reconcile", *on(node))
    assert done.rc == 0, done.out + done.err
    assert "PrivateKeyEntry" in {kind for kind, _ in keytool_list(node.ssl_dir / "ssl.keystore").values()}
    assert "trustedCertEntry" in {kind for kind, _ in keytool_list(node.ssl_dir / "authorities.jks").values()}


def test_a_one_shot_command_runs_with_core_dumps_off(node: Node, tmp_path: Path) -> None:
    """main's no_core_dumps on the real process: a hook, its child, inherits RLIMIT_CORE 0/0."""
    if resource.getrlimit(resource.RLIMIT_CORE)[1] == 0:
        pytest.skip("this test process's hard core limit is 0 already: a child's 0 would prove nothing")
    seen = tmp_path / "limit"
    script = "import resource, sys; open(sys.argv[1], 'w').write(repr(resource.getrlimit(resource.RLIMIT_CORE)))"
    hook = {"name": "limits", "after": ["ssl.keystore"], "command": [sys.executable, "-c", script, str(seen)]}
    node.desired.write_text(json.dumps({"hostname": node.host, "hooks": [hook]}))
    done = cli("reconcile", *on(node))
    assert done.rc == 0, done.out + done.err
    assert seen.read_text() == "(0, 0)"


def test_run_serves_health_and_status_reads_it(node: Node, tmp_path: Path) -> None:
    daemon = RunningDaemon(node, tmp_path / "d").start()
    try:
        code, body = http_get(daemon.socket)
        assert code == 200, body
        health = json.loads(body)
        status = cli("status", "--socket", daemon.socket, "--json")
        assert status.rc == 0, status.out + status.err
        assert json.loads(status.out)["status"] == health["status"] == "ok"
        assert keytool_list(node.ssl_dir / "ssl.keystore")  # the daemon's first reconcile built it
    finally:
        assert daemon.stop() == 0, daemon.logs_text()
        daemon.close()


def test_schema_is_a_json_schema_the_desired_state_meets(node: Node) -> None:
    result = cli("schema")
    assert result.rc == 0, result.err
    schema = json.loads(result.out)
    validator = jsonschema.validators.validator_for(schema)
    validator.check_schema(schema)
    validator(schema).validate(json.loads(node.desired.read_text()))
    with pytest.raises(jsonschema.ValidationError):
        validator(schema).validate({"hostname": 5})


def test_every_pki_command(tmp_path: Path) -> None:
    staging, old, new = tmp_path / "staging", "ca.one.example.com", "ca.two.example.com"
    assert cli("pki", "init-ca", "--staging", staging, "--name", old).rc == 0
    ca_crt, host_crt = staging / f"{old}.crt", staging / f"{HOST}.crt"
    openssl("verify", "-CAfile", ca_crt, ca_crt)
    assert cli("pki", "issue", "--staging", staging, HOST).rc == 0
    openssl("verify", "-CAfile", ca_crt, host_crt)
    listed = cli("pki", "list", "--staging", staging, "--json")
    assert listed.rc == 0, listed.out + listed.err
    # as numbers: openssl pads the hex to whole bytes (a leading 0 one time in 16), the product does not
    assert [int(row["serial"], 16) for row in json.loads(listed.out)] == [serial(host_crt)], listed.out
    first_serial = serial(host_crt)
    # due within 1200 days (it has 1095); --days longer than the window, or the renewal would be due at once
    renewed = cli("pki", "renew", "--staging", staging, "--within", "1200", "--days", "2000", "--json")
    assert renewed.rc == 0, renewed.out + renewed.err
    assert serial(host_crt) != first_serial
    openssl("verify", "-CAfile", ca_crt, host_crt)

    bundle = tmp_path / "first.tgz"
    assert cli("pki", "bundle", "--staging", staging, HOST, "-o", bundle).rc == 0
    with tarfile.open(bundle) as tar:
        assert any(old in name for name in tar.getnames()), tar.getnames()
    ssl_dir, desired = tmp_path / "node" / "ssl", write(tmp_path / "node" / "desired.json", b'{"hostname": "%s"}' % HOST.encode())
    installed = cli("pki", "install-bundle", bundle, "--ssl-dir", ssl_dir, "--desired-state", desired)
    assert installed.rc == 0, installed.out + installed.err
    assert fingerprint(ssl_dir / "ssl.crt") == fingerprint(host_crt)
    openssl("verify", "-CAfile", ca_crt, ssl_dir / "ssl.crt")
    assert "PrivateKeyEntry" in {kind for kind, _ in keytool_list(ssl_dir / "ssl.keystore").values()}

    assert cli("pki", "rotate-ca", "--staging", staging, "--name", new).rc == 0
    openssl("verify", "-CAfile", staging / f"{new}.crt", staging / f"{new}.crt")
    assert cli("pki", "issue", "--staging", staging, HOST, "--renew").rc == 0
    openssl("verify", "-CAfile", staging / f"{new}.crt", host_crt)
    retired = cli("pki", "retire-ca", "--staging", staging, old)
    assert retired.rc == 0, retired.out + retired.err
    after = tmp_path / "after.tgz"
    assert cli("pki", "bundle", "--staging", staging, HOST, "-o", after).rc == 0
    with tarfile.open(after) as tar:
        names = tar.getnames()
    assert not any(old in name for name in names) and any(new in name for name in names), names


def test_every_web_command(tmp_path: Path, ca: Issued) -> None:
    node = seed_node(tmp_path / "n", HOST, ca, web=True)
    assert node.web is not None
    csr = tmp_path / "web.csr"
    made = cli("web", "csr", *on(node), "--subject", f"/CN={HOST}", "-o", csr)
    assert made.rc == 0, made.out + made.err
    openssl("req", "-in", csr, "-noout", "-verify")
    ca_crt, ca_key = write(tmp_path / "ca.crt", ca.cert_pem()), write(tmp_path / "ca.key", ca.key_pem(), 0o600)
    ext = write(tmp_path / "ext.cnf", f"subjectAltName=DNS:{HOST}\nextendedKeyUsage=serverAuth\n".encode())
    signed = tmp_path / "web.crt"
    openssl("x509", "-req", "-in", csr, "-CA", ca_crt, "-CAkey", ca_key, "-set_serial", "4242", "-days", "30",
            "-extfile", ext, "-out", signed)
    installed = cli("web", "install", *on(node), "--cert", signed)
    assert installed.rc == 0, installed.out + installed.err
    assert fingerprint(node.ssl_dir / "ssl-web.crt") == fingerprint(signed)
    assert "PrivateKeyEntry" in {kind for kind, _ in keytool_list(node.ssl_dir / "ssl-web.keystore").values()}
    back = cli("web", "rollback", *on(node))
    assert back.rc == 0, back.out + back.err
    previous = write(tmp_path / "previous.crt", node.web.cert_pem())
    assert fingerprint(node.ssl_dir / "ssl-web.crt") == fingerprint(previous)


@pytest.mark.slow
def test_every_acme_command(tmp_path: Path, node: Node) -> None:
    pebble = Pebble(tmp_path / "pebble").start()
    webroot = tmp_path / "www"
    server = WebrootServer(webroot, pebble.http_port)
    try:
        block = acme_block(pebble, [HOST], {"webroot": str(webroot)})
        node.desired.write_text(json.dumps({"hostname": HOST, "acme": block}))
        renewed = cli("acme", "renew", *on(node))
        assert renewed.rc == 0, renewed.out + renewed.err
        root = write(tmp_path / "pebble-root.pem", pebble.root_pem())
        crt, key = node.ssl_dir / "ssl-web.crt", node.ssl_dir / "ssl-web.key"
        openssl("verify", "-CAfile", root, "-untrusted", crt, crt)
        assert openssl("x509", "-in", crt, "-noout", "-pubkey").stdout == openssl("pkey", "-in", key, "-pubout").stdout
        status = cli("acme", "status", *on(node), "--json")
        assert status.rc == 0, status.out + status.err
        assert json.loads(status.out)["certificate"]["issued_by_acme"]
    finally:
        server.stop()
        pebble.stop()


def test_usage_errors_exit_2_from_a_real_process() -> None:
    proc = subprocess.run([sys.executable, "-m", "sslreconciler", "reconcile", "--no-such-option"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "usage: sslreconciler" in proc.stderr, proc.stderr


# -- the in-process form (clikit.call_main, run_cli's default) gives back the process as it was -----


def test_the_in_process_form_puts_the_process_back(node: Node, tmp_path: Path) -> None:
    import os
    import signal
    import threading

    sigpipe, umask, cwd = signal.getsignal(signal.SIGPIPE), os.umask(0o022), os.getcwd()
    os.umask(umask)
    env = dict(os.environ)
    core = resource.getrlimit(resource.RLIMIT_CORE)
    rc, out, err = call_main(["check", *map(str, on(node))], env={"SSLRECONCILER_QUIET_PERIOD": "1"})
    assert rc == 0, out + err
    assert signal.getsignal(signal.SIGPIPE) == sigpipe != signal.SIG_DFL  # main sets SIG_DFL for itself
    assert (os.umask(umask), os.getcwd(), dict(os.environ)) == (umask, cwd, env)
    assert resource.getrlimit(resource.RLIMIT_CORE) == core
    rc, out, err = call_main(["reconcile", "--no-such-option"])
    assert rc == 2 and "usage: sslreconciler" in err and out == ""
    with pytest.raises(RuntimeError, match="process=True"):
        call_main(["run", "--config", str(tmp_path / "none.toml")])
    errors: list[BaseException] = []

    def off_main() -> None:
        try:
            call_main(["schema"])
        except BaseException as exc:
            errors.append(exc)

    worker = threading.Thread(target=off_main)
    worker.start()
    worker.join(120)
    assert len(errors) == 1 and "main thread" in str(errors[0]), errors


def test_the_in_process_form_keeps_its_timeout(tmp_path: Path) -> None:
    """A listener that never answers: status would wait its own 5 s; the harness's 1 s ends it first."""
    import socket
    import time

    path = tmp_path / "mute.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as mute:
        mute.bind(str(path))
        mute.listen(4)
        t0 = time.monotonic()
        with pytest.raises(subprocess.TimeoutExpired):
            call_main(["status", "--socket", str(path)], timeout=1)
        assert time.monotonic() - t0 < 4.5
