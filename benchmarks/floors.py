"""The measured floors that `make bench` prints under a missed target: where a one-shot's time goes.

``oneshot_split``: one new process that imports, stage by stage, what `sslreconciler reconcile` imports,
then runs the command itself (the CLI's ``main``), timing each stage with ``perf_counter``: the libraries
(pydantic, cryptography), our settings and desired-state models (their schemas are built at import), our
reconcile modules, and the command's own work. Median of ``runs`` processes; the interpreter's own start
is the bare-interpreter row measured beside it.

``import_split``: ``python -X importtime`` of a command, the self time summed per top-level package
(ours per subpackage): what a command's imports cost beyond the bare interpreter's.
"""

from __future__ import annotations

import collections
import json
import os
import statistics
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

_STAGES = r"""
import json, sys, time
t = [time.perf_counter()]
names = []
def stage(name):
    t.append(time.perf_counter()); names.append(name)
import argparse, dataclasses, json, pathlib
stage("stdlib (argparse, pathlib, dataclasses, json)")
import sslreconciler.cli
getattr(sslreconciler.cli, "_no_plugin_loader", lambda: None)()  # as main() does, before pydantic loads
import sslreconciler.cli.app, sslreconciler.cli.reconcile_cmds
stage("our CLI parser modules")
import pydantic, pydantic.types, pydantic.json_schema
stage("pydantic (with pydantic-core)")
import sslreconciler.config.desired, sslreconciler.config.settings
stage("our settings and desired-state models (their schemas built)")
import cryptography.x509, cryptography.hazmat.primitives.serialization
stage("cryptography (x509, serialization)")
import sslreconciler.reconcile.reconciler
stage("our reconcile modules")
from sslreconciler.cli import main
code = main(sys.argv[1:])
stage("the command's own work (settings, desired state, reconcile, state file, report)")
print(json.dumps({"stages": names, "ms": [(b - a) * 1000 for a, b in zip(t, t[1:])], "code": code}))
"""


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SSLRECONCILER_")}
    env["PYTHONPATH"] = str(REPO / "src")
    env["PYDANTIC_DISABLE_PLUGINS"] = "__all__"  # as cli.main sets it before any model is imported
    return env


def oneshot_split(make_argv: Callable[[], list[str]], runs: int = 7) -> list[dict[str, object]]:
    """``make_argv()``: the command's arguments (``reconcile --ssl-dir ...``), called before each run to
    prepare its tree. Median ms per stage."""
    per: dict[str, list[float]] = collections.defaultdict(list)
    order: list[str] = []
    for _ in range(runs):
        out = subprocess.run(
            [sys.executable, "-c", _STAGES, *make_argv()],
            check=True,
            capture_output=True,
            text=True,
            env=_env(),
            cwd=REPO,
        ).stdout
        doc = json.loads(out.strip().splitlines()[-1])
        order = doc["stages"]
        for name, ms in zip(doc["stages"], doc["ms"], strict=True):
            per[name].append(ms)
    return [{"stage": name, "ms": statistics.median(per[name])} for name in order]


def _group(module: str) -> str:
    parts = module.split(".")
    if parts[0] == "sslreconciler":
        return ".".join(parts[:2])
    if parts[0] in ("pydantic", "pydantic_core", "annotated_types", "typing_inspection", "typing_extensions"):
        return "pydantic (with its dependencies)"
    if parts[0] in ("cryptography", "_cffi_backend"):
        return "cryptography"
    return "stdlib: " + parts[0]


def import_split(argv: list[str], runs: int = 5, top: int = 8) -> list[dict[str, object]]:
    """``python -X importtime ARGV...``: median self ms per group, the ``top`` largest."""
    per: dict[str, list[float]] = collections.defaultdict(list)
    for _ in range(runs):
        err = subprocess.run(
            [sys.executable, "-X", "importtime", *argv], capture_output=True, text=True, env=_env(), cwd=REPO
        ).stderr
        sums: collections.Counter[str] = collections.Counter()
        for line in err.splitlines():
            if not line.startswith("import time:") or "self [us]" in line:
                continue
            self_us, _cumulative, name = line[len("import time:") :].split("|")
            sums[_group(name.strip())] += int(self_us)
        for group, us in sums.items():
            per[group].append(us / 1000)
    rows = [{"group": g, "ms": statistics.median(v + [0.0] * (runs - len(v)))} for g, v in per.items()]
    rows.sort(key=lambda r: -float(r["ms"]))  # type: ignore[arg-type]
    total = sum(float(r["ms"]) for r in rows)  # type: ignore[arg-type]
    return [{"group": "all imports (importtime's own overhead included)", "ms": total}, *rows[:top]]


def profile_top(argv: list[str], top: int = 10) -> list[dict[str, object]]:
    """One run of ``python -m cProfile ARGV...``: the ``top`` functions by own time (ms, calls)."""
    import pstats
    import tempfile

    with tempfile.TemporaryDirectory(prefix="srbench-prof-") as tmp:
        out = Path(tmp) / "run.prof"
        subprocess.run(
            [sys.executable, "-m", "cProfile", "-o", str(out), *argv],
            check=True,
            env=_env(),
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=1800,
        )
        stats = pstats.Stats(str(out))
        rows = []
        for (filename, line, func), (_cc, calls, own, _cum, _callers) in stats.stats.items():  # type: ignore[attr-defined]
            where = f"{Path(filename).name}:{line}" if line else filename
            rows.append({"function": f"{func} ({where})", "ms": own * 1000, "calls": calls})
        rows.sort(key=lambda r: -float(r["ms"]))  # type: ignore[arg-type]
        total = sum(float(r["ms"]) for r in rows)  # type: ignore[arg-type]
        return [
            {"function": "everything (profiled, cProfile's overhead included)", "ms": total, "calls": 0},
            *rows[:top],
        ]
