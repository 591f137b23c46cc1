"""Which files the web-certificate commands (``web csr|install|rollback``, ``acme renew``) work on: the
desired state's, not the seed's.

The web pair is the desired state's pair named ``ssl-web`` (the seed's name for it). Its key and
certificate must be plain file names in the ssl dir (the commands write them relative to its
descriptor); the pending and previous files are named after them (``<key>.pending``, ``<key>.previous``,
``<cert>.previous``), and the marker of a pair removed by rollback after the pair it falls back to. The
chain is judged with that pair's own TLS purposes, against the CAs in the desired state's trust sources.
With the seed layout every name is the one sipXecs and earlier versions used.
"""

from __future__ import annotations

from dataclasses import dataclass

from sslreconciler.config.desired import DesiredState
from sslreconciler.model.errors import CommandError

WEB_PAIR = "ssl-web"


@dataclass(frozen=True, slots=True)
class WebPair:
    key: str  # e.g. ssl-web.key
    crt: str  # e.g. ssl-web.crt
    purposes: frozenset[str]  # the TLS uses its certificate must allow
    trust_sources: tuple[str, ...]  # where the CAs that verify it are (relative to the ssl dir)
    lowered: frozenset[str]  # the policy rules lowered to a warning
    fallback: str  # the pair the web stores follow without a web pair of their own

    @property
    def pending_key(self) -> str:
        return f"{self.key}.pending"

    @property
    def previous_key(self) -> str:
        return f"{self.key}.previous"

    @property
    def previous_crt(self) -> str:
        return f"{self.crt}.previous"

    @property
    def previous_was_fallback(self) -> str:
        """A marker: before the install the stores followed the fallback pair (rollback removes the pair)."""
        return f"{self.key.removesuffix('.key')}.previous-was-{self.fallback}-pair"


def web_pair(desired: DesiredState) -> WebPair:
    """The desired state's web pair; CommandError when it has none the commands can write."""
    pair = next((p for p in desired.pairs if p.name == WEB_PAIR), None)
    if pair is None:
        raise CommandError(f"the desired state has no pair named {WEB_PAIR!r}: no web pair to work on")
    for name in (pair.key, pair.cert):
        if "/" in name:
            raise CommandError(
                f"pair {WEB_PAIR!r}: {name} is not a plain file name in the ssl dir; the web commands write only there"
            )
    return WebPair(
        pair.key,
        pair.cert,
        pair.tls_purposes,
        tuple(desired.truststore.sources),
        desired.policy.lowered,
        pair.fallback or "ssl",
    )
