"""The one trust decision: is a certificate verified along an RFC 5280 path to a trust source?

``validate_path`` builds every path from the leaf through the given intermediates to a trust anchor
and accepts the first one on which every rule holds (docs/trust.md lists them):

- each certificate is signed by the next one and is inside its validity period (the anchor too);
- every issuer below the anchor carries basicConstraints CA:TRUE; the anchor either does too, or is
  an old-style self-signed certificate with no basicConstraints at all (X.509 v1, or keyUsage with
  keyCertSign), which is what OpenSSL accepts as a root and nothing more;
- an issuer with keyUsage has keyCertSign; pathLenConstraint and nameConstraints hold;
- no certificate below the anchor has a critical extension this code does not understand;
- the anchor is one of ``anchors`` (the trust sources): never a certificate that came with the leaf.

It is written out here rather than delegated to ``cryptography.x509.verification`` because that
verifier cannot take a v1 root and refuses SHA-1 signatures and RSA issuer keys below 2048 bits
outright, which the policy rules (``policy_findings``) must report by name, and may lower to a warning.

``policy_findings`` names what is weak or forbids the store's use; each rule is a stable code.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from sslreconciler.model.findings import Finding, FindingCode, error, warning

MAX_CHAIN_DEPTH = 8
MAX_PATHS = 32  # paths tried per leaf: cross-signed CAs give a few, a hostile pile must not give thousands
MAX_STEPS = 256  # partial paths expanded per leaf, however the pool is arranged

# Policy rules: the finding code of each; the desired state's `policy` may lower any to a warning.
WEAK_RSA_KEY = FindingCode.WEAK_RSA_KEY
WEAK_EC_CURVE = FindingCode.WEAK_EC_CURVE
WEAK_DSA_KEY = FindingCode.WEAK_DSA_KEY
WEAK_SIGNATURE = FindingCode.WEAK_SIGNATURE
KEY_USAGE = FindingCode.KEY_USAGE
POLICY_RULES = (WEAK_RSA_KEY, WEAK_EC_CURVE, WEAK_DSA_KEY, WEAK_SIGNATURE, KEY_USAGE)
MIN_RSA_BITS = 2048
GOOD_CURVES = {"secp256r1", "secp384r1", "secp521r1"}
WEAK_HASHES = {"sha1", "md5"}

SERVER, CLIENT = "server", "client"


@dataclass(frozen=True, slots=True)
class ChainResult:
    ok: bool
    detail: str  # why it failed, or how it was verified
    chain: tuple[x509.Certificate, ...] = ()  # leaf first, the anchor last


def describe(cert: x509.Certificate) -> str:
    return cert.subject.rfc4514_string() or "(empty subject)"


def der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def signed_by(child: x509.Certificate, issuer: x509.Certificate) -> bool:
    """``issuer`` names and signs ``child``.

    Checked with the issuer's public key directly: ``verify_directly_issued_by`` refuses SHA-1
    signatures outright, which must reach the policy rule (and may be lowered) instead.
    """
    if child.issuer != issuer.subject:
        return False
    key = issuer.public_key()
    try:
        params = child.signature_algorithm_parameters
        if isinstance(key, rsa.RSAPublicKey) and isinstance(params, padding.PKCS1v15 | padding.PSS):
            algorithm = child.signature_hash_algorithm
            if algorithm is None:
                return False
            key.verify(child.signature, child.tbs_certificate_bytes, params, algorithm)
        elif isinstance(key, ec.EllipticCurvePublicKey) and isinstance(params, ec.ECDSA):
            key.verify(child.signature, child.tbs_certificate_bytes, params)
        else:  # Ed25519/Ed448 and the rest: the library's own check
            child.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False
    return True


def is_self_signed(cert: x509.Certificate) -> bool:
    return cert.issuer == cert.subject and signed_by(cert, cert)


def _self_issued(cert: x509.Certificate) -> bool:
    return cert.issuer == cert.subject


def _extension(cert: x509.Certificate, kind: type[x509.ExtensionType]) -> x509.ExtensionType | None:
    """The extension's value; None when absent. ValueError when the extensions cannot be read."""
    try:
        return cert.extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None


