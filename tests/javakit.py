"""Java's view of the outputs, one JVM per check: TLS handshakes between pairs of stores (tests/java/TlsPairs)
and stores opened as a Java service opens them (tests/java/StoreProbe), many of each in one run.

The probes use only the JDK, never the product. Every pair and every store keeps its own verdict, so a failure
names the pair or the store.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from conftest import PASSWORD, Result, java_bin

TIMEOUT_S = 60  # per socket wait inside the JVM; generous, both cores may be busy with other work


@dataclass(frozen=True)
class Pair:
    """One handshake: a server and a client, each with its own JKS keystore and truststore."""

    name: str
    server_keystore: Path
    server_truststore: Path
    client_keystore: Path
    client_truststore: Path
    password: str = PASSWORD
    mutual: bool = True  # the server asks for and checks the client's certificate

    @classmethod
    def nodes(cls, name: str, server: Path, client: Path, password: str = PASSWORD) -> Pair:
        """Two nodes' ssl dirs (ssl.keystore and authorities.jks each), mutual TLS."""
        return cls(name, server / "ssl.keystore", server / "authorities.jks", client / "ssl.keystore",
                   client / "authorities.jks", password)


@dataclass(frozen=True)
class Handshake:
    pair: Pair
    ok: bool
    protocol: str = ""
    server_saw: str = ""  # the client's subject, as the server saw it ("-" without client auth)
    client_saw: str = ""  # the server's subject, as the client saw it
    reply: str = ""  # what the server answered to "ping"
    reason: str = ""  # why it failed, and on which side

    def __str__(self) -> str:
        if not self.ok:
            return f"{self.pair.name}: FAILED {self.reason}"
        return (f"{self.pair.name}: {self.protocol}, server saw {self.server_saw!r}, client saw "
                f"{self.client_saw!r}, reply {self.reply!r}")


def handshakes(java_classes: Path, pairs: Sequence[Pair], version: str = "system") -> dict[str, Handshake]:
    """Every pair's handshake, one after the other in one JVM of ``version``; name -> outcome."""
    names = [p.name for p in pairs]
    assert len(set(names)) == len(names), f"pair names must be unique: {names}"
    for p in pairs:
        fields = [p.name, *map(str, (p.server_keystore, p.server_truststore, p.client_keystore,
                                     p.client_truststore)), p.password]
        assert not any(c in f for f in fields for c in "\t\n"), p
    request = "".join("\t".join([p.name, str(p.server_keystore), str(p.server_truststore), str(p.client_keystore),
                                 str(p.client_truststore), p.password, "mutual" if p.mutual else "server-only"]) + "\n"
                      for p in pairs)
    proc = subprocess.run([java_bin(version), "-cp", str(java_classes), "TlsPairs", str(TIMEOUT_S * 1000)],
                          input=request, capture_output=True, text=True,
                          timeout=120 + 3 * TIMEOUT_S * len(pairs))
    by_name = {p.name: p for p in pairs}
    out: dict[str, Handshake] = {}
    for line in proc.stdout.splitlines():
        name, verdict, *rest = line.split("\t")
        pair = by_name[name]
        if verdict == "OK":
            protocol, server_saw, client_saw, reply = rest
            out[name] = Handshake(pair, True, protocol, server_saw, client_saw, reply)
        else:
            out[name] = Handshake(pair, False, reason="\t".join(rest))
    for name in names:  # a JVM that died part-way: the pairs it never reached fail with its output
        out.setdefault(name, Handshake(by_name[name], False, reason=f"no answer (java rc {proc.returncode}): "
                                                                     f"{proc.stdout[-2000:]}{proc.stderr[-4000:]}"))
    return out


def assert_handshakes(java_classes: Path, pairs: Sequence[Pair], expect: dict[str, tuple[str, str]] | None = None,
                      version: str = "system", what: str = "") -> dict[str, Handshake]:
    """Every pair completes its handshake and the "ping"/"pong ping" exchange; ``expect``: name -> (the subject
    the client must see, the subject the server must see). The message names every pair that did not."""
    results = handshakes(java_classes, pairs, version)
    wrong = []
    for name, h in results.items():
        saw = (h.client_saw, h.server_saw)
        if not h.ok or h.reply != "pong ping" or (expect and name in expect and saw != expect[name]):
            wrong.append(f"{h}" + (f" (expected client/server to see {expect[name]})" if expect and name in expect
                                   else ""))
    assert not wrong, (f"{what}: " if what else "") + f"java {version}: " + "; ".join(wrong)
    return results


def every_pair(ssl_dirs: dict[str, Path], prefix: str = "") -> tuple[list[Pair], dict[str, tuple[str, str]]]:
    """Mutual TLS between every two nodes (host -> ssl dir), each pair once: the earlier host serves, the later
    one connects; with the subjects each side must see (CN=server, CN=client)."""
    hosts = list(ssl_dirs)
    pairs, expect = [], {}
    for i, a in enumerate(hosts):
        for b in hosts[i + 1:]:
            name = f"{prefix}{b} -> {a}"
            pairs.append(Pair.nodes(name, ssl_dirs[a], ssl_dirs[b]))
            expect[name] = (f"CN={a}", f"CN={b}")
    return pairs, expect


def assert_every_pair_talks(java_classes: Path, ssl_dirs: dict[str, Path], what: str = "",
                            version: str = "system") -> dict[str, Handshake]:
    pairs, expect = every_pair(ssl_dirs)
    return assert_handshakes(java_classes, pairs, expect, version, what)


def store_probes(java_classes: Path, version: str, stores: Iterable[tuple[str, Path, str]]) -> list[Result]:
    """Each (storetype, file, password) opened and listed by StoreProbe, all in one JVM of ``version``: per store,
    rc 0 (out: "alias\\tkey|trusted\\tchain length" lines), 3 (out: "LOAD-FAILED reason") or 1 (an entry failed)."""
    stores = list(stores)
    args = [str(x) for store in stores for x in store]
    proc = subprocess.run([java_bin(version), "-cp", str(java_classes), "StoreProbe", *args],
                          capture_output=True, text=True, timeout=120 + 10 * len(stores))
    lines: dict[int, list[str]] = {i: [] for i in range(len(stores))}
    rcs: dict[int, int] = {}
    for line in proc.stdout.splitlines():
        index, text = line.split("\t", 1)
        if text.startswith("END "):
            rcs[int(index)] = int(text[4:])
        else:
            lines[int(index)].append(text)
    return [Result(rcs[i], "".join(f"{t}\n" for t in lines[i]), "") if i in rcs else
            Result(proc.returncode or 1, "".join(f"{t}\n" for t in lines[i]), proc.stderr)
            for i in range(len(stores))]


def store_probe(java_classes: Path, version: str, storetype: str, store: Path, password: str = PASSWORD) -> Result:
    """One store, one JVM (StoreProbe)."""
    return store_probes(java_classes, version, [(storetype, store, password)])[0]
