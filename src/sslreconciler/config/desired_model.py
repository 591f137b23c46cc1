"""The desired state's model: what a node's TLS directory must hold, its seed defaults and its own rules
(the outputs it names, its sources, its consistency). Loading it from a file is config/desired.py."""

from __future__ import annotations

import posixpath
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator

from sslreconciler.config.acme_model import Acme
from sslreconciler.config.fields import FileName, Mode, PasswordSource, RelPath, Strict
from sslreconciler.config.pair_model import WEB_PAIR, KeyPair, seed_pairs

HOOK_LABEL_LIMIT = 4096  # characters of a hook's label (its name, or its command line): the hook record's bound

DEFAULT_PASSWORD = "changeit"  # sipXecs services hard-code it


class TrustStore(Strict):
    file: FileName = Field("authorities.jks", description="The JKS truststore.")
    sources: list[RelPath] = Field(
        default_factory=lambda: ["authorities"],
        description="Directories (or files) of trusted certificates; alias = file name without extension.",
    )
    host_pair: str | None = Field(
        "ssl", description="The pair whose certificate is added under this host's name; null for none."
    )
    hash_links: bool = Field(True, description="Keep OpenSSL <hash>.0 links in each source directory.")
    password: PasswordSource | None = Field(None, description="Overrides the store password.")
    pem_bundle: FileName | None = Field(
        "authorities.pem",
        description="A PEM CA bundle: every certificate the truststore accepted (not this host's), ordered by "
        "SHA-256 fingerprint; null for none.",
    )


class SystemTrust(Strict):
    """Where the system's trust store is, for the pairs whose ``verify_with`` names ``system``."""

    file: Path | None = Field(
        None,
        description="A PEM bundle of trusted roots. With file and dir both null, the store is found as OpenSSL "
        "finds it (ssl.get_default_verify_paths(): SSL_CERT_FILE / SSL_CERT_DIR, else the build's defaults).",
    )
    dir: Path | None = Field(None, description="A directory of OpenSSL <hash>.N certificate files.")


class Permissions(Strict):
    owner: str | None = Field(None, description="Owner of the outputs (applied when running as root).")
    group: str | None = Field(None, description="Group of the outputs (applied when running as root).")
    private_mode: Mode = Field(
        "0600", description="Mode of stores holding a private key: no group-write bit, no bit for others."
    )
    public_mode: Mode = Field("0644", description="Mode of the truststore.")
    key_source_readable_by_others: Literal["warn", "refuse"] = Field(
        "warn", description="What to do with a private key source that group or others can read."
    )


class Hook(Strict):
    """A command run after some artifacts were rewritten, e.g. to make a Java service reload them."""

    name: str | None = Field(None, description="Names the hook in logs and status. Default: the command.")
    after: list[RelPath] = Field(
        min_length=1, description="Artifact file names whose rewrite triggers it (a PEM output: pem_dir/name)."
    )
    command: list[str] = Field(min_length=1, description="argv list, run without a shell.")
    timeout: float | None = Field(None, gt=0, le=3600, description="Seconds before it is killed (default: setting).")

    @model_validator(mode="after")
    def _runnable(self) -> Hook:
        # Checked here, at load, so a bad hook is a config error and never reaches the hook worker.
        if not self.command[0]:
            raise ValueError("command: the program (first item) must not be empty")
        if any("\0" in arg for arg in self.command) or (self.name is not None and "\0" in self.name):
            raise ValueError("command: an argument holds a NUL byte, which no program can receive")
        return self

    @property
    def label(self) -> str:
        return self.name or " ".join(self.command)


PolicyLevel = Literal["error", "warning"]


class TrustPolicy(Strict):
    """The level of each policy finding (docs/trust.md); each may be lowered to a warning."""

    weak_rsa_key: PolicyLevel = Field("error", description="An RSA key below 2048 bits (code weak-rsa-key).")
    weak_ec_curve: PolicyLevel = Field(
        "error", description="An EC key on a curve other than P-256, P-384, P-521 (code weak-ec-curve)."
    )
    weak_dsa_key: PolicyLevel = Field("error", description="A DSA key, of any size (code weak-dsa-key).")
    weak_signature: PolicyLevel = Field(
        "error", description="A SHA-1 or MD5 signature on anything but a trust anchor (code weak-signature)."
    )
    key_usage: PolicyLevel = Field(
        "error", description="keyUsage/extendedKeyUsage forbidding the pair's TLS purposes (code key-usage)."
    )

    @property
    def lowered(self) -> frozenset[str]:
        """The finding codes of the rules lowered to a warning."""
        return frozenset(name.replace("_", "-") for name, level in self.model_dump().items() if level == "warning")