def _basic_constraints(cert: x509.Certificate) -> x509.BasicConstraints | None:
    value = _extension(cert, x509.BasicConstraints)
    return value if isinstance(value, x509.BasicConstraints) else None


def _key_usage(cert: x509.Certificate) -> x509.KeyUsage | None:
    value = _extension(cert, x509.KeyUsage)
    return value if isinstance(value, x509.KeyUsage) else None


def anchor_problem(cert: x509.Certificate) -> str | None:
    """Why ``cert`` cannot be a trust anchor (issue certificates), or None when it can."""
    try:
        bc, ku = _basic_constraints(cert), _key_usage(cert)
    except ValueError:
        return "has unreadable extensions"
    if bc is not None and not bc.ca:
        return "is not a CA (basicConstraints CA:FALSE)"
    if ku is not None and not ku.key_cert_sign:
        return "has keyUsage without keyCertSign"
    if bc is None:
        if not is_self_signed(cert):
            return "has no basicConstraints and is not self-signed"
        if cert.version is not x509.Version.v1 and ku is None:
            return "is an X.509 v3 certificate without basicConstraints or keyUsage keyCertSign"
    return None


@dataclass(slots=True)
class Anchors:
    """The trust anchors, indexed for the search; build once per reconcile, share across leaves."""

    certs: list[x509.Certificate] = field(default_factory=list)
    by_subject: dict[bytes, list[x509.Certificate]] = field(default_factory=dict)
    ders: set[bytes] = field(default_factory=set)

    @classmethod
    def of(cls, certs: Sequence[x509.Certificate]) -> Anchors:
        anchors = cls()
        for cert in certs:
            anchors.add(cert)
        return anchors

    def add(self, cert: x509.Certificate) -> None:
        self.certs.append(cert)
        self.by_subject.setdefault(cert.subject.public_bytes(), []).append(cert)
        self.ders.add(der(cert))

    def issuers_of(self, cert: x509.Certificate) -> list[x509.Certificate]:
        return self.by_subject.get(cert.issuer.public_bytes(), [])

    def holds(self, cert: x509.Certificate) -> bool:
        return der(cert) in self.ders


def issuer_in_anchors(chain: Sequence[x509.Certificate], anchors: Anchors) -> bool:
    """Is any certificate of ``chain``, or the issuer of one, a trust anchor?"""
    return any(anchors.holds(c) or anchors.issuers_of(c) for c in chain)


def validate_path(
    leaf: x509.Certificate,
    intermediates: Sequence[x509.Certificate],
    anchors: Anchors | Sequence[x509.Certificate],
    now: dt.datetime,
) -> ChainResult:
    """Is ``leaf`` verified at ``now`` along some path through ``intermediates`` to one of ``anchors``?"""
    store = anchors if isinstance(anchors, Anchors) else Anchors.of(anchors)
    if not store.certs:
        return ChainResult(False, "no CA certificate to verify against")
    dead_ends: list[tuple[int, str]] = []
    rule_failures: list[str] = []
    for path in _paths(leaf, list(intermediates), store, dead_ends):
        problem = _path_problem(path, now)
        if problem is None:
            how = "verified" if len(path) > 1 else "verified (the certificate is itself a trust anchor)"
            return ChainResult(True, how, tuple(path))
        rule_failures.append(problem)
    if rule_failures:
        return ChainResult(False, rule_failures[0])
    if dead_ends:
        return ChainResult(False, max(dead_ends, key=lambda d: d[0])[1])
    return ChainResult(False, f"issuer not found for {describe(leaf)}")


