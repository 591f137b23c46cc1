"""The desired state's `acme` section: the web certificate from an ACME CA (RFC 8555)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from sslreconciler.config.fields import PasswordSource, Strict


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