class DesiredState(Strict):
    """Every field is optional; the defaults are the sipXecs seed layout."""

    hostname: str | None = Field(
        None,
        description="This host's name: the truststore alias of its own certificate and the name "
        "checked against subjectAltNames. Default: the machine's FQDN.",
    )
    password: PasswordSource = Field(
        default_factory=lambda: PasswordSource(value=SecretStr(DEFAULT_PASSWORD)),
        description="Store password, also used as key password. Default: changeit.",
    )
    pkcs12_profile: Literal["modern", "legacy"] = Field(
        "modern",
        description="modern: PBES2/AES-256 + HMAC-SHA256; legacy: PBE-SHA1-3DES + HMAC-SHA1 (Java < 8u301/11.0.12).",
    )
    expiry_warning_days: int = Field(30, ge=0, le=3650, description="Warn when a certificate expires sooner.")
    pairs: list[KeyPair] = Field(default_factory=seed_pairs, description="The key pairs and their stores.")
    truststore: TrustStore = Field(default_factory=lambda: TrustStore())
    pem_dir: FileName | None = Field(
        "live",
        description="The directory (in the ssl dir) holding every pair's PEM outputs as one set: a symlink to "
        "its current version, swapped with one rename; null when no pair has pem.",
    )
    permissions: Permissions = Field(default_factory=lambda: Permissions())
    hooks: list[Hook] = Field(
        default_factory=list, description="Post-change hooks (the daemon and reconcile run them)."
    )
    allowed_symlink_dirs: list[Path] = Field(
        default_factory=list, description="Absolute directories outside the ssl dir a source symlink may point into."
    )
    acme: Acme | None = Field(
        None, description="Get and renew the web certificate over ACME (`sslreconciler acme renew`); null for none."
    )
    policy: TrustPolicy = Field(
        default_factory=lambda: TrustPolicy(), description="Errors or warnings for the policy rules (docs/trust.md)."
    )
    system_trust: SystemTrust = Field(
        default_factory=lambda: SystemTrust(),
        description='The system trust store for pairs with "system" in verify_with (docs/trust.md).',
    )

    @model_validator(mode="after")
    def _consistent(self) -> DesiredState:
        names = [p.name for p in self.pairs]
        if len(set(names)) != len(names):
            raise ValueError("pair names must be unique")
        outputs = self.output_files()
        if len(set(outputs)) != len(outputs):
            twice = sorted({o for o in outputs if outputs.count(o) > 1})
            raise ValueError(f"output file names must be unique: {', '.join(twice)} named twice")
        _refuse_outputs_over_sources(self, outputs)
        private = int(self.permissions.private_mode, 8)
        if private & 0o027:
            raise ValueError(
                f"permissions.private_mode {self.permissions.private_mode} would let others read or group members"
                " change a private key; use 0600 or 0640"
            )
        for pair in self.pairs:
            if pair.fallback is not None and (pair.fallback not in names or pair.fallback == pair.name):
                raise ValueError(f"pair {pair.name!r}: fallback must name another pair")
        if self.truststore.host_pair is not None and self.truststore.host_pair not in names:
            raise ValueError("truststore.host_pair must name a pair")
        host = self.truststore.host_pair
        if host is not None and "system" in self.pair(host).verifies_with:  # the cluster's mutual TLS identity
            raise ValueError(f'pair {host!r} (truststore.host_pair): verify_with must not name "system"')
        for d in (self.system_trust.file, self.system_trust.dir):
            if d is not None and not d.is_absolute():
                raise ValueError("system_trust: file and dir must be absolute paths")
        if self.acme is not None and WEB_PAIR not in names:  # ACME renews the pair the web commands work on
            raise ValueError(
                f"acme renews the web pair, the pair named {WEB_PAIR!r}; no pair has that name "
                f"(pairs: {', '.join(names) or 'none'})"
            )
        _check_hook_labels(self.hooks)
        for hook in self.hooks:
            unknown = sorted(set(hook.after) - set(outputs))
            if unknown:
                raise ValueError(f"hook {hook.label!r}: after names no artifact: {', '.join(unknown)}")
        if self.pem_dir is None and any(p.pem for p in self.pairs):
            raise ValueError("pairs name pem outputs but pem_dir is null: name the directory they go in")
        if self.pem_dir is not None and self.pem_dir.startswith("."):
            raise ValueError(f"pem_dir {self.pem_dir!r}: a name starting with a dot is hidden and reserved")
        for d in self.allowed_symlink_dirs:
            if not d.is_absolute():
                raise ValueError("allowed_symlink_dirs must be absolute paths")
        return self

    def uses_system_trust(self) -> bool:
        """Does any pair verify against the system's trust store (so observe reads it)?"""
        return any("system" in p.verifies_with for p in self.pairs)

    def pair(self, name: str) -> KeyPair:
        return next(p for p in self.pairs if p.name == name)

    def output_files(self) -> list[str]:
        """The files this state builds in the ssl dir: each pair's stores in order, the truststore, the PEM
        CA bundle, then the PEM outputs (``pem_dir/name``)."""
        stores = [o for p in self.pairs for o in (p.keystore, p.pkcs12) if o] + [self.truststore.file]
        bundle = [self.truststore.pem_bundle] if self.truststore.pem_bundle else []
        return stores + bundle + self.pem_files()

    def pem_files(self) -> list[str]:
        """The PEM outputs, ``pem_dir/name``, pair by pair (key, fullchain, cert, chain): one set on disk."""
        if self.pem_dir is None:
            return []
        return [f"{self.pem_dir}/{name}" for p in self.pairs if p.pem for _, name in p.pem.named()]

    def source_files(self) -> list[str]:
        """Every pair's key and certificate source (relative to the ssl dir), each once, in order."""
        return list(dict.fromkeys(s for p in self.pairs for s in (p.key, p.cert)))

    def trust_sources(self) -> list[str]:
        """The directories (or files) of trusted certificates, relative to the ssl dir, each spelled one
        way (``authorities/`` and ``./authorities`` are ``authorities``), each once, in order."""
        return list(dict.fromkeys(posixpath.normpath(s) for s in self.truststore.sources))