def _paths(
    leaf: x509.Certificate,
    pool: list[x509.Certificate],
    store: Anchors,
    dead_ends: list[tuple[int, str]],
) -> Iterator[list[x509.Certificate]]:
    """Every signature-linked path from ``leaf`` that ends in an anchor (depth-first, bounded)."""
    found = steps = 0
    stack: list[list[x509.Certificate]] = [[leaf]]
    while stack and found < MAX_PATHS:
        steps += 1
        if steps > MAX_STEPS:
            dead_ends.append((MAX_CHAIN_DEPTH + 2, f"gave up after {MAX_STEPS} candidate paths for {describe(leaf)}"))
            return
        path = stack.pop()
        current = path[-1]
        if store.holds(current):
            found += 1
            yield path
            continue
        if len(path) > MAX_CHAIN_DEPTH:
            dead_ends.append((len(path), f"chain deeper than {MAX_CHAIN_DEPTH} at {describe(current)}"))
            continue
        seen = {der(c) for c in path}
        anchors = [a for a in store.issuers_of(current) if der(a) not in seen]
        others = [c for c in pool if c.subject == current.issuer and der(c) not in seen and not store.holds(c)]
        candidates = anchors + others
        good = [c for c in candidates if signed_by(current, c)]
        if not candidates:
            issuer = current.issuer.rfc4514_string() or "(empty)"
            dead_ends.append((len(path), f"issuer not found for {describe(current)} (issuer {issuer})"))
        elif not good:
            dead_ends.append((len(path), f"bad signature for {describe(current)}"))
        for candidate in reversed(good):  # anchors first once popped
            stack.append([*path, candidate])


def _path_problem(path: Sequence[x509.Certificate], now: dt.datetime) -> str | None:
    """The first RFC 5280 rule the path breaks, or None."""
    for cert in path:
        if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
            return (
                f"{describe(cert)} is outside its validity period "
                f"({cert.not_valid_before_utc:%Y-%m-%d} to {cert.not_valid_after_utc:%Y-%m-%d})"
            )
    last = len(path) - 1
    try:
        for cert in path[:last]:  # the anchor's own extensions are the trust source's business
            for ext in cert.extensions:
                if ext.critical and isinstance(ext.value, x509.UnrecognizedExtension):
                    oid = ext.oid.dotted_string
                    return f"{describe(cert)} has a critical extension this check does not know ({oid})"
        for j in range(1, len(path)):
            problem = _issuer_problem(path, j, is_anchor=j == last)
            if problem:
                return problem
    except ValueError as exc:  # duplicate or malformed extensions
        return f"a certificate on the path has unreadable extensions ({exc})"
    return None


def _issuer_problem(path: Sequence[x509.Certificate], j: int, is_anchor: bool) -> str | None:
    ca, child = path[j], path[j - 1]
    name = describe(ca)
    bc, ku = _basic_constraints(ca), _key_usage(ca)
    if bc is None:
        if not is_anchor:
            return f"{name} has no basicConstraints and is not a trust anchor: it cannot issue {describe(child)}"
        problem = anchor_problem(ca)
        if problem:
            return f"trust anchor {name} {problem}: it cannot issue {describe(child)}"
    elif not bc.ca:
        return f"{name} is not a CA (basicConstraints CA:FALSE): it cannot issue {describe(child)}"
    if ku is not None and not ku.key_cert_sign:
        return f"{name} has keyUsage without keyCertSign: it cannot issue {describe(child)}"
    if bc is not None and bc.path_length is not None:
        below = sum(1 for k in range(1, j) if not _self_issued(path[k]))
        if below > bc.path_length:
            return f"{name} has pathLenConstraint {bc.path_length} but {below} CA certificate(s) below it"
    constraints = _extension(ca, x509.NameConstraints)
    if isinstance(constraints, x509.NameConstraints):
        for k in range(j):
            if k > 0 and _self_issued(path[k]):
                continue
            problem = _names_problem(path[k], constraints, is_leaf=k == 0)
            if problem:
                return f"{describe(path[k])} {problem} (nameConstraints of {name})"
    return None


# --- name constraints (RFC 5280 4.2.1.10) for DNS, IP, e-mail and directory names -----------------


def _looks_like_host(value: str) -> bool:
    labels = value.lower().rstrip(".").split(".")
    return len(labels) > 1 and all(label and all(c.isalnum() or c in "-*" for c in label) for label in labels)


def _names_of(cert: x509.Certificate, is_leaf: bool) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = []
    san = _extension(cert, x509.SubjectAlternativeName)
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


def _names_problem(cert: x509.Certificate, nc: x509.NameConstraints, is_leaf: bool) -> str | None:
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


# --- policy rules -------------------------------------------------------------------------------------


def _finding(rule: FindingCode, lowered: Collection[str], file: str, text: str) -> Finding:
    reason = f"{text} (policy rule {rule})"
    return warning(file, reason, rule) if rule in lowered else error(file, reason, rule)


