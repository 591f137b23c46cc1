"""The desired state the daemon works to: re-read on a change, a resync or SIGHUP; on trouble the
last valid one is kept and the trouble becomes a finding (``problem``) in every report. A new one is
logged in one line naming what changed (``changes``: pure, table-tested)."""

from __future__ import annotations

from pathlib import Path

from sslreconciler.config.desired import DesiredState, load_desired_state
from sslreconciler.daemon.logs import get_logger
from sslreconciler.model.errors import ConfigError
from sslreconciler.model.findings import Finding, FindingCode, error, warning


class DesiredStateFile:
    def __init__(self, path: Path) -> None:
        self.desired: DesiredState = load_desired_state(path)  # at start, trouble is fatal
        self._seen = path.exists()
        self.problem: Finding | None = None

    def hook_labels(self) -> frozenset[str]:
        return frozenset(h.label for h in self.desired.hooks)

    def read(self, path: Path, explicit: bool) -> bool:
        """Re-read ``path`` (it moves with a reload); True when the desired state changed. A file that
        is gone keeps the last one read, unless the re-read is ``explicit`` (SIGHUP: the seed defaults)."""
        exists = path.exists()
        if not exists and self._seen and not explicit:
            self.problem = warning(
                str(path), "is gone; keeping the last one read (SIGHUP: seed defaults)", FindingCode.DESIRED_STATE
            )
            return False
        try:
            desired = load_desired_state(path)
        except ConfigError as exc:
            self.problem = error(
                str(path),
                f"is invalid, keeping the last valid one: {exc.reason}"
                + (f" (field {exc.field})" if exc.field else ""),
                FindingCode.DESIRED_STATE,
            )
            return False
        self.problem = None
        self._seen = exists
        if desired == self.desired:
            return False
        get_logger().info(f"desired state reloaded: {changes(self.desired, desired)}", file=str(path))
        self.desired = desired
        return True


_NAMED = ("pairs", "hooks", "policy", "acme")  # the fields ``changes`` names in its own words


def _by_name(old: dict[str, object], new: dict[str, object], quote: bool = False) -> list[str]:
    def q(n: str) -> str:  # repr: quoted, control characters escaped, so a name cannot fake or split the list
        return repr(n) if quote else n

    return (
        [f"+{q(n)}" for n in new if n not in old]
        + [f"-{q(n)}" for n in old if n not in new]
        + [f"~{q(n)}" for n in new if n in old and new[n] != old[n]]
    )


def changes(old: DesiredState, new: DesiredState) -> str:
    """What differs from ``old`` to ``new``, in words: ``pairs +x ~y, outputs -a.jks, hooks +'reload-apache',
    policy changed, acme removed`` (+ added, - removed, ~ changed), then any other field by name."""
    parts = []
    pairs = _by_name({p.name: p for p in old.pairs}, {p.name: p for p in new.pairs})
    outputs_old, outputs_new = old.output_files(), new.output_files()
    outputs = [f"+{o}" for o in outputs_new if o not in outputs_old] + [
        f"-{o}" for o in outputs_old if o not in outputs_new
    ]
    hooks = _by_name({h.label: h for h in old.hooks}, {h.label: h for h in new.hooks}, quote=True)
    for what, items in (("pairs", pairs), ("outputs", outputs), ("hooks", hooks)):
        if items:
            parts.append(f"{what} {' '.join(items)}")
    if old.policy != new.policy:
        parts.append("policy changed")
    if old.acme != new.acme:
        parts.append("acme " + ("added" if old.acme is None else "removed" if new.acme is None else "changed"))
    others = [f for f in type(new).model_fields if f not in _NAMED and getattr(old, f) != getattr(new, f)]
    if others:
        parts.append("also " + " ".join(others))
    return ", ".join(parts) or "no difference in what it asks for"