def _first_part(rel: str) -> str:
    parts = [p for p in Path(rel).parts if p != "."]
    return parts[0] if parts else rel


def _refuse_outputs_over_sources(desired: DesiredState, outputs: list[str]) -> None:
    """An output written over a source (``ssl.key``, ``authorities``) would destroy or expose it."""
    sources = {_first_part(s) for s in desired.source_files() + desired.trust_sources()}
    if desired.pem_dir is not None and desired.pem_dir in outputs:
        raise ValueError(f"pem_dir {desired.pem_dir!r} is also named as an output file")
    for output in outputs:
        if _first_part(output) in sources:
            raise ValueError(f"output {output!r} is named like a source; it would be overwritten")
        if output.startswith(".sslreconciler-"):
            raise ValueError(f"output {output!r}: names starting .sslreconciler- are this program's temp files")


def _check_hook_labels(hooks: list[Hook]) -> None:
    """A hook's label keys /health ``hooks``, the metrics and the hook record: unique, and bounded."""
    first: dict[str, int] = {}
    for i, hook in enumerate(hooks):
        label = hook.label
        if len(label) > HOOK_LABEL_LIMIT:
            raise ValueError(
                f"hooks[{i}]: its label ({'name' if hook.name else 'the command line, as it has no name'}) is "
                f"{len(label)} characters, over the limit of {HOOK_LABEL_LIMIT}; give it a shorter name"
            )
        if label in first:
            raise ValueError(
                f"hooks[{first[label]}] and hooks[{i}] have the same label {label!r} (their name, or their "
                "command line when unnamed): labels key status, metrics and hook records and must be unique; "
                "give each a distinct name"
            )
        first[label] = i
