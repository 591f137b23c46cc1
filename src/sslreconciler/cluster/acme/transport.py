"""How `acme renew` talks to the ACME server, whatever the server or the network does.

- **https only**: every request, redirects included, goes through one adapter that refuses any URL
  that is not https before a byte is sent (a directory naming ``http://`` resources would have our
  signed requests travel in clear).
- **every answer bounded**: read streaming, at most RESPONSE_LIMIT bytes kept; over it the request
  fails (a 64 MiB "certificate" costs 1 MiB, not 200 MB).
- **the whole run bounded**: ``within`` runs the network part on a worker thread and gives up at the
  deadline, however slowly a server trickles or a name resolves; the worker writes nothing, so
  abandoning it leaves no half-done change (the process exits soon after).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import requests
import urllib3
from requests.adapters import HTTPAdapter

from sslreconciler.fsio import MAX_SOURCE_BYTES
from sslreconciler.model.errors import SslReconcilerError
from sslreconciler.model.text import printable

RESPONSE_LIMIT = MAX_SOURCE_BYTES
DETAIL_LIMIT = 600
T = TypeVar("T")


class AcmeFailure(SslReconcilerError):
    """What went wrong, in the server's words when it said something: shown escaped (a server's
    ``detail`` must not drive root's terminal) and bounded."""

    def __init__(self, kind: str, detail: str) -> None:
        kind, detail = printable(kind[:200]), printable(detail[:DETAIL_LIMIT])
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail


class BoundedHttpsAdapter(HTTPAdapter):
    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        url = request.url or ""
        if not url.lower().startswith("https://"):
            raise AcmeFailure(
                "protocol",
                f"the ACME server sends us to {url[:200]}; refused: only https is used (signed requests must "
                "not travel in clear)",
            )
        kwargs["stream"] = True
        response = super().send(request, *args, **kwargs)
        try:
            body = bytearray()
            for chunk in response.raw.stream(65536, decode_content=True):
                body += chunk
                if len(body) > RESPONSE_LIMIT:
                    raise AcmeFailure(
                        "protocol", f"{url[:200]}: the answer is over the {RESPONSE_LIMIT}-byte limit; not read further"
                    )
        except (urllib3.exceptions.HTTPError, OSError) as exc:  # cut, timed out, bad encoding: as requests says it
            raise requests.exceptions.ConnectionError(f"{url[:200]}: the answer broke off: {exc}") from None
        finally:
            response.close()
        response._content = bytes(body)  # what requests keeps for .content/.text/.json()
        response._content_consumed = True
        return response


def bound(session: requests.Session) -> None:
    """Make ``session`` https-only with bounded answers (for every scheme, so http:// is refused too)."""
    adapter = BoundedHttpsAdapter()
    session.mount("https://", adapter)
    session.mount("http://", adapter)


def within(deadline: float, timeout_s: float, work: Callable[[], T]) -> T:
    """``work()``'s result, or AcmeFailure("timeout") once time.monotonic() passes ``deadline``."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = work()
        except BaseException as exc:  # handed to the caller's thread
            box["error"] = exc

    worker = threading.Thread(target=run, name="acme-network", daemon=True)
    worker.start()
    worker.join(max(0.0, deadline - time.monotonic()))
    if worker.is_alive():
        raise AcmeFailure(
            "timeout",
            f"the ACME exchange did not end within {timeout_s:.0f} s (acme.timeout_s): the server or the "
            "network hangs; given up",
        )
    if "error" in box:
        raise box["error"]
    value: T = box["value"]
    return value
