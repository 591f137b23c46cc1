"""Findings: what a check says about one file, an error or a warning, never a secret."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from sslreconciler.model.errors import SslReconcilerError
from sslreconciler.model.text import sentence


class FindingCode(enum.StrEnum):
    """Every finding's machine-readable kind: monitoring and scripts match on these values (a contract)."""

    INVALID = "invalid"  # a source is wrong in a way no more specific code names
    WARNING = "warning"  # a warning no more specific code names
    MISSING = "missing"  # a file the desired state names is not there
    EMPTY = "empty"  # a source file is empty
    GARBAGE = "garbage"  # a source holds no PEM or DER this program can read
    TOO_LARGE = "too-large"  # a file is over its size limit
    UNREADABLE = "unreadable"  # a file or directory cannot be read or listed
    SYMLINK = "symlink"  # a file that must not be a symlink is one
    SYMLINK_ESCAPE = "symlink-escape"  # a symlink leads outside the ssl dir and the allowed places
    DANGLING_SYMLINK = "dangling-symlink"  # a symlink leads nowhere
    NOT_A_FILE = "not-a-file"  # a regular file is expected (a FIFO, device or directory is in its place)
    NOT_A_LINK = "not-a-link"  # a file sits where a hash link belongs
    BAD_NAME = "bad-name"  # a file name is not UTF-8
    NO_KEY = "no-key"  # a key file holds no private key
    MANY_KEYS = "many-keys"  # a key file holds more than one private key
    ENCRYPTED_KEY = "encrypted-key"  # a key is encrypted (sources must be unencrypted)
    KEY_TYPE = "key-type"  # a key of a type no store can carry
    KEY_MODE = "key-mode"  # a private key source is readable by group or others
    NO_CERTIFICATE = "no-certificate"  # a certificate file holds no certificate
    KEY_MISMATCH = "key-mismatch"  # a key and its certificate do not match
    EXTRA_CERTIFICATE = "extra-certificate"  # a certificate file holds certificates outside the chain
    BAD_CHAIN = "bad-chain"  # a chain's certificates do not link or a signature fails
    EXPIRED = "expired"  # a certificate is past notAfter
    NOT_YET_VALID = "not-yet-valid"  # a certificate is before notBefore
    EXPIRING = "expiring"  # a certificate expires within expiry_warning_days
    HOSTNAME = "hostname"  # a certificate does not name this host
    UNTRUSTED = "untrusted"  # a chain does not verify against the trust sources
    UNVERIFIED = "unverified"  # a chain's issuer is not in the trust sources (allowed by verify=auto)
    NOT_A_CA = "not-a-ca"  # a trust file's CA certificate cannot issue
    PARTIAL_CHAIN = "partial-chain"  # a CA with no issuer in the trust sources: OpenSSL -CApath stops at it
    DUPLICATE_ALIAS = "duplicate-alias"  # two trust files want one alias
    ALIAS_SUFFIX = "alias-suffix"  # a file's n-th certificate goes in under a changed alias
    DUPLICATE_CERTIFICATE = "duplicate-certificate"  # one certificate is in two trust files
    NO_HASH_LINK = "no-hash-link"  # a trust file gets no OpenSSL hash link (DER, or several certificates)
    WEAK_RSA_KEY = "weak-rsa-key"  # policy: RSA below 2048 bits
    WEAK_EC_CURVE = "weak-ec-curve"  # policy: EC curve other than P-256/384/521
    WEAK_DSA_KEY = "weak-dsa-key"  # policy: a DSA key, of any size
    WEAK_SIGNATURE = "weak-signature"  # policy: SHA-1 or MD5 signature below the anchor
    KEY_USAGE = "key-usage"  # policy: key usage or extended key usage forbids the pair's purposes
    PASSWORD = "password"  # a store password cannot be had
    NO_STORE = "no-store"  # a pair builds no store
    DESIRED_STATE = "desired-state"  # the desired-state file is invalid or gone (the last valid one is kept)
    UNKNOWN_OWNER = "unknown-owner"  # the desired state names a user or group this system does not have
    HOOK_PROGRAM = "hook-program"  # a configured hook's program is not there or not executable
    WRITE_FAILED = "write-failed"  # an output could not be written
    ATTRIBUTES = "attributes"  # an output's mode or owner could not be fixed
    LINKS = "links"  # a trust directory's hash links cannot be kept
    LINK_FAILED = "link-failed"  # a hash link cannot be made or removed
    LOCKED = "locked"  # another writer held the ssl dir past the wait
    INTERNAL = "internal"  # the reconcile broke off unexpectedly
    ACME = "acme"  # the last ACME renewal failed
    ACME_ACCOUNT_KEY = "acme-account-key"  # the ACME account key is unusable
    HOOK_RECORD = "hook-record"  # a one-shot's hook record in the state dir is refused (not trusted, too big, bad)


class Level(enum.StrEnum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, slots=True)
class Finding:
    level: Level
    file: str
    reason: str
    # A short machine-readable kind (``key-mismatch``, ``expired`` ...) for monitoring and tests.
    code: FindingCode = FindingCode.INVALID

    def __str__(self) -> str:
        return f"{self.level.value}: {self.message}"

    @property
    def message(self) -> str:
        """``file: reason.``: what every text reader shows, the reason ending in a sentence."""
        return f"{self.file}: {sentence(self.reason)}"

    def to_dict(self) -> dict[str, str]:
        return {"level": self.level.value, "file": self.file, "reason": self.reason, "code": self.code.value}


def error(file: str, reason: str, code: FindingCode = FindingCode.INVALID) -> Finding:
    return Finding(Level.ERROR, file, reason, code)


def warning(file: str, reason: str, code: FindingCode = FindingCode.WARNING) -> Finding:
    return Finding(Level.WARNING, file, reason, code)


class SourceError(SslReconcilerError):
    """A source could not be used; carries the finding that says why."""

    def __init__(self, finding: Finding) -> None:
        super().__init__(str(finding))
        self.finding = finding
