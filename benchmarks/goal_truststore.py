"""Issue 27's fair peer for a cold 10,000-certificate truststore with hash links.

Ours: a cold ``sslreconciler reconcile`` (new process, no state, no store, no links) that checks every
certificate, writes ``authorities.jks`` and one ``<hash>.0`` link per certificate in ``authorities/``.
The peer: ``benchmarks/java/TrustBuilder.java`` (one JVM reading each file whole into a JKS, checking
nothing) and then ``openssl rehash`` on the same directory, timed together as the peer's total. Peak RSS
is the largest single process of each side. ``TrustBuilder --unbuffered`` (a bare FileInputStream, a
system call per byte, the figure issue 15 started from) runs only when asked, as a history row.

Every run starts cold (truststore_ref.make_cold), the contestants rotated run by run; after the runs
both stores are compared entry by entry and both sides must have made one link per certificate.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

import floors
import truststore_ref as ref

# Runs the commands given as JSON argv lists one after the other; prints the wall time of each and of
# all, and the peak RSS of the largest child (RUSAGE_CHILDREN: this process has no other children).
_SEQUENCE = r"""
import json, resource, subprocess, sys, time
parts, t0 = [], time.perf_counter()
for argv in json.loads(sys.argv[1]):
    t = time.perf_counter()
    proc = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    parts.append(time.perf_counter() - t)
    if proc.returncode:
        print(json.dumps({"rc": proc.returncode, "err": proc.stderr.decode(errors="replace")[-2000:]})); sys.exit()
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"rc": 0, "s": time.perf_counter() - t0, "parts_s": parts, "peak_kib": usage.ru_maxrss,
                  "cpu_s": usage.ru_utime + usage.ru_stime}))
"""


def rehash_argv(tree: ref.Tree) -> list[str]:
    return ["openssl", "rehash", str(tree.sources)]


def contestant_argvs(who: str, tree: ref.Tree, classes: Path) -> list[list[str]]:
    if who == "sslreconciler":
        return [ref.reconcile_argv(tree)]
    return [ref.java_argv(tree, classes, unbuffered=who == "java-unbuffered"), rehash_argv(tree)]


def run_sequence(argvs: list[list[str]]) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-c", _SEQUENCE, json.dumps(argvs)],
        check=True,
        capture_output=True,
        text=True,
        env=ref._env(),
        cwd=ref.REPO,
        timeout=1800,
    ).stdout
    result: dict[str, Any] = json.loads(out)
    if result["rc"] != 0:
        raise RuntimeError(f"{argvs[0][:4]}... exited {result['rc']}: {result['err']}")
    return result


def hash_links(directory: Path) -> int:
    return sum(1 for e in os.scandir(directory) if e.is_symlink())


def compare(
    work: Path,
    n: int,
    shapes: tuple[str, ...] = ("cas",),
    runs: int = 3,
    unbuffered: bool = False,
    log: bool = True,
    profile: bool = False,
) -> list[dict[str, Any]]:
    """One row per shape: each contestant's median wall, CPU and peak RSS, and every run's wall."""
    classes = ref.compile_java(work / "java-classes")
    contestants = ["sslreconciler", "java+rehash"] + (["java-unbuffered"] if unbuffered else [])
    rows = []
    for shape in shapes:
        tree = ref.make_tree(work / shape, shape, n)
        results: dict[str, list[dict[str, Any]]] = {who: [] for who in contestants}
        for i in range(runs):
            for who in contestants[i % len(contestants) :] + contestants[: i % len(contestants)]:  # rotated
                ref.make_cold(tree)
                result = run_sequence(contestant_argvs(who, tree, classes))
                store = tree.ssl_dir / "authorities.jks" if who == "sslreconciler" else tree.root / "java.jks"
                assert ref.entry_count(store) == tree.files, f"{who}: not {tree.files} entries"
                links = hash_links(tree.sources)
                assert links == tree.files, f"{who}: {links} hash links, not {tree.files}"
                results[who].append(result)
                if log:
                    print(
                        f"#   {shape} {who:15} run {i + 1}: {result['s']:.2f} s (cpu {result['cpu_s']:.2f} s), "
                        f"{result['peak_kib'] / 1024:.0f} MiB",
                        file=sys.stderr,
                    )
        for who in ("sslreconciler", "java+rehash"):  # once more, untimed: both stores hold the same entries
            run_sequence(contestant_argvs(who, tree, classes)[:1])
        ref.same_entries(tree.ssl_dir / "authorities.jks", tree.root / "java.jks")
        row: dict[str, Any] = {"shape": shape, "files": tree.files}
        for who, rs in results.items():
            row[who] = {
                "runs_s": [r["s"] for r in rs],
                "cpu_s": statistics.median(r["cpu_s"] for r in rs),
                "peak_mib": statistics.median(r["peak_kib"] for r in rs) / 1024,
                "parts_s": [statistics.median(r["parts_s"][k] for r in rs) for k in range(len(rs[0]["parts_s"]))],
            }
        rows.append(row)
        if profile:
            ref.make_cold(tree)
            row["profile"] = floors.profile_top(ref.reconcile_argv(tree)[1:])
        ref.make_cold(tree)
    return rows
