"""A key pair of the desired state: its sources, its stores, its PEM outputs, how its chain is judged;
and the seed's two pairs. The rest of the model is config/desired_model.py."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from sslreconciler.config.fields import FileName, JksAlias, PasswordSource, RelPath, Strict
from sslreconciler.model.jks_alias import alias_unfit, java_lower

WEB_PAIR = "ssl-web"  # the web pair's name: web csr|install|rollback, acme and a bundle's ssl-web.* work on it


class PemOutputs(Strict):
    """A pair's PEM files, written inside ``pem_dir`` as one set (issue 24); each a plain file name there."""

    key: FileName = Field(description="The private key, PEM PKCS#8 (private_mode).")
    fullchain: FileName = Field(description="The leaf, then the intermediates in order (public_mode).")
    cert: FileName | None = Field(None, description="The leaf alone; null for none.")
    chain: FileName | None = Field(None, description="The intermediates alone (may be empty); null for none.")

    def named(self) -> list[tuple[str, str]]:
        """(role, file name) of each PEM file named, in a fixed order."""
        roles = (("key", self.key), ("fullchain", self.fullchain), ("cert", self.cert), ("chain", self.chain))
        return [(role, name) for role, name in roles if name]


class KeyPair(Strict):
    """A key + certificate and the stores built from them."""

    name: str = Field(description="Names the pair in reports and in `fallback`.")
    key: RelPath = Field(description="The private key source (PEM PKCS#1/PKCS#8/SEC1, or DER).")
    cert: RelPath = Field(description="The certificate source: leaf, optionally followed by its chain.")
    alias: JksAlias | None = Field(
        None,
        description="Key entry alias in the stores, lower-cased as Java's JKS does; characters of the Basic "
        "Multilingual Plane only. Default: the pair's name.",
    )
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
    pem: PemOutputs | None = Field(
        None,
        description="PEM outputs (inside pem_dir), written only from sources that passed every check; null for none.",
    )
    purposes: list[Literal["server", "client"]] | None = Field(
        None,
        description="TLS uses the certificate's keyUsage/extendedKeyUsage must allow (policy rule key-usage). "
        'Default: ["server", "client"] for the pair named ssl, ["server"] for any other.',
    )
    verify_with: list[Literal["trust-sources", "system"]] | None = Field(
        None,
        min_length=1,
        description="What this pair's chain may verify against: trust-sources (truststore.sources) and/or system "
        "(the system's trust store, see system_trust). System roots verify this pair only: they never enter the "
        'truststore, the hash links or the trust fingerprint. Default: ["trust-sources", "system"] for the pair '
        'named ssl-web, ["trust-sources"] for any other. Never "system" for truststore.host_pair.',
    )

    @model_validator(mode="after")
    def _alias_fits(self) -> KeyPair:
        unfit = alias_unfit(self.name) if self.alias is None else ""
        if unfit:  # the name is the alias: said here, as the alias field's own check says it
            raise ValueError(f"name: the key entry alias (the pair's name, as it has no alias) {unfit}; give an alias")
        return self

    @property
    def entry_alias(self) -> str:
        return java_lower(self.alias or self.name)

    @property
    def tls_purposes(self) -> frozenset[str]:
        if self.purposes is not None:
            return frozenset(self.purposes)
        return frozenset({"server", "client"} if self.name == "ssl" else {"server"})

    @property
    def verifies_with(self) -> frozenset[str]:
        if self.verify_with is not None:
            return frozenset(self.verify_with)
        return frozenset({"trust-sources", "system"} if self.name == WEB_PAIR else {"trust-sources"})


def _seed_pem(stem: str) -> PemOutputs:
    """The seed's PEM names in ``live/``: the source names, so a consumer swaps ``ssl-web.key`` for
    ``live/ssl-web.key``; the leaf alone is ``.crt``, as the sources are."""
    return PemOutputs(
        key=f"{stem}.key", fullchain=f"{stem}.fullchain.pem", cert=f"{stem}.crt", chain=f"{stem}.chain.pem"
    )


def seed_pairs() -> list[KeyPair]:
    return [
        KeyPair(
            name="ssl", key="ssl.key", cert="ssl.crt", keystore="ssl.keystore", pkcs12="ssl.p12", pem=_seed_pem("ssl")
        ),
        KeyPair(
            name="ssl-web",
            key="ssl-web.key",
            cert="ssl-web.crt",
            keystore="ssl-web.keystore",
            pkcs12="ssl-web.p12",
            verify="if-available",
            fallback="ssl",
            pem=_seed_pem("ssl-web"),
        ),
    ]