def key_findings(cert: x509.Certificate, file: str, lowered: Collection[str]) -> list[Finding]:
    """RSA below 2048 bits; EC on a curve other than P-256, P-384, P-521; DSA of any size.

    DSA at every size: FIPS 186-5 no longer approves it for making signatures, TLS 1.3 has no DSA, and
    EL9's DEFAULT crypto policy refuses it, so a DSA CA is one the node's other TLS stacks reject anyway;
    a size threshold (FIPS 186-4's 2048 bits) would bless a CA the platform does not accept."""
    key = cert.public_key()
    if isinstance(key, dsa.DSAPublicKey):
        text = f"{describe(cert)} has a {key.key_size}-bit DSA key; DSA is no longer accepted for signing"
        return [_finding(WEAK_DSA_KEY, lowered, file, text)]
    if isinstance(key, rsa.RSAPublicKey) and key.key_size < MIN_RSA_BITS:
        text = f"{describe(cert)} has a {key.key_size}-bit RSA key, below {MIN_RSA_BITS}"
        return [_finding(WEAK_RSA_KEY, lowered, file, text)]
    if isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name not in GOOD_CURVES:
        text = f"{describe(cert)} has an EC key on curve {key.curve.name}, not P-256, P-384 or P-521"
        return [_finding(WEAK_EC_CURVE, lowered, file, text)]
    return []


def signature_findings(cert: x509.Certificate, file: str, lowered: Collection[str]) -> list[Finding]:
    """A SHA-1 or MD5 signature (callers skip trust anchors and self-signed certificates)."""
    try:
        algorithm = cert.signature_hash_algorithm
    except (UnsupportedAlgorithm, ValueError):  # an algorithm cryptography does not know: not one we can name
        return []
    if algorithm is not None and algorithm.name in WEAK_HASHES:
        text = f"{describe(cert)} is signed with {algorithm.name.upper()}"
        return [_finding(WEAK_SIGNATURE, lowered, file, text)]
    return []


_SERVER_KU = ("digital_signature", "key_encipherment", "key_agreement")
_CLIENT_KU = ("digital_signature", "key_agreement")


def usage_findings(
    leaf: x509.Certificate, file: str, purposes: Collection[str], lowered: Collection[str]
) -> list[Finding]:
    """keyUsage / extendedKeyUsage of the leaf that forbid a TLS use the store is for."""
    out: list[Finding] = []
    try:
        ku = _key_usage(leaf)
        eku = _extension(leaf, x509.ExtendedKeyUsage)
    except ValueError:
        return [_finding(KEY_USAGE, lowered, file, f"{describe(leaf)} has unreadable extensions")]
    for purpose in sorted(purposes):
        needed = _SERVER_KU if purpose == SERVER else _CLIENT_KU
        if ku is not None and not any(getattr(ku, bit) for bit in needed):
            text = f"{describe(leaf)} has a keyUsage that forbids TLS {purpose} use (needs one of {', '.join(needed)})"
            out.append(_finding(KEY_USAGE, lowered, file, text))
            continue
        oid = ExtendedKeyUsageOID.SERVER_AUTH if purpose == SERVER else ExtendedKeyUsageOID.CLIENT_AUTH
        if isinstance(eku, x509.ExtendedKeyUsage) and not (
            oid in eku or ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE in eku
        ):
            text = f"{describe(leaf)} has an extendedKeyUsage without {purpose}Auth"
            out.append(_finding(KEY_USAGE, lowered, file, text))
    return out


def policy_findings(
    chain: Sequence[x509.Certificate],
    file: str,
    anchored: bool,
    purposes: Collection[str] = (),
    lowered: Collection[str] = (),
) -> list[Finding]:
    """Every policy rule over a chain (leaf first; ``anchored``: its last certificate is a trust anchor)."""
    out: list[Finding] = []
    for i, cert in enumerate(chain):
        out.extend(key_findings(cert, file, lowered))
        is_anchor = anchored and i == len(chain) - 1
        if not is_anchor and not is_self_signed(cert):
            out.extend(signature_findings(cert, file, lowered))
    if chain and purposes:
        out.extend(usage_findings(chain[0], file, purposes, lowered))
    return out
