"""The master signs each bundle's manifest; a node believes only a manifest its CA signed, and only a CA it
follows (issue 21 item 7).

Root runs ``pki install-bundle`` (the real CLI) on an ssl dir a throwaway user owns, with a state dir of its
own. The hostile bundles are the reviewer's: a genuine bundle from earlier in a rotation with its sequence
raised and repacked, and a genuine bundle from another staging area (another CA).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from bundlekit import NEW_CA, OLD_CA, install, make_rotation, ok, service_node
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from tarkit import files_of, tgz_files

from conftest import snapshot

HOST = "sec1.example.com"
RECORD = "bundle-record.json"
HOUR_US = 3600 * 10**6


@pytest.fixture(scope="module")
def rotation(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_rotation(tmp_path_factory.mktemp("signed-rotation"))


def _repack(files: dict[str, bytes], out: Path) -> Path:
    out.write_bytes(tgz_files(files, mode=0o600))
    out.chmod(0o600)
    return out


def _raised(bundle: Path, out: Path, by: int = HOUR_US) -> Path:
    """The reviewer's edit: the same bundle, its sequence raised, everything else (manifest.sig too) kept."""
    files = files_of(bundle)
    manifest = json.loads(files["manifest.json"])
    manifest["sequence"] += by
    files["manifest.json"] = json.dumps(manifest, indent=2).encode()
    return _repack(files, out)


def _ca_files(node) -> set[str]:
    return {p.name for p in (node.ssl_dir / "authorities").glob("*.crt")}


def _issuer(node) -> str:
    return x509.load_pem_x509_certificate((node.ssl_dir / "ssl.crt").read_bytes()).issuer.rfc4514_string()


def _fingerprint(pem: bytes) -> str:
    return hashlib.sha256(x509.load_pem_x509_certificate(pem).public_bytes(Encoding.DER)).hexdigest()


def _installed(node, *bundles: Path) -> None:
    for bundle in bundles:
        result = install(node, bundle)
        assert result.rc == 0, (bundle.name, result.out[-2000:], result.err[-2000:])


def _state(node) -> tuple[dict, bytes]:
    return snapshot(node.ssl_dir), (node.root / "state" / RECORD).read_bytes()


def test_each_bundle_of_a_rotation_is_signed_by_the_ca_that_issued_its_ssl_crt(rotation) -> None:
    """manifest.sig: RSA PKCS#1 v1.5 / SHA-256 over manifest.json's exact bytes, by the CA of ssl.crt: the old
    CA until the reissue (the mid-rotation bundle too), the new one after."""
    keys = {name: x509.load_pem_x509_certificate(files_of(rotation["both"])[f"authorities/{name}.crt"]).public_key()
            for name in (OLD_CA, NEW_CA)}
    for step, signer in (("pre", OLD_CA), ("both", OLD_CA), ("reissued", NEW_CA), ("retired", NEW_CA)):
        files = files_of(rotation[step])
        assert "manifest.sig" not in json.loads(files["manifest.json"])["files"]
        keys[signer].verify(files["manifest.sig"], files["manifest.json"], padding.PKCS1v15(), hashes.SHA256())


def test_the_reviewers_raised_sequence_replay_is_refused_after_a_complete_rotation(rotation, world: Path,
                                                                                   service_user) -> None:
    """The last bundle before the retirement (old and new CA, the current ssl.crt) with its sequence raised
    by an hour would put the retired CA back in authorities/: its signature no longer matches the manifest."""
    node = service_node(world, service_user)
    _installed(node, rotation["pre"], rotation["both"], rotation["reissued"], rotation["retired"])
    assert _ca_files(node) == {f"{NEW_CA}.crt"}
    before = _state(node)
    edited = _raised(rotation["reissued"], world / "reissued-raised.tgz")
    result = install(node, edited)
    assert result.rc == 1, (result.out[-2000:], result.err[-2000:])
    assert str(edited) in result.err and "manifest.sig" in result.err and "changed after the master made it" in result.err
    assert "nothing installed" in result.err
    assert _state(node) == before and f"{OLD_CA}.crt" not in _ca_files(node)


