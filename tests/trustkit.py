"""Certificates with every knob the trust-rule tests turn: basicConstraints, keyUsage, EKU, pathLen,
nameConstraints, hash, key type, v1 (through openssl, which can still make them).

Independent of the product's pki/issue.py, like pkitools.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import subprocess
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, ObjectIdentifier

from pkitools import NOW, Issued, name

_KEYS: dict[str, object] = {}

CA_KU = x509.KeyUsage(False, False, False, False, False, True, True, False, False)
LEAF_KU = x509.KeyUsage(True, False, True, False, False, False, False, False, False)
NO_CERTSIGN_KU = x509.KeyUsage(True, False, False, False, False, False, True, False, False)
SERVER_CLIENT = [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
UNSET = object()


def key(kind: str = "rsa"):
    """A fresh key; ``rsa1024``, ``secp256k1``, ``dsa1024`` for the weak cases."""
    if kind == "ec":
        return ec.generate_private_key(ec.SECP256R1())
    if kind == "ec384":
        return ec.generate_private_key(ec.SECP384R1())
    if kind == "secp256k1":
        return ec.generate_private_key(ec.SECP256K1())
    if kind == "dsa1024":
        return dsa.generate_private_key(1024)
    if kind == "rsa1024":
        return rsa.generate_private_key(65537, 1024)
    return rsa.generate_private_key(65537, 2048)


def cert(
    cn: str,
    issuer: Issued | None = None,
    *,
    kind: str = "rsa",
    ca: bool | None = True,
    path_length: int | None = None,
    ku: object = UNSET,
    eku: list[ObjectIdentifier] | object | None = UNSET,
    sans: list[str] | None = None,
    permitted: list[x509.GeneralName] | None = None,
    excluded: list[x509.GeneralName] | None = None,
    digest: hashes.HashAlgorithm | None = None,
    not_before: dt.datetime | None = None,
    days: int = 365,
    unknown_critical: bool = False,
    the_key=None,
) -> Issued:
    """``ca=None``: no basicConstraints at all. ``ku``/``eku`` default by ``ca``; None leaves them out."""
    k = the_key or key(kind)
    signer = issuer.key if issuer else k
    start = not_before or NOW - dt.timedelta(days=1)
    b = (
        x509.CertificateBuilder()
        .subject_name(name(cn))
        .issuer_name(issuer.cert.subject if issuer else name(cn))
        .public_key(k.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=days))
    )
    if ca is not None:
        b = b.add_extension(x509.BasicConstraints(ca=ca, path_length=path_length if ca else None), critical=True)
    usage = (CA_KU if ca else LEAF_KU) if ku is UNSET else ku
    if usage is not None:
        b = b.add_extension(usage, critical=True)
    ext_usage = (None if ca else SERVER_CLIENT) if eku is UNSET else eku
    if ext_usage is not None:
        b = b.add_extension(x509.ExtendedKeyUsage(ext_usage), critical=False)
    if sans is None and not ca:
        sans = [cn]
    if sans:
        b = b.add_extension(x509.SubjectAlternativeName([x509.DNSName(s) for s in sans]), critical=False)
    if permitted or excluded:
        b = b.add_extension(x509.NameConstraints(permitted or None, excluded or None), critical=True)
    if unknown_critical:
        b = b.add_extension(x509.UnrecognizedExtension(ObjectIdentifier("1.3.6.1.4.1.99999.1"), b"\x05\x00"), True)
    return Issued(k, b.sign(signer, digest or hashes.SHA256()))


def dns(*names: str) -> list[x509.GeneralName]:
    return [x509.DNSName(n) for n in names]


def ipnet(net: str) -> x509.GeneralName:
    return x509.IPAddress(ipaddress.ip_network(net))


@dataclass
class V1:
    root: Issued
    leaf: Issued
    inter: Issued  # a v1 intermediate (root -> inter -> leaf2)
    leaf2: Issued


def openssl_v1(work: Path) -> V1:
    """X.509 v1 root, leaf and intermediate, as ``openssl x509 -req`` without extensions makes them."""
    work.mkdir(parents=True, exist_ok=True)

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=work, check=True, capture_output=True, timeout=60)

    def issued(stem: str) -> Issued:
        k = serialization.load_pem_private_key((work / f"{stem}.key").read_bytes(), None)
        return Issued(k, x509.load_pem_x509_certificate((work / f"{stem}.crt").read_bytes()))

    for stem, cn in (("root", "v1 root"), ("leaf", "v1leaf.example.com"), ("inter", "v1 inter"),
                     ("leaf2", "v1leaf2.example.com")):
        run("genrsa", "-traditional", "-out", f"{stem}.key", "2048")
        run("req", "-new", "-key", f"{stem}.key", "-subj", f"/CN={cn}", "-out", f"{stem}.csr")
    run("x509", "-req", "-in", "root.csr", "-signkey", "root.key", "-days", "3650", "-out", "root.crt")
    for stem, ca in (("leaf", "root"), ("inter", "root"), ("leaf2", "inter")):
        run("x509", "-req", "-in", f"{stem}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key", "-set_serial",
            str(abs(hash(stem)) % 100000 + 2), "-days", "365", "-out", f"{stem}.crt")
    out = V1(issued("root"), issued("leaf"), issued("inter"), issued("leaf2"))
    assert out.root.cert.version is x509.Version.v1 and out.leaf2.cert.version is x509.Version.v1
    return out


def openssl_signed(work: Path, cn: str, issuer: Issued | None, digest: str = "sha1", ca: bool = False) -> Issued:
    """A certificate signed by ``openssl x509 -req -<digest>`` (cryptography no longer signs with SHA-1)."""
    work.mkdir(parents=True, exist_ok=True)
    k = key()
    csr = (x509.CertificateSigningRequestBuilder().subject_name(name(cn)).sign(k, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    (work / f"{cn}.csr").write_bytes(csr.public_bytes(pem))
    (work / f"{cn}.key").write_bytes(k.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                                     serialization.NoEncryption()))
    ext = ("basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n" if ca else
           f"basicConstraints=critical,CA:FALSE\nextendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=DNS:{cn}\n")
    (work / "ext.cnf").write_text("[v3]\n" + ext)
    args = ["openssl", "x509", "-req", "-in", f"{cn}.csr", f"-{digest}", "-days", "365", "-extfile", "ext.cnf",
            "-extensions", "v3", "-set_serial", "7", "-out", f"{cn}.crt"]
    if issuer is None:
        args += ["-signkey", f"{cn}.key"]
    else:
        (work / "issuer.crt").write_bytes(issuer.cert_pem())
        (work / "issuer.key").write_bytes(issuer.key_pem())
        args += ["-CA", "issuer.crt", "-CAkey", "issuer.key"]
    subprocess.run(args, cwd=work, check=True, capture_output=True, timeout=60)
    return Issued(k, x509.load_pem_x509_certificate((work / f"{cn}.crt").read_bytes()))
