"""Talk to the ACME server with certbot's ``acme`` library: account, order, HTTP-01, certificate.

Execute only: what to do was decided before. Every failure becomes an AcmeFailure carrying the ACME
server's own words (problem document type and detail) or what kept us from reaching it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import josepy as jose
import requests
from acme import challenges, crypto_util, errors, messages, standalone
from acme.client import ClientNetwork, ClientV2
from cryptography.hazmat.primitives.asymmetric import ec
from josepy.jwa import ES256
from josepy.jwk import JWKEC

from sslreconciler import __version__
from sslreconciler.config.desired import Acme
from sslreconciler.fsio import TEMP_PREFIX

NETWORK_TIMEOUT = 30
ORDER_TIMEOUT = dt.timedelta(seconds=120)
CHALLENGE_DIR = Path(".well-known") / "acme-challenge"


class AcmeFailure(Exception):
    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail


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


def register(session: Session, acme: Acme, hmac_key: str | None) -> None:
    """Make the account, or find the one this key already has (RFC 8555 7.3.1: same key, same account)."""
    eab = None
    if acme.eab is not None and hmac_key is not None:
        eab = messages.ExternalAccountBinding.from_data(
            account_public_key=session.jwk.public_key(),
            kid=acme.eab.kid,
            hmac_key=hmac_key,
            directory=session.client.directory,
        )
    registration = messages.NewRegistration.from_data(
        email=acme.contact, terms_of_service_agreed=True, external_account_binding=eab
    )
    try:
        session.client.new_account(registration)
    except errors.ConflictError as exc:
        session.client.net.account = messages.RegistrationResource(uri=exc.location, body=messages.Registration())


class _Responder:
    """Serve the HTTP-01 answers for one order: files in a webroot, or a server of our own."""

    def __init__(self, acme: Acme) -> None:
        self.acme = acme
        self.dir_fd: int | None = None  # the challenge directory, opened without following links
        self.tokens: list[str] = []
        self.resources: set[standalone.HTTP01RequestHandler.HTTP01Resource] = set()
        self.server: standalone.HTTP01Server | None = None
        self.thread: threading.Thread | None = None

    def add(self, chall: challenges.HTTP01, response: challenges.HTTP01Response, validation: str) -> None:
        webroot = self.acme.challenge.webroot
        if webroot is not None:
            token = chall.encode("token")
            try:
                if self.dir_fd is None:
                    self.dir_fd = _challenge_dir(webroot)
                _write_at(self.dir_fd, token, validation.encode())
            except OSError as exc:
                raise AcmeFailure(
                    "webroot", f"{webroot / CHALLENGE_DIR}: cannot write the challenge file: {exc.strerror}"
                ) from None
            self.tokens.append(token)
        else:
            self.resources.add(
                standalone.HTTP01RequestHandler.HTTP01Resource(chall=chall, response=response, validation=validation)
            )

    def start(self) -> None:
        listen = self.acme.challenge.listen
        if listen is None:
            return
        host, _, port = listen.rpartition(":")
        host = host.strip("[]")
        try:
            self.server = standalone.HTTP01Server((host, int(port)), self.resources, ipv6=":" in host)
        except OSError as exc:
            raise AcmeFailure("listen", f"cannot listen on {listen} for HTTP-01: {exc.strerror}") from None
        self.thread = threading.Thread(target=self.server.serve_forever, name="http-01", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None
        if self.dir_fd is not None:
            for token in self.tokens:
                with contextlib.suppress(OSError):
                    os.unlink(token, dir_fd=self.dir_fd)
            os.close(self.dir_fd)
            self.dir_fd = None


def _challenge_dir(webroot: Path) -> int:
    """WEBROOT/.well-known/acme-challenge opened component by component, made when missing; a symlink
    anywhere below the webroot is refused (whoever owns the webroot must not steer where we write)."""
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
    fd = os.open(webroot, flags)
    try:
        for part in CHALLENGE_DIR.parts:
            with contextlib.suppress(FileExistsError):
                os.mkdir(part, 0o755, dir_fd=fd)
            try:
                child = os.open(part, flags | os.O_NOFOLLOW, dir_fd=fd)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise AcmeFailure("webroot", f"{webroot}: {part} is a symlink or not a directory") from None
                raise
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd


def _write_at(dir_fd: int, name: str, data: bytes) -> None:
    """Atomically write ``name`` (0644: the web server reads it) in the directory ``dir_fd``."""
    tmp = f"{TEMP_PREFIX}{name}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644, dir_fd=dir_fd)
    try:
        os.fchmod(fd, 0o644)
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.rename(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)


def order_certificate(session: Session, acme: Acme, names: list[str], key_pem: bytes) -> bytes:
    """Order a certificate for ``names`` with the key ``key_pem`` (PKCS#8 PEM); the full chain PEM."""
    csr = crypto_util.make_csr(key_pem, names)
    client = session.client
    order = client.new_order(csr)
    responder = _Responder(acme)
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
            responder.add(challb.chall, response, validation)
            pending.append((challb, response))
        responder.start()
        for challb, response in pending:
            client.answer_challenge(challb, response)
        deadline = dt.datetime.now() + ORDER_TIMEOUT  # the library compares with naive local time
        finished = client.poll_and_finalize(order, deadline)
    finally:
        responder.stop()
    if not finished.fullchain_pem:
        raise AcmeFailure("protocol", "the order completed without a certificate")
    return str(finished.fullchain_pem).encode()
