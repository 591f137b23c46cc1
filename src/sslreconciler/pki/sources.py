"""Parse keys and certificates from the bytes of a source file, as sipXecs admins write them.

PEM may have text before, between and after its blocks; keys may be PKCS#1 (``RSA PRIVATE KEY``),
SEC1 (``EC PRIVATE KEY``) or PKCS#8; DER is accepted too. Every failure is a SourceError naming the
file and the reason, never a traceback. No key material ever goes into a message.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from sslreconciler.model.findings import FindingCode, SourceError, error

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey

_BEGIN, _END, _DASHES = b"-----BEGIN ", b"-----END ", b"-----"
_LABEL = re.compile(rb"[A-Z0-9 ]{1,64}")
_CERT_LABELS = {b"CERTIFICATE", b"X509 CERTIFICATE"}
_KEY_LABELS = {b"PRIVATE KEY", b"RSA PRIVATE KEY", b"EC PRIVATE KEY"}


@dataclass(frozen=True, slots=True)
class PemBlock:
    label: bytes
    text: bytes  # the whole block, BEGIN to END line


def _label_at(data: bytes, start: int) -> tuple[bytes, int] | None:
    """The label of a ``-----BEGIN LABEL-----`` line whose label starts at ``start``, and where it ends."""
    close = data.find(_DASHES, start, start + 70)  # labels are short: never scan further
    if close < 0 or not _LABEL.fullmatch(data, start, close):
        return None
    return data[start:close], close + len(_DASHES)


def pem_blocks(data: bytes) -> list[PemBlock]:
    """Every complete BEGIN ... END block, in order, in one pass: O(n) whatever the input.

    Each END line closes the nearest BEGIN line before it with the same label; a BEGIN with no END
    before the next BEGIN is skipped. No backtracking: a file of a million BEGIN lines costs one scan.
    """
    blocks: list[PemBlock] = []
    pos = 0
    next_end = -2  # where the next END marker is; -2: not looked for yet
    while True:
        begin = data.find(_BEGIN, pos)
        if begin < 0:
            return blocks
        header = _label_at(data, begin + len(_BEGIN))
        if header is None:
            pos = begin + 1
            continue
        label, body = header
        if body < len(data) and data[body : body + 1] == b"\r":
            body += 1
        if data[body : body + 1] != b"\n":
            pos = body
            continue
        if next_end != -1 and next_end < body:
            next_end = data.find(_END, body)
        if next_end < 0:
            return blocks  # no END anywhere after this: nothing more can complete
        following = data.find(_BEGIN, body, next_end)
        if following >= 0:
            pos = following  # this BEGIN has no END of its own; the later one may
            continue
        closing = _END + label + _DASHES
        if data.startswith(closing, next_end):
            end = next_end + len(closing)
            blocks.append(PemBlock(label, data[begin:end]))
            pos = end
        else:
            pos = next_end + len(_END)  # an END of another label: this block is broken


def _looks_like_pem(data: bytes) -> bool:
    return b"-----BEGIN " in data


def _block_der(block: PemBlock, display: str) -> bytes:
    lines = block.text.splitlines()[1:-1]
    body = b"".join(line.strip() for line in lines if b":" not in line)
    try:
        return base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        raise SourceError(error(display, "PEM block is not valid base64", FindingCode.GARBAGE)) from None


def parse_certificates(data: bytes, display: str) -> list[x509.Certificate]:
    """Every certificate in a PEM (one or more blocks) or DER file, in file order."""
    if not _looks_like_pem(data):
        try:
            return [x509.load_der_x509_certificate(data)]
        except ValueError:
            raise SourceError(error(display, "is neither PEM nor a DER certificate", FindingCode.GARBAGE)) from None
    blocks = pem_blocks(data)
    certs: list[x509.Certificate] = []
    for block in blocks:
        if block.label in _CERT_LABELS:
            try:
                certs.append(x509.load_der_x509_certificate(_block_der(block, display)))
            except ValueError:
                raise SourceError(
                    error(display, f"certificate #{len(certs) + 1} cannot be parsed", FindingCode.GARBAGE)
                ) from None
        elif block.label == b"TRUSTED CERTIFICATE":
            raise SourceError(
                error(display, "holds an OpenSSL TRUSTED CERTIFICATE; give a plain CERTIFICATE", FindingCode.GARBAGE)
            )
    if not certs:
        if not blocks:
            raise SourceError(
                error(display, "has a PEM header but no complete block (truncated?)", FindingCode.GARBAGE)
            )
        raise SourceError(error(display, "holds no certificate", FindingCode.NO_CERTIFICATE))
    return certs


def _load_key_block(block: PemBlock, display: str) -> object:
    if block.label == b"ENCRYPTED PRIVATE KEY" or b"Proc-Type: 4,ENCRYPTED" in block.text:
        raise SourceError(error(display, _encrypted_reason(display), FindingCode.ENCRYPTED_KEY))
    try:
        return serialization.load_pem_private_key(block.text, password=None, unsafe_skip_rsa_key_validation=True)
    except TypeError:
        raise SourceError(error(display, _encrypted_reason(display), FindingCode.ENCRYPTED_KEY)) from None
    except (ValueError, UnsupportedAlgorithm):
        raise SourceError(
            error(display, "private key cannot be parsed (corrupt or truncated)", FindingCode.GARBAGE)
        ) from None


def parse_private_key(data: bytes, display: str) -> PrivateKey:
    """The one private key of a PEM or DER key file."""
    key: object
    if not _looks_like_pem(data):
        try:
            key = serialization.load_der_private_key(data, password=None, unsafe_skip_rsa_key_validation=True)
        except TypeError:
            raise SourceError(error(display, _encrypted_reason(display), FindingCode.ENCRYPTED_KEY)) from None
        except (ValueError, UnsupportedAlgorithm):
            raise SourceError(error(display, "is neither PEM nor a DER private key", FindingCode.GARBAGE)) from None
    else:
        blocks = [b for b in pem_blocks(data) if b.label in _KEY_LABELS or b.label == b"ENCRYPTED PRIVATE KEY"]
        if not blocks:
            if not pem_blocks(data):
                raise SourceError(
                    error(display, "has a PEM header but no complete block (truncated?)", FindingCode.GARBAGE)
                )
            raise SourceError(error(display, "holds no private key", FindingCode.NO_KEY))
        if len(blocks) > 1:
            raise SourceError(error(display, f"holds {len(blocks)} private keys; expected one", FindingCode.MANY_KEYS))
        key = _load_key_block(blocks[0], display)
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise SourceError(
            error(
                display, f"holds a {type(key).__name__} key; only RSA and EC keys are supported", FindingCode.KEY_TYPE
            )
        )
    if not _signs_consistently(key):
        raise SourceError(
            error(display, "private key is inconsistent (corrupt): its signatures do not verify", FindingCode.GARBAGE)
        )
    return key


def _signs_consistently(key: PrivateKey) -> bool:
    """A signature round trip: proves the private half matches the public half in ~1 ms.

    OpenSSL's full RSA key check (primality of p and q) costs ~40 ms per load; the round trip catches
    what matters here, a key whose private operation does not match its public key.
    """
    message = b"sslreconciler key check"
    try:
        if isinstance(key, rsa.RSAPrivateKey):
            signature = key.sign(message, padding.PKCS1v15(), hashes.SHA256())
            key.public_key().verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
        else:
            signature = key.sign(message, ec.ECDSA(hashes.SHA256()))
            key.public_key().verify(signature, message, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, ValueError):
        return False
    return True


def _encrypted_reason(display: str) -> str:
    """What to do about a passphrase-protected key: the stores need it in the clear (0600, like the others)."""
    return (
        "holds an encrypted private key (a passphrase protects it); decrypt it in place: "
        f"`openssl pkey -in {display} -out {display}` (asks for the passphrase; keep it 0600)"
    )
