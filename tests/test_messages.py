"""Messages that say what to do: an expiry names the command that renews that pair, a hook's missing program
is a warning at load naming the path (the stores still built), hook messages name the program and end in a
sentence, and a walk over the findings the package produces checks each ends in a sentence naming its file."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from sslreconciler.config.desired import DesiredState
from sslreconciler.pki import trust as rules
from sslreconciler.reconcile.renewal import Route, renewal_advice, renewal_route

from conftest import keytool_list, reconcile, run_cli
from pkitools import NOW, Issued, Node, make_ca, make_host, seed_node, write

ACME = {"directory": "https://acme.invalid/directory", "challenge": {"listen": "127.0.0.1:8402"}}


# --- which command renews a pair: the rule's table -----------------------------------------------------------


@pytest.fixture(scope="module")
def pki() -> dict[str, Issued]:
    root = make_ca("ca.cluster.example.com")
    other_root = make_ca("another private root")
    outside_root = make_ca("Outside Root CA")
    outside_int = make_ca("Outside Issuing CA", issuer=outside_root)
    return {
        "root": root,
        "other_root": other_root,
        "outside_root": outside_root,
        "host": make_host(root, "h.example.com"),
        "web": make_host(root, "h.example.com"),
        "other": make_host(other_root, "h.example.com"),
        "outside": make_host(outside_int, "h.example.com"),
        "outside_int": outside_int,
    }


@pytest.mark.parametrize(
    ("pair", "leaf", "host", "anchors", "acme", "route"),
    [
        ("ssl-web", "outside", "host", ["root", "outside_root"], True, Route.ACME),  # the acme block's pair
        ("ssl", "host", "host", ["root"], True, Route.CLUSTER),  # acme renews the web pair only
        ("ssl", "host", "host", ["root"], False, Route.CLUSTER),  # this host's pair, from the cluster CA
        ("ssl-web", "web", "host", ["root"], False, Route.CLUSTER),  # `pki issue --web`
        ("ssl", "host", "host", [], False, Route.OUTSIDE),  # its issuer is not among the trust sources
        ("ssl", "host", None, ["root"], False, Route.OUTSIDE),  # no host pair: no cluster identity
        ("ssl-web", "outside", "host", ["root", "outside_root"], False, Route.OUTSIDE),  # from an intermediate
        ("ssl-web", "other", "host", ["root", "other_root"], False, Route.OUTSIDE),  # another root's
        ("ssl", "outside", "outside", ["outside_root"], False, Route.OUTSIDE),  # a host pair from outside
    ],
)
def test_the_renewal_route(
    pki: dict[str, Issued], pair: str, leaf: str, host: str | None, anchors: list[str], acme: bool, route: Route
) -> None:
    desired = DesiredState.model_validate({"hostname": "h.example.com", **({"acme": ACME} if acme else {})})
    chain = [pki[leaf].cert] + ([pki["outside_int"].cert] if leaf == "outside" else [])
    host_chain = [pki[host].cert] if host else []
    found = renewal_route(pair, chain, desired, host_chain, rules.Anchors.of([pki[a].cert for a in anchors]))
    assert found is route


def test_the_renewal_advice_in_words() -> None:
    assert "`sslreconciler acme renew`" in renewal_advice(Route.ACME, "ssl-web", "ssl-web.crt", "CN=x")
    cluster = renewal_advice(Route.CLUSTER, "ssl", "ssl.crt", "CN=x")
    assert "pki renew --staging DIR --within DAYS`" in cluster and "install-bundle" in cluster
    assert "--web-too" in renewal_advice(Route.CLUSTER, "ssl-web", "ssl-web.crt", "CN=x")
    outside = renewal_advice(Route.OUTSIDE, "ssl", "ssl.crt", "CN=Outside Issuing CA")
    assert "outside CA that issued it (CN=Outside Issuing CA)" in outside and "ssl.crt" in outside


def _pair_files(node: Node, name: str, issued: Issued, extra: bytes = b"") -> None:
    write(node.ssl_dir / f"{name}.key", issued.key_pem(), 0o600)
    write(node.ssl_dir / f"{name}.crt", issued.cert_pem() + extra)


def _expiry_line(node: Node, file: str) -> str:
    result = run_cli("check", "--ssl-dir", node.ssl_dir, "--desired-state", node.desired)
    assert result.rc == 0, result.out + result.err
    return next(x for x in result.out.splitlines() if x.startswith(f"  warning [expiring]: {file}: "))


def test_expiry_warnings_name_the_command_that_renews_the_pair(tmp_path: Path, ca: Issued) -> None:
    node = seed_node(tmp_path / "n", "master.example.com", ca)
    _pair_files(node, "ssl", make_host(ca, node.host, days=11))  # from the cluster CA, in authorities/
    line = _expiry_line(node, "ssl.crt")
    assert re.search(r"expires in \d+ days", line) and "pki renew --staging DIR --within DAYS`" in line, line

    outside_root = make_ca("Outside Root CA")
    issuing = make_ca("Outside Issuing CA", issuer=outside_root)
    write(node.ssl_dir / "authorities" / "outside.crt", outside_root.cert_pem())
    _pair_files(node, "ssl", make_host(ca, node.host))
    _pair_files(node, "ssl-web", make_host(issuing, node.host, days=11), issuing.cert_pem())
    line = _expiry_line(node, "ssl-web.crt")
    assert "from the outside CA that issued it (CN=Outside Issuing CA) and put it in ssl-web.crt." in line, line

    node.desired.write_text(json.dumps({"hostname": node.host, "acme": ACME}))
    line = _expiry_line(node, "ssl-web.crt")
    assert line.endswith(
        "renew it with `sslreconciler acme renew` (the desired state's acme block manages this pair)."
    ), line


# --- a hook's program --------------------------------------------------------------------------------------


def test_a_missing_hook_program_is_a_warning_at_load_naming_the_path(tmp_path: Path, ca: Issued) -> None:
    node = seed_node(tmp_path / "n", "master.example.com", ca)
    not_executable = write(tmp_path / "reload.sh", b"#!/bin/sh\n", 0o644)
    hooks = [
        {"name": "gone", "after": ["ssl.keystore"], "command": ["/nonexistent/reload-apache", "graceful"]},
        {"after": ["ssl.keystore"], "command": [str(not_executable)]},
        {"name": "nowhere", "after": ["ssl.keystore"], "command": ["no-such-reload-program-anywhere"]},
        {"name": "fine", "after": ["ssl.keystore"], "command": [sys.executable, "-c", "pass"]},
    ]
    node.desired.write_text(json.dumps({"hostname": node.host, "hooks": hooks}))
    checked = reconcile(node, command="check")
    found = [f for f in checked.json()["findings"] if f["code"] == "hook-program"]
    assert checked.rc == 0 and [f["level"] for f in found] == ["warning"] * 3, checked.out
    assert all(f["file"] == str(node.desired) for f in found), found
    assert "hooks[0] ('gone'): its program /nonexistent/reload-apache does not exist" in found[0]["reason"]
    assert f"its program {not_executable} is not executable (mode 0644)" in found[1]["reason"]
    assert "no-such-reload-program-anywhere is not found in PATH" in found[2]["reason"]
    assert all("install the program or correct the hook's command" in f["reason"] for f in found)

    result = reconcile(node)  # the good stores are built all the same; the hooks that cannot run say why
    doc = result.json()
    assert keytool_list(node.ssl_dir / "ssl.keystore") == {"ssl": ("PrivateKeyEntry", 1)}
    assert doc["artifacts"]["ssl.keystore"]["action"] == "written" and doc["status"] == "warning", doc
    assert result.rc == 1  # a hook this command ran did not end ok, as before
    details = {label: h["detail"] for label, h in doc["hooks"].items() if h["outcome"] != "ok"}
    assert "/nonexistent/reload-apache" in details["gone"] and str(not_executable) in details[str(not_executable)]
    assert "no-such-reload-program-anywhere" in details["nowhere"] and doc["hooks"]["fine"]["outcome"] == "ok"
    assert all(d.endswith(".") for d in details.values()), details


def test_a_hook_timeout_message_ends_in_a_sentence(tmp_path: Path, ca: Issued) -> None:
    node = seed_node(tmp_path / "n", "master.example.com", ca)
    hooks = [
        {"name": "quiet", "after": ["ssl.keystore"], "command": ["/bin/sleep", "30"], "timeout": 0.5},
        {
            "name": "chatty",
            "after": ["ssl.keystore"],
            "command": ["/bin/sh", "-c", "echo reloading; sleep 30"],
            "timeout": 0.5,
        },
    ]
    node.desired.write_text(json.dumps({"hostname": node.host, "hooks": hooks}))
    doc = reconcile(node).json()
    quiet, chatty = doc["hooks"]["quiet"], doc["hooks"]["chatty"]
    assert quiet["outcome"] == "timeout" and chatty["outcome"] == "timeout", doc["hooks"]
    assert quiet["detail"] == "killed after 0.5 s (its timeout); make it end sooner or raise the hook's timeout."
    assert chatty["detail"] == (
        "killed after 0.5 s (its timeout), its last output: reloading; make it end sooner or raise the hook's timeout."
    ), chatty["detail"]


# --- the walk: every finding a check can be led to ends in a sentence and names its file --------------------


def _expired(node: Node) -> None:
    _pair_files(node, "ssl", make_host(node.ca, node.host, not_before=NOW - dt.timedelta(days=30), days=10))


def _future(node: Node) -> None:
    _pair_files(node, "ssl", make_host(node.ca, node.host, not_before=NOW + dt.timedelta(days=3)))


def _mismatch(node: Node) -> None:
    write(node.ssl_dir / "ssl.crt", make_host(node.ca, node.host).cert_pem())


def _extra(node: Node) -> None:
    write(node.ssl_dir / "ssl.crt", node.ssl.cert_pem() + make_host(node.ca, "x.example.com").cert_pem())


def _encrypted(node: Node) -> None:
    pem = node.ssl.key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.BestAvailableEncryption(b"pw")
    )
    write(node.ssl_dir / "ssl.key", pem, 0o600)


def _untrusted(node: Node) -> None:
    _pair_files(node, "ssl", make_host(make_ca("Stranger CA"), node.host))


def _desired(**body: object) -> Callable[[Node], None]:
    return lambda node: node.desired.write_text(json.dumps({"hostname": node.host, **body}))


TRIGGERS: dict[str, Callable[[Node], None]] = {
    "missing": lambda node: os.unlink(node.ssl_dir / "ssl.crt"),
    "empty": lambda node: write(node.ssl_dir / "ssl.crt", b""),
    "garbage": lambda node: write(node.ssl_dir / "ssl.crt", b"not a certificate\n"),
    "key-mode": lambda node: os.chmod(node.ssl_dir / "ssl.key", 0o644),
    "no-key": lambda node: write(node.ssl_dir / "ssl.key", node.ssl.cert_pem(), 0o600),
    "key-mismatch": _mismatch,
    "extra-certificate": _extra,
    "expired": _expired,
    "not-yet-valid": _future,
    "expiring": lambda node: _pair_files(node, "ssl", make_host(node.ca, node.host, days=5)),
    "hostname": lambda node: _pair_files(node, "ssl", make_host(node.ca, node.host, sans=["other.example.com"])),
    "encrypted-key": _encrypted,
    "untrusted": _untrusted,
    "symlink-escape": lambda node: (
        os.unlink(node.ssl_dir / "ssl.crt"),
        os.symlink("/etc/hostname", node.ssl_dir / "ssl.crt"),
    ),
    "dangling-symlink": lambda node: (
        os.unlink(node.ssl_dir / "ssl.crt"),
        os.symlink("gone.crt", node.ssl_dir / "ssl.crt"),
    ),
    "no-store": _desired(pairs=[{"name": "ssl", "key": "ssl.key", "cert": "ssl.crt"}]),
    "unknown-owner": _desired(permissions={"owner": "no-such-user-here"}),
    "hook-program": _desired(hooks=[{"after": ["ssl.keystore"], "command": ["/nonexistent/reload"]}]),
}


@pytest.mark.parametrize("code", sorted(TRIGGERS))
def test_every_finding_ends_in_a_sentence_and_names_its_file(tmp_path: Path, ca: Issued, code: str) -> None:
    if code == "unknown-owner" and os.geteuid() != 0:
        pytest.skip("owners are resolved only as root")
    node = seed_node(tmp_path / "n", "master.example.com", ca)
    TRIGGERS[code](node)
    text = run_cli("check", "--ssl-dir", node.ssl_dir, "--desired-state", node.desired).out
    findings = reconcile(node, command="check").json()["findings"]
    assert code in [f["code"] for f in findings], findings
    lines = text.splitlines()
    start = next(i for i, x in enumerate(lines) if x.startswith("findings ("))
    shown = [x for x in lines[start + 1 :] if x.startswith("  ")]
    assert len(shown) == len(findings), text
    for line, f in zip(shown, findings, strict=True):
        assert line.startswith(f"  {f['level']} [{f['code']}]") and f": {f['file']}: " in line, line
        assert line.endswith((".", "?", "!")), line
