"""The health socket's connection slots, shared fairly by the peers' uids.

Whoever is in the socket's group may connect. Without a share per uid, one member holding every slot (and
reopening each as it drops) makes everyone else's `status` UNKNOWN. So: each uid other than root and the
daemon's own holds at most PER_UID slots at once, and each of those two privileged uids has RESERVED slots
no other uid may take. The total stays MAX_CONNECTIONS.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from collections import Counter
from collections.abc import Iterable

MAX_CONNECTIONS = 32  # served at once, whoever asks
PER_UID = 8  # served at once for one uid that is neither root nor the daemon's
RESERVED = 2  # slots kept free for root, and for the daemon's own uid, whatever the others hold
UNKNOWN_UID = -1  # a peer whose credentials cannot be read (never on Linux): one bucket for all of them

_UCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid


def peer_uid(connection: socket.socket) -> int:
    """The uid the peer had when it connected (SO_PEERCRED: the kernel's word, not the peer's)."""
    with contextlib.suppress(OSError, AttributeError, struct.error):
        _pid, uid, _gid = _UCRED.unpack(connection.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size))
        return int(uid)
    return UNKNOWN_UID


class ConnectionSlots:
    """Who holds how many slots; `take` says whether one more connection from ``uid`` is served."""

    def __init__(
        self, privileged: Iterable[int], total: int = MAX_CONNECTIONS, per_uid: int = PER_UID, reserved: int = RESERVED
    ) -> None:
        self._privileged = frozenset(privileged)
        self._total = total
        self._per_uid = per_uid
        self._reserved = reserved
        self._held: Counter[int] = Counter()
        self._lock = threading.Lock()

    def _owed(self, uid: int) -> int:
        """Slots that must stay free for the privileged uids other than ``uid``."""
        return sum(max(0, self._reserved - self._held[p]) for p in self._privileged if p != uid)

    def take(self, uid: int) -> bool:
        with self._lock:
            cap = self._total if uid in self._privileged else self._per_uid
            free = self._total - sum(self._held.values())
            if self._held[uid] >= cap or free <= self._owed(uid):
                return False
            self._held[uid] += 1
            return True

    def give_back(self, uid: int) -> None:
        with self._lock:
            self._held[uid] -= 1
            if self._held[uid] <= 0:
                del self._held[uid]

    def held(self) -> int:
        with self._lock:
            return sum(self._held.values())
