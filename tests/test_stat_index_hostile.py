"""A damaged or hostile stat index (reconcile/stat_index.py) costs a full read, never the run: each document
below replaces the recorded ``stat-index.json`` (same owner, 0600: believed by the rules of the state dir),
and the next one-shot exits 0 with the report a ``--full-read`` gives. On main's code 1e400 in a numeric
place raised OverflowError out of ``load_record`` (every run, ``--full-read`` too, died with a traceback)
and ``not_before: 1e300`` made an ``internal`` finding."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from daemonkit import wait_until

from conftest import reconcile
from pkitools import Issued, make_ca, seed_node, write

INDEX = "stat-index.json"
PEER = "authorities/peer-a.crt"
Doc = dict


def _aged(directory: Path) -> None:
    """Every file older than the racy margin (2 s), so the index is believed (as in test_stat_noop)."""
    newest = max(p.lstat().st_ctime_ns for p in [directory, *directory.rglob("*")]) / 1e9
    wait_until(lambda: time.time() > newest + 2.05, timeout=30, what="the tree to age")


def _state() -> Path:
    return Path(os.environ["SSLRECONCILER_STATE_DIR"])


def _literal(place: Callable[[Doc, object], None], text: str) -> Callable[[Doc], bytes]:
    """A document with ``text`` (raw JSON: 1e400, NaN, ...) at the place ``place`` sets."""

    def make(doc: Doc) -> bytes:
        place(doc, "@@HOSTILE@@")
        return json.dumps(doc).replace('"@@HOSTILE@@"', text).encode()

    return make


def _set(place: Callable[[Doc, object], None], value: object) -> Callable[[Doc], bytes]:
    def make(doc: Doc) -> bytes:
        place(doc, value)
        return json.dumps(doc).encode()

    return make


def _top(key: str) -> Callable[[Doc, object], None]:
    return lambda doc, v: doc.__setitem__(key, v)


def _stat(i: int) -> Callable[[Doc, object], None]:
    return lambda doc, v: doc["files"][PEER][0].__setitem__(i, v)


def _cert(i: int) -> Callable[[Doc, object], None]:
    return lambda doc, v: doc["files"][PEER][1][2][0].__setitem__(i, v)


def _entry(doc: Doc, v: object) -> None:
    doc["files"][PEER] = v


NOT_BEFORE, NOT_AFTER, DER, SHASH, INFO, KEYS, ANCHOR = 7, 8, 0, 5, 6, 9, 10
DEEP = 200_000

HOSTILE: dict[str, Callable[[Doc], bytes]] = {
    **{f"taken_ns {t}": _literal(_top("taken_ns"), t) for t in ("1e400", "-1e400", "NaN", "Infinity", "1.5")},
    "euid 1e400": _literal(_top("euid"), "1e400"),
    **{f"stat[{i}] 1e400": _literal(_stat(i), "1e400") for i in range(5)},
    **{f"stat[{i}] NaN": _literal(_stat(i), "NaN") for i in (0, 4)},
    "stat[1] -Infinity": _literal(_stat(1), "-Infinity"),
    "stat[2] 10**30": _literal(_stat(2), str(10**30)),
    "stat[3] 10**5000": _literal(_stat(3), "9" * 5000),
    **{f"not_before {t}": _literal(_cert(NOT_BEFORE), t) for t in ("1e400", "1e300", "-1e300", "NaN")},
    **{f"not_after {t}": _literal(_cert(NOT_AFTER), t) for t in ("1e400", "1e300", "Infinity")},
    "taken_ns text": _set(_top("taken_ns"), "12"),
    "files a list": _set(_top("files"), []),
    "files null": _set(_top("files"), None),
    "the document a list": lambda doc: b"[1, 2, 3]",
    "the document a string": lambda doc: b'"x"',
    "stat a string of five": _set(lambda d, v: d["files"][PEER].__setitem__(0, v), "abcde"),
    "stat an object": _set(lambda d, v: d["files"][PEER].__setitem__(0, v), {"a": 1}),
    "facts an object": _set(lambda d, v: d["files"][PEER].__setitem__(1, v), {}),
    "entry a number": _set(_entry, 5),
    "der a number": _set(_cert(DER), 5),
    "subject hash null": _set(_cert(SHASH), None),
    "info an object": _set(_cert(INFO), {"a": 1}),
    "key findings a string": _set(_cert(KEYS), "xyz"),
    "anchor problem a list": _set(_cert(ANCHOR), [1]),
    "huge subject hash": _set(_cert(SHASH), "a" * 4_000_000),
    "huge anchor problem": _set(_cert(ANCHOR), "x" * 4_000_000),
    "huge file name": lambda doc: json.dumps({**doc, "files": {**doc["files"], "a" * 4_000_000: doc["files"][PEER]}}).encode(),
    "deep entry": lambda doc: json.dumps(doc).replace(json.dumps(PEER) + ": ", json.dumps(PEER) + ": " + "[" * DEEP + "]" * DEEP + ", \"x\": ", 1).encode(),
    "deep document": lambda doc: b"[" * DEEP + b"]" * DEEP,
}


@pytest.fixture(scope="module")
def cas() -> tuple[Issued, Issued]:
    return make_ca("peer-a.example.com", kind="ec"), make_ca("peer-b.example.com", kind="ec")


def _comparable(doc: dict) -> dict:
    doc.pop("started_at"), doc.pop("duration_ms")
    return doc


def test_hostile_index_documents_cost_a_full_read_never_the_run(tmp_path, ca, cas) -> None:
    node = seed_node(tmp_path / "n", "master.example.com", ca)
    write(node.ssl_dir / "authorities" / "peer-a.crt", cas[0].cert_pem())
    write(node.ssl_dir / "authorities" / "peer-b.crt", cas[1].cert_pem())
    _aged(node.ssl_dir)
    assert reconcile(node).rc == 0
    full = reconcile(node, "--full-read")
    assert full.rc == 0 and full.json()["findings"] == [], full.out + full.err
    expected = _comparable(full.json())
    recorded = (_state() / INDEX).read_bytes()
    failed = []
    for name, make in HOSTILE.items():
        for extra in ((), ("--full-read",)) if "1e400" in name else ((),):
            (_state() / INDEX).write_bytes(make(json.loads(recorded)))
            (_state() / INDEX).chmod(0o600)
            result = reconcile(node, *extra)
            if result.rc != 0 or "Traceback" in result.err or _comparable(result.json()) != expected:
                failed.append(f"{name} {extra}: rc {result.rc} {result.err[-300:]}")
    assert failed == [], '\n'.join(failed)
