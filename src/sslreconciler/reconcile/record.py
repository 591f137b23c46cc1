"""What a reconcile leaves in the state dir: the last report, and the record of what each store holds.

The record (store path -> SHA-256 of its bytes, HMAC of everything it must hold) spares a later run
from opening the stores; the HMAC key lives beside it (0600), so the record says nothing about the
password to whoever lacks that key. Both are believed only when nobody but the running user could
have written them: root never trusts a record in a directory the service user owns.
"""

from __future__ import annotations

import gc
import json
import os
import secrets
from pathlib import Path

from sslreconciler.fsio import atomic_write_at, open_dir, opened_dir, owner_for_new_files, read_at, written_by_others
from sslreconciler.model.findings import FindingCode, SourceError
from sslreconciler.reconcile.file_facts import SUBJECT_HASH
from sslreconciler.reconcile.memo import ReconcileCache, RecordedStore, Verdict
from sslreconciler.reconcile.report import Report
from sslreconciler.reconcile.stat_index import StatIndex, index_from_json

STATE_FILE = "last-report.json"
RECORD, RECORD_KEY = "fingerprints.json", "fingerprints.key"
MAX_RECORD_BYTES = 4 * 1024 * 1024
# The trust files' stat index (stat_index.py) beside the record, believed by the same rule. A file of its
# own: a no-op leaves it as it is without serializing its megabytes again. About 1 to 2.5 KiB per
# certificate (1.1 MiB for 1,000 EC ones); past this limit none is written (every trust file is then read
# in full, as before).
STAT_INDEX, MAX_STAT_INDEX_BYTES = "stat-index.json", 64 * 1024 * 1024


def load_record(state_dir: Path) -> ReconcileCache:
    """A memo primed from the state dir's record; an unreadable or untrusted record is not used."""
    memo = ReconcileCache()
    memo.record_key = secrets.token_bytes(32)  # saved with the first record
    try:
        fd = open_dir(state_dir)
    except OSError:
        return memo
    try:
        problem = written_by_others(os.fstat(fd), f"state dir {state_dir}")
        if problem:
            memo.record_note = f"{problem}; its record is ignored"
            return memo
        try:
            key, key_st = read_at(fd, RECORD_KEY, RECORD_KEY, None, 4096)
            raw, raw_st = read_at(fd, RECORD, RECORD, None, MAX_RECORD_BYTES)
        except SourceError as exc:
            if exc.finding.code not in (FindingCode.MISSING, FindingCode.EMPTY):
                memo.record_note = f"{state_dir}/{exc.finding.file} {exc.finding.reason}; record ignored"
            return memo
        problem = written_by_others(key_st, f"{state_dir}/{RECORD_KEY}") or written_by_others(
            raw_st, f"{state_dir}/{RECORD}"
        )
        if problem:
            memo.record_note = f"{problem}; the record is ignored"
            return memo
        memo.record_key = key
        _load_entries(memo, raw)
        memo.record_trusted = True
        memo.record_saved = raw
        memo.stat_index = memo.stat_index_saved = _load_stat_index(fd, state_dir)
    finally:
        os.close(fd)
    return memo


def _load_stat_index(fd: int, state_dir: Path) -> StatIndex:
    """The stat index, when only this user could have written it and made it with this euid's reads (else an
    empty one: every file is read)."""
    try:
        raw, st = read_at(fd, STAT_INDEX, STAT_INDEX, None, MAX_STAT_INDEX_BYTES)
    except SourceError:
        return StatIndex()
    if written_by_others(st, f"{state_dir}/{STAT_INDEX}"):
        return StatIndex()
    # Decoding makes tens of thousands of objects and no cycle: with the collector running, they would set
    # off a full collection over everything the process imported (about a third of a 1,000-file no-op).
    gc.disable()
    try:
        return index_from_json(raw, os.geteuid())
    finally:
        gc.enable()


