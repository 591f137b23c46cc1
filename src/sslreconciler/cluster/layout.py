"""Which files the cluster commands work on: the desired state's, not the seed's.

The web pair (``web csr|install|rollback``, ``acme renew``, a bundle's ``ssl-web.*``) is the desired
state's pair named ``ssl-web`` (the seed's name for it). The host pair (a bundle's ``ssl.*``) is the pair
``truststore.host_pair`` names (``ssl`` in the seed), the one whose certificate the truststore holds under
this host's name. A bundle's CA files go to the first of ``truststore.sources`` (``authorities``). Its key and
certificate must be plain file names in the ssl dir (the commands write them relative to its
descriptor); the pending and previous files are named after them (``<key>.pending``, ``<key>.previous``,
``<cert>.previous``), and the marker of a pair removed by rollback after the pair it falls back to. The
chain is judged with that pair's own TLS purposes, against the CAs in the desired state's trust sources.
With the seed layout every name is the one sipXecs and earlier versions used.
"""

from __future__ import annotations

from dataclasses import dataclass

from sslreconciler.config.desired import DesiredState, KeyPair
from sslreconciler.config.pair_model import WEB_PAIR
from sslreconciler.model.errors import CommandError, ConfigError

HOST_PAIR = "ssl"


@dataclass(frozen=True, slots=True)
class WebPair:
    key: str  # e.g. ssl-web.key
    crt: str  # e.g. ssl-web.crt
    purposes: frozenset[str]  # the TLS uses its certificate must allow
    trust_sources: tuple[str, ...]  # where the CAs that verify it are (relative to the ssl dir)
    lowered: frozenset[str]  # the policy rules lowered to a warning
    fallback: str | None  # the pair the web stores follow without a web pair of their own (None: none)

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
        """A marker: before the install the stores followed the fallback pair (rollback removes the pair).
        Only with a fallback: without one there is nothing the stores followed, and no marker."""
        return f"{self.key.removesuffix('.key')}.previous-was-{self.fallback}-pair"


def _pair(desired: DesiredState, name: str) -> KeyPair | None:
    pair = next((p for p in desired.pairs if p.name == name), None)
    for file in (pair.key, pair.cert) if pair is not None else ():
        if "/" in file:
            raise CommandError(
                f"pair {name!r}: {file} is not a plain file name in the ssl dir; the cluster commands write only there"
            )
    return pair


def no_web_pair(desired: DesiredState) -> str:
    names = ", ".join(p.name for p in desired.pairs) or "none"
    return f"no pair named {WEB_PAIR!r}, the web pair these commands work on (pairs: {names}); name the web pair so"


def web_pair(desired: DesiredState) -> WebPair:
    """The desired state's web pair; CommandError when it has none the commands can write."""
    pair = _pair(desired, WEB_PAIR)
    if pair is None:
        raise ConfigError("the desired state", no_web_pair(desired), "pairs")
    return WebPair(
        pair.key,
        pair.cert,
        pair.tls_purposes,
        tuple(desired.trust_sources()),
        desired.policy.lowered,
        pair.fallback,
    )


@dataclass(frozen=True, slots=True)
class NodeFiles:
    """Where a bundle's members go on this node: member name -> file name in the ssl dir."""

    pairs: dict[str, str]  # "ssl.key" -> the host pair's key ..., "ssl-web.crt" -> the web pair's cert
    authorities: str  # the directory (relative to the ssl dir) its CA files go to
    purposes: dict[str, frozenset[str]]  # "ssl" / "ssl-web" -> the TLS uses that pair's certificate must allow
    no_web: str = ""  # why a bundle's ssl-web.* has no home here ("" when the desired state has a web pair)

    @property
    def host_crt(self) -> str:
        return self.pairs["ssl.crt"]


def node_files(desired: DesiredState) -> NodeFiles:
    """The files of the desired state a bundle is installed into; CommandError when it cannot hold one."""
    host = _pair(desired, desired.truststore.host_pair or HOST_PAIR)
    if host is None:
        raise CommandError(f"the desired state has no host pair ({HOST_PAIR!r}) to install a bundle's ssl.* into")
    pairs = {"ssl.key": host.key, "ssl.crt": host.cert}
    purposes = {"ssl": host.tls_purposes}
    web = _pair(desired, WEB_PAIR)
    if web is not None:
        pairs |= {"ssl-web.key": web.key, "ssl-web.crt": web.cert}
        purposes["ssl-web"] = web.tls_purposes
    if not desired.trust_sources():
        raise CommandError("the desired state has no trust source to install a bundle's CA certificates into")
    return NodeFiles(pairs, desired.trust_sources()[0], purposes, "" if web is not None else no_web_pair(desired))
