"""The stat index: which trust files are unchanged since their facts were taken, proved without reading them.

Per trust file it keeps what the kernel changes with any change to the file — device, inode, size,
``mtime_ns`` and ``ctime_ns`` (a user can forge the mtime, never the ctime: only the clock moves it) —
with the file's facts (reconcile/file_facts.py). ``observe`` lstats each trust file through the ssl
dir's descriptor (no link followed); when all five match and the entry is not racy, the facts are used
instead of the bytes. A link, any mismatch, a policy the facts were not judged under, or a full read
(``reconcile --full-read``, the daemon's every ``full_read_every``-th resync) reads the file in full.

Racy clean (git's rule for its index): file timestamps come from a coarse clock, so a file changed in
the same tick as the read that recorded it keeps its ctime. ``taken_ns`` is the wall clock just before
the stats were taken; an entry whose ctime or mtime is not older than ``taken_ns - RACY_MARGIN_NS`` is
never believed, so the next run reads it again (and then, its stat older than the new ``taken_ns``
minus the margin, believes it). The margin, 2 s, covers the coarsest timestamps a Linux file system
keeps (FAT's 2 s, ext3's 1 s) and the kernel's coarse clock, a jiffy (at most 10 ms).

The index holds the current trust files only: each reconcile replaces it (``load_trust``). It records the
euid whose reads it stands for (``euid``) and is believed by that euid only: root reconciling the service
user's state dir leaves an index there saying what root could read, which the service user must not take
for its own reads (a root-only file would pass as readable). Anything malformed in it (a wrong type, a
number out of range, 1e400, NaN, deep nesting) drops the entry or the whole index, never the run.

Not seen: a write through a shared writable mmap after the first one that dirtied the page may change the
bytes without moving mtime or ctime; such a file keeps its old facts until a full read. Pure: no I/O.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

from sslreconciler.reconcile.file_facts import FileFacts, from_json, to_json

RACY_MARGIN_NS = 2_000_000_000
_STAT_RANGE = (-(2**63), 2**64)  # what a stat field (dev, inode, size, a signed time in ns) can hold

StatKey = tuple[int, int, int, int, int]  # dev, inode, size, mtime_ns, ctime_ns


def stat_key(st: os.stat_result) -> StatKey:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


@dataclass(frozen=True, slots=True)
class IndexEntry:
    stat: StatKey
    facts: FileFacts


@dataclass(slots=True)
class StatIndex:
    taken_ns: int = 0  # wall clock just before the stats of ``entries`` were taken
    entries: dict[str, IndexEntry] = field(default_factory=dict)  # trust file (display) -> entry
    saved: bytes | None = field(default=None, repr=False)  # this index's JSON as read or written
    euid: int = field(default_factory=os.geteuid)  # whose reads the entries stand for

    def lookup(self, display: str, st: os.stat_result, policy: tuple[str, ...]) -> FileFacts | None:
        """The recorded facts when ``st`` proves the file unchanged since they were taken; else None."""
        entry = self.entries.get(display)
        if entry is None or entry.stat != stat_key(st) or entry.facts.policy != policy:
            return None
        if max(st.st_mtime_ns, st.st_ctime_ns) >= self.taken_ns - RACY_MARGIN_NS:
            return None  # racy: it may have changed within the tick it was read in
        return entry.facts

    def to_json(self) -> bytes:
        """``{"euid": N, "taken_ns": N, "files": {display: [[dev, inode, size, mtime_ns, ctime_ns], facts]}}``."""
        if self.saved is None:
            files = {d: [list(e.stat), to_json(e.facts)] for d, e in self.entries.items()}
            self.saved = json.dumps({"euid": self.euid, "taken_ns": self.taken_ns, "files": files}).encode()
        return self.saved


def _int(value: object, low: int, high: int) -> int:
    if type(value) is not int or not low <= value < high:
        raise ValueError("not an integer in range")
    return value


def index_from_json(raw: bytes, euid: int) -> StatIndex:
    """The index a file holds, when ``euid`` made it; anything malformed leaves out the entry (or, at the
    top, everything): never an exception (a hostile or damaged file costs a full read, not the run)."""
    try:
        doc = json.loads(raw)
        if _int(doc["euid"], 0, 2**32) != euid:
            return StatIndex(euid=euid)  # another user's reads: not this one's to believe
        taken, files = _int(doc["taken_ns"], 0, 2**63), doc["files"]
        if not isinstance(files, dict):
            raise TypeError("files is not an object")
    except Exception:  # any parse error at all (ValueError, OverflowError, RecursionError, ...): no index
        return StatIndex(euid=euid)
    entries: dict[str, IndexEntry] = {}
    for display, value in files.items():
        try:
            st, facts = value
            if not isinstance(st, list) or len(st) != 5:
                continue
            key = tuple(_int(v, *_STAT_RANGE) for v in st)
            entries[display] = IndexEntry((key[0], key[1], key[2], key[3], key[4]), from_json(display, facts))
        except Exception:  # a malformed entry is dropped: that file is read in full
            continue
    return StatIndex(taken, entries, raw, euid)
