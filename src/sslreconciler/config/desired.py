"""The desired state: what a node's TLS directory must hold. Missing file = the sipXecs seed layout."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    model_validator,
)

from sslreconciler.config.credentials import anchor_relative_files, credential_path
from sslreconciler.config.wording import config_error_from_validation
from sslreconciler.model.errors import ConfigError
from sslreconciler.model.findings import FindingCode, SourceError
from sslreconciler.rootread import Untrusted, read_for_root

DEFAULT_PASSWORD = "changeit"  # sipXecs services hard-code it
MAX_DESIRED_BYTES = 1024 * 1024
MAX_PASSWORD_FILE_BYTES = 64 * 1024


def _plain_name(value: str) -> str:
    if not value or "/" in value or value in {".", ".."} or "\0" in value:
        raise ValueError("must be a plain file name inside the ssl directory")
    return value


def _relative_path(value: str) -> str:
    parts = Path(value).parts
    if not parts or Path(value).is_absolute() or ".." in parts:
        raise ValueError("must be a relative path inside the ssl directory")
    return value


def _mode(value: str) -> str:
    try:
        mode = int(value, 8)
    except ValueError:
        raise ValueError('must be an octal mode such as "0600"') from None
    if not 0 <= mode <= 0o777:
        raise ValueError("must be between 0000 and 0777")
    return value


FileName = Annotated[str, AfterValidator(_plain_name)]
RelPath = Annotated[str, AfterValidator(_relative_path)]
Mode = Annotated[str, AfterValidator(_mode)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PasswordSource(Strict):
    """Exactly one of value, file, credential. Default: the literal ``changeit``."""

    value: SecretStr | None = Field(None, description="The password itself.")
    file: Path | None = Field(
        None, description="A file whose first line is the password; a relative path is relative to this file."
    )
    credential: str | None = Field(
        None,
        description="A systemd credential name, read from $CREDENTIALS_DIRECTORY/<name>; by hand (no "
        "$CREDENTIALS_DIRECTORY) from <credentials_dir>/<name>, default /etc/sslreconciler/<name>.",
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> PasswordSource:
        given = [n for n in ("value", "file", "credential") if getattr(self, n) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of value, file, credential")
        if self.credential is not None:
            _plain_name(self.credential)
        return self

    def describe(self) -> str:
        if self.file is not None:
            return f"file {self.file}"
        if self.credential is not None:
            return f"credential {self.credential}"
        return "literal value"


class KeyPair(Strict):
    """A key + certificate and the stores built from them."""

    name: str = Field(description="Names the pair in reports and in `fallback`.")
    key: RelPath = Field(description="The private key source (PEM PKCS#1/PKCS#8/SEC1, or DER).")
    cert: RelPath = Field(description="The certificate source: leaf, optionally followed by its chain.")
    alias: str | None = Field(None, description="Key entry alias in the stores. Default: the pair's name.")
    keystore: FileName | None = Field(None, description="JKS output; null for none.")
    pkcs12: FileName | None = Field(None, description="PKCS#12 output; null for none.")
    verify: Literal["require", "if-available"] = Field(
        "require",
        description="require: must chain to a CA in the trust sources. if-available: verified when the "
        "issuer is at hand, otherwise built and reported unverified (a warning).",
    )
    fallback: str | None = Field(
        None, description="When both key and cert are absent, build from this other pair's sources."
    )
    password: PasswordSource | None = Field(None, description="Overrides the store password for this pair.")
    purposes: list[Literal["server", "client"]] | None = Field(
        None,
        description="TLS uses the certificate's keyUsage/extendedKeyUsage must allow (policy rule key-usage). "
        'Default: ["server", "client"] for the pair named ssl, ["server"] for any other.',
    )

    @property
    def entry_alias(self) -> str:
        return (self.alias or self.name).lower()

    @property
    def tls_purposes(self) -> frozenset[str]:
        if self.purposes is not None:
            return frozenset(self.purposes)
        return frozenset({"server", "client"} if self.name == "ssl" else {"server"})


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
    after: list[FileName] = Field(min_length=1, description="Artifact file names whose rewrite triggers it.")
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


class AcmeChallenge(Strict):
    """HTTP-01: exactly one of webroot (a web server serves it) and listen (a server of our own)."""

    webroot: Path | None = Field(
        None,
        description="Absolute directory the node's web server serves as /.well-known/acme-challenge/ "
        "from (the token files go in DIR/.well-known/acme-challenge/).",
    )
    listen: str | None = Field(
        None, description='ADDR:PORT for a standalone HTTP-01 server run for the order, e.g. "0.0.0.0:80".'
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> AcmeChallenge:
        if (self.webroot is None) == (self.listen is None):
            raise ValueError("give exactly one of webroot, listen")
        if self.webroot is not None and not self.webroot.is_absolute():
            raise ValueError("webroot must be an absolute path")
        if self.listen is not None:
            host, sep, port = self.listen.rpartition(":")
            if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError('listen must be "ADDR:PORT", e.g. "0.0.0.0:80"')
        return self


class AcmeEab(Strict):
    """External account binding: a key id and its HMAC key, for CAs that require it."""

    kid: str = Field(min_length=1, description="The key id the CA gave.")
    hmac_key: PasswordSource = Field(
        description="The base64url HMAC key: exactly one of value, file, credential (as for password)."
    )


class Acme(Strict):
    """The web certificate from an ACME CA (RFC 8555), installed as ssl-web.key + ssl-web.crt."""

    directory: str = Field(pattern=r"^https://", description="The ACME server's directory URL (https only).")
    contact: str | None = Field(None, description="Contact e-mail for the account; null for none.")
    names: list[str] | None = Field(
        None, min_length=1, description="DNS names the certificate covers. Default: [hostname]."
    )
    challenge: AcmeChallenge = Field(description='{"webroot": DIR} or {"listen": "ADDR:PORT"} (HTTP-01).')
    ca_bundle: Path | None = Field(
        None, description="PEM file of CAs trusted for the ACME server's HTTPS (a private ACME CA). Default: system."
    )
    key_type: Literal["ec-p256", "rsa2048", "rsa3072"] = Field("ec-p256", description="The certificate's key.")
    renew_before_days: float | None = Field(
        None,
        gt=0,
        le=3650,
        description="Renew this many days before expiry. null: when a third of the lifetime is left, or "
        "within the server's renewal window (ARI) when it offers one.",
    )
    eab: AcmeEab | None = Field(None, description="External account binding; null for none.")
    drop_in: Literal["keep", "replace"] = Field(
        "keep",
        description="A certificate an admin dropped in: keep (it wins until its renewal point) or replace "
        "(ACME replaces it at the next run).",
    )
    timeout_s: int = Field(
        600,
        ge=10,
        le=720,
        description="The longest one `acme renew` talks to the ACME server (the order and the standalone "
        "listener included); then it gives up and records a timeout. With the writer lock's 120 s wait, "
        "under the timer's 15 minutes.",
    )


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


def _seed_pairs() -> list[KeyPair]:
    return [
        KeyPair(name="ssl", key="ssl.key", cert="ssl.crt", keystore="ssl.keystore", pkcs12="ssl.p12"),
        KeyPair(
            name="ssl-web",
            key="ssl-web.key",
            cert="ssl-web.crt",
            keystore="ssl-web.keystore",
            pkcs12="ssl-web.p12",
            verify="if-available",
            fallback="ssl",
        ),
    ]


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
    pairs: list[KeyPair] = Field(default_factory=_seed_pairs, description="The key pairs and their stores.")
    truststore: TrustStore = Field(default_factory=lambda: TrustStore())
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

    @model_validator(mode="after")
    def _consistent(self) -> DesiredState:
        names = [p.name for p in self.pairs]
        if len(set(names)) != len(names):
            raise ValueError("pair names must be unique")
        outputs = [o for p in self.pairs for o in (p.keystore, p.pkcs12) if o] + [self.truststore.file]
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
        for hook in self.hooks:
            unknown = sorted(set(hook.after) - set(outputs))
            if unknown:
                raise ValueError(f"hook {hook.label!r}: after names no artifact: {', '.join(unknown)}")
        for d in self.allowed_symlink_dirs:
            if not d.is_absolute():
                raise ValueError("allowed_symlink_dirs must be absolute paths")
        return self

    def pair(self, name: str) -> KeyPair:
        return next(p for p in self.pairs if p.name == name)


def _first_part(rel: str) -> str:
    parts = [p for p in Path(rel).parts if p != "."]
    return parts[0] if parts else rel


def _refuse_outputs_over_sources(desired: DesiredState, outputs: list[str]) -> None:
    """An output written over a source (``ssl.key``, ``authorities``) would destroy or expose it."""
    sources = {_first_part(p.key) for p in desired.pairs} | {_first_part(p.cert) for p in desired.pairs}
    sources |= {_first_part(s) for s in desired.truststore.sources}
    for output in outputs:
        if output in sources:
            raise ValueError(f"output {output!r} is named like a source; it would be overwritten")
        if output.startswith(".sslreconciler-"):
            raise ValueError(f"output {output!r}: names starting .sslreconciler- are this program's temp files")


def load_desired_state(path: Path | None) -> DesiredState:
    """The desired state from ``path``; the seed defaults when there is no file."""
    if path is None:
        return DesiredState()
    try:  # a regular file, bounded, never blocking: a FIFO or a device here must not hang anyone
        raw = read_for_root(path, str(path), MAX_DESIRED_BYTES)  # as root: its hooks run as root
    except Untrusted as exc:
        raise ConfigError(path, exc.advice()) from None
    except SourceError as exc:
        if exc.finding.code == FindingCode.MISSING:
            return DesiredState()
        if "directory" in exc.finding.reason:
            raise ConfigError(path, "is a directory, not a JSON file") from None
        raise ConfigError(path, exc.finding.reason) from None
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(path, f"invalid JSON: {exc}") from None
    if isinstance(data, dict):
        data = {k: v for k, v in data.items() if not k.startswith("//")}  # comment keys
    data = anchor_relative_files(data, path.absolute().parent)
    try:
        return DesiredState.model_validate(data)
    except ValidationError as exc:
        raise config_error_from_validation(path, exc) from None


def resolve_password(source: PasswordSource, credentials_dir: str | None = None) -> str:
    """The password the source names; ValueError (secret-free) when it cannot be had."""
    if source.value is not None:
        return source.value.get_secret_value()
    where = ""
    if source.credential is not None:
        if credentials_dir is not None:
            path = Path(credentials_dir) / source.credential
        else:
            path, origin = credential_path(source.credential)
            where = f" (credential {source.credential!r}, from {origin})"
    else:
        assert source.file is not None
        path = source.file
    try:  # as root: never through a file or link another user could change (a link to /etc/shadow)
        text = read_for_root(path, str(path), MAX_PASSWORD_FILE_BYTES).decode("utf-8")
    except Untrusted as exc:
        raise ValueError(
            f"password file {path}: {exc.problem}; root reads no password another user could change{where}"
        ) from None
    except SourceError as exc:
        raise ValueError(f"password file {path} {exc.finding.reason}{where}") from None
    except UnicodeDecodeError:
        raise ValueError(f"password file {path} is not UTF-8 text") from None
    password = text.splitlines()[0] if text else ""
    if not password:
        raise ValueError(f"password file {path} is empty")
    return password


def desired_state_schema() -> str:
    return json.dumps(DesiredState.model_json_schema(), indent=2)
