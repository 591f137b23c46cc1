"""watchdog events -> one "look again" signal. Which events matter is decided here, by path.

Only changes to sources count: the daemon's own writes (temp files, stores, hash links, the writer
lock's file), editor droppings and open/close-without-write events are dropped, so an idle node
stays idle. The watches are re-made when the ssl dir is removed and recreated; an inotify queue
overflow is treated as "look again" (the reconcile is level-triggered, so lost events cost nothing
once it runs).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable
from pathlib import Path

from watchdog.events import (
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer

from sslreconciler.config.desired import DesiredState
from sslreconciler.fsio import LOCK_NAME, TEMP_PREFIX
from sslreconciler.reconcile.observe import is_trust_file_name
from sslreconciler.reconcile.state import HASH_LINK

EVENT_TYPES: list[type[FileSystemEvent]] = [
    FileCreatedEvent,
    FileModifiedEvent,
    FileDeletedEvent,
    FileMovedEvent,
    FileClosedEvent,
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
]
with contextlib.suppress(ImportError):  # watchdog >= 5 reports chmod/chown separately
    from watchdog.events import FileAttribEvent

    EVENT_TYPES.append(FileAttribEvent)

_EDITOR_JUNK_SUFFIXES = (".swp", ".swx", ".swo", ".swap", ".bak", ".tmp", "~", ".orig", ".rej", ".part")


def _is_editor_junk(name: str) -> bool:
    return (
        name.endswith(_EDITOR_JUNK_SUFFIXES)
        or name.startswith((".#", "#"))
        or name == "4913"  # vim's write test
        or ".dpkg-" in name
        or name.endswith((".rpmnew", ".rpmsave"))
    )


class Relevance:
    """Does a change at this path change what a reconcile would do?"""

    def __init__(self, ssl_dir: Path, desired_path: Path, desired: DesiredState) -> None:
        self.ssl_dir = Path(os.path.abspath(ssl_dir))
        self.desired_path = Path(os.path.abspath(desired_path))
        self.outputs = set(desired.output_files())
        self.sources = set(desired.source_files())
        self.source_dirs = {Path(s).parent.as_posix() for s in self.sources} - {"."}
        self.trust = set(desired.trust_sources())
        self.allowed = [Path(os.path.abspath(d)) for d in desired.allowed_symlink_dirs]

    def __call__(self, raw: str | bytes) -> bool:
        path = Path(os.fsdecode(raw))
        if path == self.desired_path or path == self.ssl_dir:
            return True
        name = path.name
        if name.startswith(TEMP_PREFIX) or name == LOCK_NAME or _is_editor_junk(name):
            return False  # writers' temp files and the writer lock (made and removed by every writer) are no change
        try:
            rel = path.relative_to(self.ssl_dir)
        except ValueError:
            return any(path == d or d in path.parents for d in self.allowed)
        rel_str = rel.as_posix()
        if rel_str in self.outputs or HASH_LINK.match(name):
            return False
        if rel_str in self.sources or rel_str in self.trust or rel_str in self.source_dirs:
            return True
        if rel.parts[0].startswith(".."):  # Kubernetes-style ..data / ..2026_xx swaps
            return True
        return rel.parent.as_posix() in self.trust and is_trust_file_name(name)


class _Handler(FileSystemEventHandler):
    def __init__(self, relevant: Callable[[str | bytes], bool], poke: Callable[[str], None]) -> None:
        self.relevant = relevant
        self.poke = poke

    def on_any_event(self, event: FileSystemEvent) -> None:
        paths = [event.src_path, getattr(event, "dest_path", "") or ""]
        for path in paths:
            if path and self.relevant(path):
                self.poke(f"{event.event_type} {os.fsdecode(path)}")
                return


class _StateHandler(FileSystemEventHandler):
    """The state dir: another process wrote one of ``names`` there (renamed in, or written)."""

    def __init__(self, state_dir: Path, names: frozenset[str], on_state: Callable[[str], None]) -> None:
        self.state_dir = state_dir
        self.names = names
        self.on_state = on_state

    def on_any_event(self, event: FileSystemEvent) -> None:
        for path in (event.src_path, getattr(event, "dest_path", "") or ""):
            p = Path(os.fsdecode(path)) if path else None
            if p is not None and p.parent == self.state_dir and p.name in self.names:
                self.on_state(p.name)
                return


class _OverflowHandler(logging.Handler):
    """watchdog only logs an inotify queue overflow; turn that into a resync."""

    def __init__(self, poke: Callable[[str], None]) -> None:
        super().__init__(logging.WARNING)
        self.poke = poke

    def emit(self, record: logging.LogRecord) -> None:
        if "overflow" in record.getMessage().lower():
            self.poke("inotify queue overflow")


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


class Watcher:
    def __init__(self, poke: Callable[[str], None], on_state: Callable[[str], None] | None = None) -> None:
        self._poke = poke
        self._on_state = on_state  # news in the state dir (daemon/state_news.py), given the file's name
        self._state: tuple[Path, frozenset[str]] | None = None
        self._observer: Observer | None = None  # type: ignore[valid-type]
        self._ssl_identity: tuple[int, int] | None = None
        self._state_identity: tuple[int, int] | None = None
        self._ssl_dir = Path(".")
        self._overflow = _OverflowHandler(poke)
        for name in ("watchdog.observers.inotify", "watchdog.observers.inotify_c"):
            logging.getLogger(name).addHandler(self._overflow)

    def configure(self, ssl_dir: Path, desired_path: Path, desired: DesiredState) -> None:
        """(Re)make every watch for these paths."""
        self.stop()
        relevance = Relevance(ssl_dir, desired_path, desired)
        handler = _Handler(relevance, self._poke)
        observer = Observer()
        wanted: dict[Path, bool] = {}  # path -> recursive
        ssl_abs = relevance.ssl_dir
        for path, recursive in [
            (ssl_abs.parent, False),  # sees the ssl dir itself removed or recreated
            (relevance.desired_path.parent, False),
            (ssl_abs, True),
            *((d, True) for d in relevance.allowed),
        ]:
            if path.is_dir():
                wanted[path] = wanted.get(path, False) or recursive
        for path, recursive in wanted.items():
            with contextlib.suppress(OSError):  # vanished meanwhile: the next check re-makes it
                observer.schedule(handler, str(path), recursive=recursive, event_filter=EVENT_TYPES)
        if self._state is not None and self._on_state is not None and self._state[0].is_dir():
            state_abs = Path(os.path.abspath(self._state[0]))
            with contextlib.suppress(OSError):
                state_handler = _StateHandler(state_abs, self._state[1], self._on_state)
                observer.schedule(state_handler, str(state_abs), recursive=False, event_filter=EVENT_TYPES)
        observer.daemon = True
        observer.start()
        self._observer = observer
        self._ssl_dir = ssl_abs
        self._ssl_identity = _identity(ssl_abs)
        self._state_identity = None if self._state is None else _identity(self._state[0])
        self._args = (ssl_dir, desired_path, desired)

    def watch_state(self, state_dir: Path, names: frozenset[str]) -> None:
        """Also watch ``state_dir`` for ``names`` from the next ``configure`` on."""
        self._state = (state_dir, names)

    def needs_rewatch(self) -> bool:
        """True when the ssl dir or the state dir was removed, recreated or swapped since the watches
        were made."""
        state = None if self._state is None else _identity(self._state[0])
        return _identity(self._ssl_dir) != self._ssl_identity or state != self._state_identity

    def rewatch(self) -> None:
        self.configure(*self._args)

    def stop(self) -> None:
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=2)
            self._observer = None

    def close(self) -> None:
        self.stop()
        for name in ("watchdog.observers.inotify", "watchdog.observers.inotify_c"):
            logging.getLogger(name).removeHandler(self._overflow)