def test_the_raised_replay_cannot_block_the_genuine_retiring_bundle(rotation, world: Path, service_user) -> None:
    """Installed before the retiring bundle, the edited one would make it look older: refused, so the
    genuine retiring bundle installs and the old CA goes."""
    node = service_node(world, service_user)
    _installed(node, rotation["pre"], rotation["both"], rotation["reissued"])
    before = _state(node)
    edited = _raised(rotation["reissued"], world / "reissued-raised.tgz", by=24 * HOUR_US // 2)
    result = install(node, edited)
    assert result.rc == 1 and "changed after the master made it" in result.err, result.err[-2000:]
    assert _state(node) == before
    _installed(node, rotation["retired"])
    assert _ca_files(node) == {f"{NEW_CA}.crt"} and _issuer(node) == f"CN={NEW_CA}"


@pytest.mark.parametrize("damage", ["flipped", "removed", "emptied"])
def test_a_damaged_or_missing_signature_is_refused(rotation, world: Path, service_user, damage: str) -> None:
    node = service_node(world, service_user)
    _installed(node, rotation["pre"], rotation["both"])
    before = _state(node)
    files = files_of(rotation["reissued"])
    if damage == "flipped":
        sig = bytearray(files["manifest.sig"])
        sig[len(sig) // 2] ^= 0x01
        files["manifest.sig"] = bytes(sig)
    elif damage == "removed":
        del files["manifest.sig"]
    else:
        files["manifest.sig"] = b""
    bad = _repack(files, world / f"{damage}.tgz")
    result = install(node, bad)
    assert result.rc == 1 and str(bad) in result.err and "nothing installed" in result.err, result.err[-2000:]
    if damage == "removed":
        assert "no signature (no manifest.sig)" in result.err, result.err
    else:
        assert f"not the signature of CN={NEW_CA}" in result.err, result.err
    assert _state(node) == before
    _installed(node, rotation["reissued"])  # the genuine one still goes in


def _other_cluster(base: Path, key_type: str = "rsa2048") -> Path:
    """A genuine bundle for the same host from another staging area: another CA with another name."""
    staging = base / "other-staging"
    ok("pki", "init-ca", "--staging", staging, "--name", "ca.other.example.net", "--key-type", key_type)
    ok("pki", "issue", "--staging", staging, HOST, "--sip-domain", "example.com")
    bundle = base / "other.tgz"
    ok("pki", "bundle", "--staging", staging, HOST, "-o", bundle)
    return bundle


def _renewed(staging: Path, out: Path) -> Path:
    """A newer bundle from the cluster's staging area, its ssl.crt re-issued (never an older certificate)."""
    ok("pki", "issue", "--staging", staging, HOST, "--renew", "--sip-domain", "example.com")
    ok("pki", "bundle", "--staging", staging, HOST, "-o", out)
    return out


def test_a_bundle_from_another_ca_needs_takeover(rotation, world: Path, service_user) -> None:
    """A node that follows the cluster CA refuses a bundle another CA signed (naming both by subject and
    SHA-256), until the operator says --takeover; then it follows the new CA, and refuses the old one's."""
    node = service_node(world, service_user)
    _installed(node, rotation["pre"], rotation["both"], rotation["reissued"], rotation["retired"])
    before = _state(node)
    other = _other_cluster(world, "ec-p256")
    result = install(node, other)
    assert result.rc == 1, (result.out[-2000:], result.err[-2000:])
    new_fp = _fingerprint(files_of(rotation["retired"])[f"authorities/{NEW_CA}.crt"])
    other_fp = _fingerprint((world / "other-staging" / "ca.other.example.net.crt").read_bytes())
    for words in ("CN=ca.other.example.net", other_fp, f"CN={NEW_CA}", new_fp, "--takeover", "nothing installed"):
        assert words in result.err, (words, result.err)
    assert _state(node) == before
    taken = install(node, other, "--takeover")
    assert taken.rc == 0, (taken.out[-2000:], taken.err[-2000:])
    assert "--takeover" in taken.err and "CN=ca.other.example.net" in taken.err
    assert _issuer(node) == "CN=ca.other.example.net" and _ca_files(node) == {"ca.other.example.net.crt"}
    back = install(node, _renewed(rotation["staging"], world / "back.tgz"))
    assert back.rc == 1 and "--takeover" in back.err and f"CN={NEW_CA}" in back.err, back.err[-2000:]


def test_a_fresh_node_takes_the_first_signed_bundle_and_then_follows_its_ca(rotation, world: Path,
                                                                            service_user) -> None:
    node = service_node(world, service_user)
    _installed(node, _other_cluster(world))  # no record, no ssl.crt: the first bundle decides
    result = install(node, _renewed(rotation["staging"], world / "cluster.tgz"))
    assert result.rc == 1 and "ca.other.example.net" in result.err and "--takeover" in result.err, result.err


def test_a_record_lost_the_issuer_of_ssl_crt_still_decides(rotation, world: Path, service_user) -> None:
    """No record (a wiped state dir): the CA that issued the current ssl.crt is the one the node follows."""
    node = service_node(world, service_user)
    _installed(node, rotation["pre"])
    (node.root / "state" / RECORD).unlink()
    other = _other_cluster(world)
    result = install(node, other)
    assert result.rc == 1 and f"CN={OLD_CA} (the issuer of its ssl.crt)" in result.err, result.err
    _installed(node, rotation["both"], rotation["reissued"], rotation["retired"])


def test_an_ec_ca_signs_with_ecdsa(world: Path, service_user) -> None:
    bundle = _other_cluster(world, "ec-p256")
    files = files_of(bundle)
    ca = x509.load_pem_x509_certificate((world / "other-staging" / "ca.other.example.net.crt").read_bytes())
    key = ca.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey) and not isinstance(key, rsa.RSAPublicKey)
    key.verify(files["manifest.sig"], files["manifest.json"], ec.ECDSA(hashes.SHA256()))
    _installed(service_node(world, service_user), bundle)


def test_a_node_that_missed_the_mid_rotation_bundle_follows_the_old_cas_co_signature(rotation, world: Path,
                                                                                     service_user) -> None:
    """During the rotation every bundle is co-signed by the other CA the staging area trusts: a node that
    knows only the old CA takes the reissued bundle (signed by the new CA) on the old CA's word."""
    files = files_of(rotation["reissued"])
    assert sorted(n for n in files if n.startswith("cosigned/")) == [f"cosigned/{OLD_CA}.sig"]
    assert not any(n.startswith("cosigned/") for n in files_of(rotation["retired"]))  # retired: nothing co-signs
    node = service_node(world, service_user)
    _installed(node, rotation["pre"], rotation["reissued"], rotation["retired"])
    assert _ca_files(node) == {f"{NEW_CA}.crt"} and _issuer(node) == f"CN={NEW_CA}"
    missed = service_node(world, service_user, "missed-everything")
    _installed(missed, rotation["pre"])
    result = install(missed, rotation["retired"])  # the old CA retired before this node heard of the new one
    assert result.rc == 1 and "--takeover" in result.err and f"CN={OLD_CA}" in result.err, result.err


def test_a_damaged_co_signature_is_refused(rotation, world: Path, service_user) -> None:
    node = service_node(world, service_user)
    _installed(node, rotation["pre"])
    before = _state(node)
    files = files_of(rotation["reissued"])
    sig = bytearray(files[f"cosigned/{OLD_CA}.sig"])
    sig[-1] ^= 0x01
    files[f"cosigned/{OLD_CA}.sig"] = bytes(sig)
    bad = _repack(files, world / "cosig.tgz")
    result = install(node, bad)
    assert result.rc == 1 and f"cosigned/{OLD_CA}.sig is not the signature" in result.err, result.err
    assert _state(node) == before
