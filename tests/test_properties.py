"""Property tests: whatever bytes arrive, the source loader and the bundle reader answer with a
finding or a refusal, never an exception of another kind, never a hang."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tarkit import tgz_files

from sslreconciler.cluster.bundle import read_bundle
from sslreconciler.model.errors import CommandError
from sslreconciler.model.findings import SourceError
from sslreconciler.pki.sources import parse_certificates, parse_private_key

from conftest import soak_size
from pkitools import make_ca, make_host

CA = make_ca("prop.example.com")
HOST = make_host(CA, "h.example.com")
PEMS = [HOST.cert_pem(), HOST.key_pem(), HOST.key_pem("pkcs1"), CA.cert_pem(), HOST.cert_der(), HOST.key_der()]


def _mutations() -> st.SearchStrategy[bytes]:
    """Random bytes, and real PEM/DER with bytes flipped, cut or spliced in."""
    def mutate(base: bytes, cut: int, flips: list[tuple[int, int]], junk: bytes) -> bytes:
        data = bytearray(base[: max(0, len(base) - cut)])
        for pos, value in flips:
            if data:
                data[pos % len(data)] = value
        return bytes(data) + junk

    real = st.builds(mutate, st.sampled_from(PEMS), st.integers(0, 400),
                     st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=8), st.binary(max_size=64))
    framed = st.builds(lambda label, body: b"-----BEGIN " + label + b"-----\n" + body + b"\n-----END " + label + b"-----\n",
                       st.sampled_from([b"CERTIFICATE", b"PRIVATE KEY", b"RSA PRIVATE KEY", b"EC PRIVATE KEY",
                                        b"ENCRYPTED PRIVATE KEY", b"TRUSTED CERTIFICATE"]),
                       st.binary(max_size=300))
    return st.one_of(st.binary(max_size=2048), real, framed)


@settings(max_examples=soak_size(400), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_mutations())
def test_certificate_loader_never_raises_anything_else(data: bytes) -> None:
    try:
        certs = parse_certificates(data, "x.crt")
    except SourceError as exc:
        assert exc.finding.file == "x.crt" and exc.finding.reason
    else:
        assert certs


@settings(max_examples=soak_size(400), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_mutations())
def test_key_loader_never_raises_anything_else(data: bytes) -> None:
    try:
        parse_private_key(data, "x.key")
    except SourceError as exc:
        assert exc.finding.file == "x.key" and exc.finding.reason


GOOD = tgz_files([("manifest.json", json.dumps({"format": 1, "host": "h", "ca": "c", "files": {}}).encode()),
                  ("ssl.key", HOST.key_pem()), ("ssl.crt", HOST.cert_pem())])


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("bundles")


@settings(max_examples=soak_size(300), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.one_of(
    st.binary(max_size=4096),
    st.builds(lambda cut, flips: bytes(b ^ (0xFF if i in flips else 0) for i, b in enumerate(GOOD[: len(GOOD) - cut])),
              st.integers(0, len(GOOD)), st.sets(st.integers(0, len(GOOD)), max_size=6)),
    st.builds(tgz_files, st.lists(st.tuples(
        st.sampled_from(["manifest.json", "ssl.key", "ssl.crt", "authorities/c.crt", "../x", "/abs", "a/b/c", "ssl.key"]),
        st.binary(max_size=200)), max_size=6)),
))
def test_bundle_reader_never_raises_anything_else(scratch: Path, data: bytes) -> None:
    path = scratch / "b.tgz"
    path.write_bytes(data)
    try:
        read_bundle(path)
    except CommandError as exc:
        assert str(path) in str(exc)
