"""Name constraints (RFC 5280 4.2.1.10) for DNS, IP, e-mail and directory names: is every name of a
certificate inside an issuer's permitted subtrees and outside its excluded ones?"""

from __future__ import annotations

import ipaddress

from cryptography import x509
from cryptography.x509.oid import NameOID

from sslreconciler.pki.certfacts import extension


def _looks_like_host(value: str) -> bool:
    labels = value.lower().rstrip(".").split(".")
    return len(labels) > 1 and all(label and all(c.isalnum() or c in "-*" for c in label) for label in labels)


def _names_of(cert: x509.Certificate, is_leaf: bool) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = []
    san = extension(cert, x509.SubjectAlternativeName)
    if isinstance(san, x509.SubjectAlternativeName):
        names.extend(san)
    if len(cert.subject):
        names.append(x509.DirectoryName(cert.subject))
    for attr in cert.subject.get_attributes_for_oid(NameOID.EMAIL_ADDRESS):
        names.append(x509.RFC822Name(str(attr.value)))
    if is_leaf and not any(isinstance(n, x509.DNSName) for n in names):
        # as OpenSSL does: a host name in the CN of a leaf without DNS subjectAltNames is checked too
        for attr in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME):
            if isinstance(attr.value, str) and _looks_like_host(attr.value):
                names.append(x509.DNSName(attr.value))
    return names


def _dns_within(name: str, base: str) -> bool:
    name, base = name.lower().rstrip("."), base.lower().rstrip(".")
    if not base:
        return True
    if base.startswith("."):
        return name.endswith(base)
    return name == base or name.endswith("." + base)


def _mail_within(name: str, base: str) -> bool:
    if "@" in base:
        return name.lower() == base.lower()
    host = name.rpartition("@")[2]
    return _dns_within(host, base) if base.startswith(".") else host.lower() == base.lower()


def _rdn_key(rdn: x509.RelativeDistinguishedName) -> frozenset[tuple[str, str]]:
    return frozenset((a.oid.dotted_string, " ".join(str(a.value).casefold().split())) for a in rdn)


def _dn_within(name: x509.Name, base: x509.Name) -> bool:
    ours, theirs = list(name.rdns), list(base.rdns)
    return len(theirs) <= len(ours) and all(_rdn_key(a) == _rdn_key(b) for a, b in zip(ours, theirs, strict=False))


def _ip_within(name: object, base: object) -> bool:
    return (
        isinstance(name, ipaddress.IPv4Address | ipaddress.IPv6Address)
        and isinstance(base, ipaddress.IPv4Network | ipaddress.IPv6Network)
        and name.version == base.version
        and name in base
    )


def _within(name: x509.GeneralName, base: x509.GeneralName) -> bool | None:
    """Is ``name`` inside the subtree ``base`` (same type)? None: a type this check does not handle."""
    if isinstance(name, x509.DNSName) and isinstance(base, x509.DNSName):
        return _dns_within(name.value, base.value)
    if isinstance(name, x509.RFC822Name) and isinstance(base, x509.RFC822Name):
        return _mail_within(name.value, base.value)
    if isinstance(name, x509.DirectoryName) and isinstance(base, x509.DirectoryName):
        return _dn_within(name.value, base.value)
    if isinstance(name, x509.IPAddress) and isinstance(base, x509.IPAddress):
        return _ip_within(name.value, base.value)
    return None


def names_problem(cert: x509.Certificate, nc: x509.NameConstraints, is_leaf: bool) -> str | None:
    permitted, excluded = list(nc.permitted_subtrees or ()), list(nc.excluded_subtrees or ())
    for name in _names_of(cert, is_leaf):
        same_permitted = [b for b in permitted if type(b) is type(name)]
        same_excluded = [b for b in excluded if type(b) is type(name)]
        if not same_permitted and not same_excluded:
            continue
        shown = name.value.rfc4514_string() if isinstance(name, x509.DirectoryName) else str(name.value)
        verdicts = [_within(name, b) for b in same_permitted + same_excluded]
        if any(v is None for v in verdicts):
            return f"has a {type(name).__name__} ({shown}) that name constraints cannot be checked against"
        if any(verdicts[len(same_permitted) :]):
            return f"name {shown} is excluded"
        if same_permitted and not any(verdicts[: len(same_permitted)]):
            return f"name {shown} is outside the permitted names"
    return None