def _load_entries(memo: ReconcileCache, raw: bytes) -> None:
    """The stores' fingerprints, and the chain verdicts and subject hashes an earlier run computed, so a
    one-shot no-op does not verify a thousand signatures again. Anything malformed is dropped."""
    try:
        loaded = json.loads(raw)
        stores = loaded.get("stores", loaded) if isinstance(loaded, dict) else {}  # before: stores only
        memo.recorded = {str(k): RecordedStore(str(v[0]), str(v[1])) for k, v in stores.items()}
        for k, v in dict(loaded.get("verdicts", {})).items():
            chain, anchors = bytes.fromhex(k[:64]), bytes.fromhex(k[64:])
            memo.verdicts[(chain, anchors)] = Verdict(str(v[0]), float(v[1]), float(v[2]))
        for k, v in dict(loaded.get("subject_hashes", {})).items():
            if isinstance(v, str) and SUBJECT_HASH.fullmatch(v):  # it names a hash link: nothing else kept
                memo.subject_hashes[bytes.fromhex(k)] = v
    except (ValueError, TypeError, IndexError, AttributeError, RecursionError, OverflowError):
        memo.recorded, memo.verdicts, memo.subject_hashes = {}, {}, {}


def _payload(memo: ReconcileCache) -> bytes:
    """The record's JSON, a contract between versions: ``stores``: path -> [bytes digest, spec HMAC];
    ``verdicts``: chain + anchors digests (hex) -> [detail, valid from, valid until]; ``subject_hashes``:
    DER digest (hex) -> hash."""
    stores = {path: [r.digest, r.spec_mac] for path, r in memo.recorded.items()}
    used = memo.used_verdicts
    doc = {
        "stores": stores,
        "verdicts": {
            (c + a).hex(): [v.detail, v.valid_from, v.valid_until]
            for (c, a), v in memo.verdicts.items()
            if (c, a) in used
        },
        "subject_hashes": {k.hex(): v for k, v in memo.subject_hashes.items() if k in memo.used_subject_hashes},
    }
    raw = json.dumps(doc).encode()
    if len(raw) > MAX_RECORD_BYTES:  # a huge trust set: keep the stores' part, which matters most
        raw = json.dumps({"stores": stores}).encode()
    return raw


def save_record(memo: ReconcileCache, state_dir: Path) -> None:
    """Write the record when it changed (0600, inside the state dir's descriptor, never through a link)."""
    if not memo.record_key:
        return
    raw = _payload(memo)
    save_stat_index(memo, state_dir)
    if memo.record_trusted and raw == memo.record_saved:
        return
    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    with opened_dir(state_dir) as fd:
        if not memo.record_trusted:  # a new key for a new record: the old pair is not believed
            _write(fd, state_dir, RECORD_KEY, memo.record_key)
        _write(fd, state_dir, RECORD, raw)
        memo.record_trusted = True
        memo.record_saved = raw


def save_stat_index(memo: ReconcileCache, state_dir: Path) -> None:
    """Write the stat index when this run made a new one (a no-op keeps the one it read)."""
    index = memo.stat_index
    if not memo.record_key or index is memo.stat_index_saved:
        return
    raw = index.to_json()
    if len(raw) > MAX_STAT_INDEX_BYTES:  # too many certificates: no index, every file is read
        raw = StatIndex().to_json()
    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    with opened_dir(state_dir) as fd:
        _write(fd, state_dir, STAT_INDEX, raw)
    memo.stat_index_saved = index


def save_report(state_dir: Path, report: Report) -> None:
    """Keep the last report in the state dir (0700 dir, 0600 file: it names files, never secrets)."""
    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    with opened_dir(state_dir) as fd:
        _write(fd, state_dir, STATE_FILE, json.dumps(report.to_dict()).encode())  # C encoder: no indent


def _write(fd: int, state_dir: Path, name: str, data: bytes) -> None:
    """0600, atomic, inside the state dir's descriptor; an error names the file. Root writing in the
    service user's state dir leaves the file to that user, as in the ssl dir: never a root-owned file
    the service cannot read there."""
    try:
        atomic_write_at(fd, name, data, 0o600, *owner_for_new_files(fd))
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror, str(state_dir / name)) from None
