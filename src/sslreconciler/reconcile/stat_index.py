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

The index holds the current trust files only: each reconcile replaces it (``load_trust``). Pure: no I/O.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

from sslreconciler.reconcile.file_facts import FileFacts, from_json, to_json

RACY_MARGIN_NS = 2_000_000_000

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

    def lookup(self, display: str, st: os.stat_result, policy: tuple[str, ...]) -> FileFacts | None:
        """The recorded facts when ``st`` proves the file unchanged since they were taken; else None."""
        entry = self.entries.get(display)
        if entry is None or entry.stat != stat_key(st) or entry.facts.policy != policy:
            return None
        if max(st.st_mtime_ns, st.st_ctime_ns) >= self.taken_ns - RACY_MARGIN_NS:
            return None  # racy: it may have changed within the tick it was read in
        return entry.facts

    def to_json(self) -> bytes:
        """``{"taken_ns": N, "files": {display: [[dev, inode, size, mtime_ns, ctime_ns], facts]}}``."""
        if self.saved is None:
            files = {d: [list(e.stat), to_json(e.facts)] for d, e in self.entries.items()}
            self.saved = json.dumps({"taken_ns": self.taken_ns, "files": files}).encode()
        return self.saved


def index_from_json(raw: bytes) -> StatIndex:
    """The index a file holds; anything malformed leaves out the entry (or, at the top, everything)."""
    try:
        doc = json.loads(raw)
        taken, files = int(doc["taken_ns"]), dict(doc["files"])
    except (ValueError, TypeError, KeyError, RecursionError):
        return StatIndex()
    entries: dict[str, IndexEntry] = {}
    for display, value in files.items():
        try:
            st, facts = value
            key = tuple(int(v) for v in st)
            if len(key) != 5:
                continue
            entries[str(display)] = IndexEntry((key[0], key[1], key[2], key[3], key[4]), from_json(display, facts))
        except (ValueError, TypeError, IndexError, KeyError, AttributeError):
            continue
    return StatIndex(taken, entries, raw)
