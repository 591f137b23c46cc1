"""`pki import-ca`, `pki issue` and `pki renew` at their edges (issue 25's review): a CA that cannot work is
refused at import with nothing left behind, an expired CA makes `pki issue` a clear error, a `pki renew`
whose --days is not longer than its --within window is a usage error whatever is due."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa

from conftest import openssl, run_cli
from pkitools import NOW, Issued, make_ca, name, new_key, write

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="runs as root, as the CLI does on a staging area")


def _pki(*args: str | Path) -> str:
    result = run_cli("pki", *args)
    assert result.rc == 0, result.err
    return result.out


def _files(tmp_path: Path, stem: str, ca: Issued) -> tuple[Path, Path]:
    crt = write(tmp_path / "in" / f"{stem}.crt", ca.cert_pem())
    return crt, write(tmp_path / "in" / f"{stem}.key", ca.key_pem(), 0o600)


def _no_key_cert_sign(cn: str) -> Issued:
    """A self-signed CA:TRUE whose keyUsage has digitalSignature and cRLSign but not keyCertSign."""
    key = new_key()
    cert = (
        x509.CertificateBuilder().subject_name(name(cn)).issuer_name(name(cn)).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(NOW - dt.timedelta(days=1))
        .not_valid_after(NOW + dt.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(True, False, False, False, False, False, True, False, False), critical=True)
        .sign(key, hashes.SHA256())
    )
    return Issued(key, cert)


def _expired(cn: str) -> Issued:
    return make_ca(cn, not_before=NOW - dt.timedelta(days=40), days=10)


def _refused(result_rc: int, err: str, *parts: str) -> None:
    assert result_rc != 0 and "Traceback" not in err, err
    for part in parts:
        assert part in err, err


def test_import_ca_refuses_a_ca_that_cannot_issue_or_has_expired_and_leaves_nothing(tmp_path: Path) -> None:
    expired, noku = _expired("ca.expired.example.com"), _no_key_cert_sign("ca.noku.example.com")
    crt, key = _files(tmp_path, "expired", expired)
    assert openssl("x509", "-in", crt, "-noout", "-checkend", "0", check=False).returncode != 0  # openssl: expired
    staging = tmp_path / "new" / "S"
    result = run_cli("pki", "import-ca", "--staging", staging, "--cert", crt, "--key", key)
    _refused(result.rc, result.err, str(crt), "expired")
    assert not (tmp_path / "new").exists()  # a refused import makes no directory
    crt, key = _files(tmp_path, "noku", noku)
    assert "Certificate Sign" not in openssl("x509", "-in", crt, "-noout", "-ext", "keyUsage").stdout
    result = run_cli("pki", "import-ca", "--staging", staging, "--cert", crt, "--key", key)
    _refused(result.rc, result.err, str(crt), "keyCertSign")
    assert not (tmp_path / "new").exists()
    # trust-only beside a working CA: an expired one is refused too, and the staging area is unchanged
    _pki("init-ca", "--staging", tmp_path / "T", "--name", "ca.new.example.com")
    before = sorted(p.name for p in (tmp_path / "T").iterdir())
    result = run_cli("pki", "import-ca", "--staging", tmp_path / "T", "--cert", tmp_path / "in" / "expired.crt")
    _refused(result.rc, result.err, str(tmp_path / "in" / "expired.crt"), "expired")
    assert sorted(p.name for p in (tmp_path / "T").iterdir()) == before


def test_import_ca_refuses_a_file_of_two_cas(tmp_path: Path) -> None:
    one, two = make_ca("ca.one.example.com"), make_ca("ca.two.example.com")
    crt = write(tmp_path / "two.crt", one.cert_pem() + two.cert_pem())
    key = write(tmp_path / "one.key", one.key_pem(), 0o600)
    result = run_cli("pki", "import-ca", "--staging", tmp_path / "S", "--cert", crt, "--key", key)
    _refused(result.rc, result.err, str(crt), "2 certificates")
    assert not (tmp_path / "S").exists()


def test_import_ca_refuses_a_ca_whose_key_the_policy_refuses(tmp_path: Path) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    cert = (
        x509.CertificateBuilder().subject_name(name("ca.weak.example.com")).issuer_name(name("ca.weak.example.com"))
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(NOW - dt.timedelta(days=1)).not_valid_after(NOW + dt.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    crt, key_file = _files(tmp_path, "weak", Issued(key, cert))
    assert "(1024 bit)" in openssl("x509", "-in", crt, "-noout", "-text").stdout
    result = run_cli("pki", "import-ca", "--staging", tmp_path / "S", "--cert", crt, "--key", key_file)
    _refused(result.rc, result.err, str(crt), "1024-bit RSA")
    assert not (tmp_path / "S").exists()


def test_import_of_the_staging_areas_own_ca_names_the_staged_file(tmp_path: Path) -> None:
    _pki("init-ca", "--staging", tmp_path / "S", "--name", "ca.own.example.com")
    copy = write(tmp_path / "self.crt", (tmp_path / "S" / "ca.own.example.com.crt").read_bytes())
    out = _pki("import-ca", "--staging", tmp_path / "S", "--cert", copy)
    assert f"{tmp_path / 'S' / 'ca.own.example.com.crt'}: this CA is already there" in out
    assert "self.crt" not in out


def test_issue_under_an_expired_ca_is_a_clear_error(tmp_path: Path) -> None:
    staging = tmp_path / "S"
    staging.mkdir(mode=0o700)
    expired = _expired("ca.old.example.com")
    write(staging / "ca.old.example.com.crt", expired.cert_pem())
    write(staging / "ca.old.example.com.key", expired.key_pem(), 0o600)
    result = run_cli("pki", "issue", "--staging", staging, "host.example.com")
    _refused(result.rc, result.err, "ca.old.example.com.crt", "expired")
    assert not (staging / "host.example.com.crt").exists()


@pytest.mark.parametrize("args", [["--within", "10", "--days", "10"], ["--within", "30", "--days", "5"],
                                  ["--within", "-1"]])
def test_renew_refuses_bad_arguments_up_front_as_a_usage_error(tmp_path: Path, args: list[str]) -> None:
    _pki("init-ca", "--staging", tmp_path / "S", "--name", "ca.example.com")
    _pki("issue", "--staging", tmp_path / "S", "host.example.com")  # 825 days left: nothing due
    result = run_cli("pki", "renew", "--staging", tmp_path / "S", *args)
    assert result.rc == 2 and "Traceback" not in result.err, result.err
    assert args[1] in result.err and "nothing renewed" not in result.out
    missing = run_cli("pki", "renew", "--staging", tmp_path / "missing", *args)  # before the staging area is read
    assert missing.rc == 2 and args[1] in missing.err and not (tmp_path / "missing").exists(), missing.err
