"""Talk to the ACME server with certbot's ``acme`` library: account, order, HTTP-01, certificate.

Execute only: what to do was decided before. Every failure becomes an AcmeFailure carrying the ACME
server's own words (problem document type and detail) or what kept us from reaching it.
"""

from __future__ import annotations

import binascii
import contextlib
import datetime as dt
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import josepy as jose
import requests
from acme import challenges, crypto_util, errors, messages
from acme.client import ClientNetwork, ClientV2
from cryptography.hazmat.primitives.asymmetric import ec
from josepy.jwa import ES256
from josepy.jwk import JWKEC

from sslreconciler import __version__
from sslreconciler.cluster.acme import transport
from sslreconciler.cluster.acme.challenge import Responder
from sslreconciler.cluster.acme.transport import AcmeFailure as AcmeFailure
from sslreconciler.config.desired import Acme

NETWORK_TIMEOUT = 30
ORDER_TIMEOUT = dt.timedelta(seconds=120)
_BASE64URL = re.compile(r"[A-Za-z0-9_-]+={0,2}")


@dataclass(frozen=True, slots=True)
class Session:
    client: ClientV2
    jwk: JWKEC


def _problem(error: messages.Error) -> AcmeFailure:
    detail = error.detail or error.title or error.description or "no detail given"
    subs = [f"{s.typ}: {s.detail}" for s in error.subproblems or ()]
    return AcmeFailure(str(error.typ), detail + (f" ({'; '.join(subs)})" if subs else ""))


@contextlib.contextmanager
def failures_explained(directory: str) -> Iterator[None]:
    """Turn what the library and the network raise into an AcmeFailure saying what went wrong."""
    try:
        yield
    except AcmeFailure:
        raise
    except messages.Error as exc:
        raise _problem(exc) from None
    except errors.ValidationError as exc:
        parts = []
        for authzr in exc.failed_authzrs:
            name = authzr.body.identifier.value
            for chall in authzr.body.challenges:
                if chall.error is not None:
                    problem = _problem(chall.error)
                    parts.append((problem.kind, f"{name}: {problem.detail}"))
        kind = parts[0][0] if parts else "validation"
        raise AcmeFailure(kind, "; ".join(p[1] for p in parts) or "validation failed") from None
    except errors.IssuanceError as exc:
        raise _problem(exc.error) from None
    except errors.TimeoutError:
        raise AcmeFailure("timeout", f"the order did not complete within {ORDER_TIMEOUT.seconds} s") from None
    except requests.exceptions.SSLError as exc:
        raise AcmeFailure("tls", f"{directory}: the server's certificate is not trusted: {_first_line(exc)}") from None
    except requests.exceptions.RequestException as exc:
        raise AcmeFailure("connection", f"cannot reach {directory}: {_first_line(exc)}") from None
    except (errors.Error, jose.errors.Error) as exc:
        raise AcmeFailure("protocol", f"{directory}: {_first_line(exc) or type(exc).__name__}") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc)
    # requests nests urllib3's reasons; the innermost, after the last "(Caused by", says the most
    if "Caused by" in text:
        text = text.rsplit("Caused by", 1)[1].strip(" ()")
    return text.splitlines()[0][:300] if text else type(exc).__name__


def connect(acme: Acme, key: ec.EllipticCurvePrivateKey) -> Session:
    jwk = JWKEC(key=key)
    # requests takes a CA file where the library's annotation says bool
    verify: Any = str(acme.ca_bundle) if acme.ca_bundle is not None else True
    net = ClientNetwork(
        key=jwk, alg=ES256, verify_ssl=verify, user_agent=f"sslreconciler/{__version__}", timeout=NETWORK_TIMEOUT
    )
    transport.bound(net.session)  # https only, every answer bounded
    directory = ClientV2.get_directory(acme.directory, net)
    return Session(ClientV2(directory, net), jwk)


def renewal_window_start(session: Session, cert_pem: bytes) -> dt.datetime | None:
    """The server's suggested renewal time (ARI) when it offers one; None otherwise or on any failure."""
    try:
        when, _next = session.client.renewal_time(cert_pem)
    except (errors.Error, requests.exceptions.RequestException, ValueError):
        return None
    if when is None:
        return None
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


def decode_hmac_key(text: str) -> bytes:
    """The EAB HMAC key's bytes; ValueError (never naming the key) when it is not base64url."""
    text = text.strip()
    if not _BASE64URL.fullmatch(text) or len(text.rstrip("=")) % 4 == 1:
        raise ValueError("is not base64url (the HMAC key the CA gave, as it gave it)")
    try:
        return jose.b64.b64decode(text)
    except (binascii.Error, ValueError):
        raise ValueError("is not base64url (the HMAC key the CA gave, as it gave it)") from None


def register(session: Session, acme: Acme, hmac_key: str | None) -> None:
    """Make the account, or find the one this key already has (RFC 8555 7.3.1: same key, same account)."""
    eab = None
    if acme.eab is not None and hmac_key is not None:
        eab = messages.ExternalAccountBinding.from_data(
            account_public_key=session.jwk.public_key(),
            kid=acme.eab.kid,
            hmac_key=hmac_key.strip(),
            directory=session.client.directory,
        )
    registration = messages.NewRegistration.from_data(
        email=acme.contact, terms_of_service_agreed=True, external_account_binding=eab
    )
    try:
        session.client.new_account(registration)
    except errors.ConflictError as exc:
        session.client.net.account = messages.RegistrationResource(uri=exc.location, body=messages.Registration())


def order_certificate(session: Session, acme: Acme, names: list[str], key_pem: bytes, until: float) -> bytes:
    """Order a certificate for ``names`` with the key ``key_pem`` (PKCS#8 PEM); the full chain PEM.
    ``until``: the run's deadline (time.monotonic()); the polling gives up by then."""
    csr = crypto_util.make_csr(key_pem, names)
    client = session.client
    order = client.new_order(csr)
    responder = Responder(acme)
    try:
        pending = []
        for authzr in order.authorizations:
            if authzr.body.status == messages.STATUS_VALID:
                continue
            challb = next((c for c in authzr.body.challenges if isinstance(c.chall, challenges.HTTP01)), None)
            if challb is None:
                raise AcmeFailure(
                    "challenge", f"{authzr.body.identifier.value}: the server offers no http-01 challenge"
                )
            response, validation = challb.response_and_validation(session.jwk)
            responder.add(challb.chall, validation)
            pending.append((challb, response))
        responder.start()
        for challb, response in pending:
            client.answer_challenge(challb, response)
        left = dt.timedelta(seconds=max(0.0, until - time.monotonic()))
        deadline = dt.datetime.now() + min(ORDER_TIMEOUT, left)  # the library compares with naive local time
        finished = client.poll_and_finalize(order, deadline)
    finally:
        responder.stop()
    if not finished.fullchain_pem:
        raise AcmeFailure("protocol", "the order completed without a certificate")
    return str(finished.fullchain_pem).encode()
