"""The five statuses, worst last, and what each means to every reader: one table, not one per module.

``ok`` < ``warning`` < ``pending`` < ``degraded`` < ``failed``. ``/health`` answers 200 up to
``pending`` (the node serves what it has) and 503 beyond; ``status`` speaks monitoring-plugin codes;
``reconcile`` and ``check`` exit 1 for ``degraded`` and ``failed``. What lowers a node's status
besides its stores (a failed hook, an overdue ACME renewal) is the ``ESCALATIONS`` table below.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable


class Status(enum.StrEnum):
    OK = "ok"
    WARNING = "warning"
    PENDING = "pending"  # an error that is probably a copy in progress (the grace window)
    DEGRADED = "degraded"  # something is wrong; the last good stores are kept
    FAILED = "failed"  # a store could not be built at all, or the reconcile broke off

    @property
    def rank(self) -> int:
        return _ORDER.index(self)

    @property
    def http_code(self) -> int:
        """What ``GET /health`` answers."""
        return 200 if self.rank <= Status.PENDING.rank else 503

    @property
    def plugin_exit(self) -> int:
        """``sslreconciler status``: 0 OK, 1 WARNING, 2 CRITICAL (3 UNKNOWN is for no answer at all)."""
        return 0 if self is Status.OK else 1 if self.rank <= Status.PENDING.rank else 2

    @property
    def cli_exit(self) -> int:
        """``reconcile``, ``check``, ``web install`` ...: 0 fine or warnings only, 1 degraded or failed."""
        return 1 if self.rank >= Status.DEGRADED.rank else 0


_ORDER: tuple[Status, ...] = tuple(Status)
PLUGIN_UNKNOWN = 3
PLUGIN_LABELS = {0: "OK", 1: "WARNING", 2: "CRITICAL", PLUGIN_UNKNOWN: "UNKNOWN"}


def worst(statuses: Iterable[Status]) -> Status:
    return max(statuses, key=_ORDER.index, default=Status.OK)


def parse_status(value: object) -> Status | None:
    """A status read from outside (a health document); None when it is not one."""
    try:
        return Status(str(value))
    except ValueError:
        return None


class Escalation(enum.StrEnum):
    """Something beside the stores that lowers a node's status (the one report and the daemon's
    health document both ask this table)."""

    HOOK_FAILED = "hook failed"  # the stores are right, but a service may not have picked them up
    ACME_OVERDUE = "acme overdue"  # the web certificate is past its renewal point by a day and more
    ACME_RECORD_UNUSABLE = "acme record unusable"  # so nobody can tell whether renewals happen
    HOOK_RECORD_UNUSABLE = "hook record unusable"  # a one-shot's hook results cannot be believed or read


ESCALATIONS: dict[Escalation, Status] = {
    Escalation.HOOK_FAILED: Status.WARNING,
    Escalation.ACME_OVERDUE: Status.WARNING,
    Escalation.ACME_RECORD_UNUSABLE: Status.WARNING,
    Escalation.HOOK_RECORD_UNUSABLE: Status.WARNING,
}


def escalated(status: Status, escalations: Iterable[Escalation]) -> Status:
    """``status`` lowered by each escalation that applies."""
    return worst([status, *(ESCALATIONS[e] for e in escalations)])
