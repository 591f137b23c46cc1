"""`make soak`: the daemon under change, in two phases, one daemon throughout.

1. web-pair swaps: 10 minutes with a new web pair renamed into place every few seconds.
2. CA rotation: 2,000 times a new self-signed CA renamed into authorities/ and the previous one removed;
   each next rotation only once `/health` shows the new trust set (its CA in, the previous one out), so
   the pace is the daemon's own (quiet period, reconcile), never a fixed sleep.

Records RSS, open file descriptors and threads throughout, and writes them into docs/reliability.md
between the SOAK markers (swaps) and the ROTATION markers (rotations).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "benchmarks"))

from cryptography.hazmat.primitives import hashes  # noqa: E402
from run import http_get, machine, make_tree, web_fingerprint  # noqa: E402

from sslreconciler.pki.issue import cert_pem, generate_key, make_ca  # noqa: E402

BEGIN, END = "<!-- SOAK:BEGIN -->", "<!-- SOAK:END -->"
ROT_BEGIN, ROT_END = "<!-- ROTATION:BEGIN -->", "<!-- ROTATION:END -->"
WARM_UP = 200  # rotations before the level RSS is held to
SWAP_WARM_UP = 20  # swaps before the level the swaps' slope is measured from
FLAT_KIB = 1024  # the goal: RSS within 1 MiB of the post-warm-up level
SHOW_DEADLINE_S = 60.0  # generous: a rotation not shown by then counts as missed and the next one starts


def sample(pid: int) -> dict[str, int]:
    status = Path(f"/proc/{pid}/status").read_text()

    def field(name: str) -> int:
        return int(next(line.split()[1] for line in status.splitlines() if line.startswith(name + ":")))

    return {"rss_kib": field("VmRSS"), "threads": field("Threads"), "fds": len(os.listdir(f"/proc/{pid}/fd"))}


def swaps_phase(proc: subprocess.Popen, sock: Path, ssl_dir: Path, pairs: list, seconds: float, every: float) -> dict:
    first = sample(proc.pid)
    samples = [first]
    staging = ssl_dir / ".incoming"
    staging.mkdir(exist_ok=True)
    swaps = missed = 0
    t_end = time.monotonic() + seconds
    while time.monotonic() < t_end:
        k, c, fp = pairs[swaps % len(pairs)]
        (staging / "k").write_bytes(k)
        os.chmod(staging / "k", 0o600)
        (staging / "c").write_bytes(c)
        os.rename(staging / "k", ssl_dir / "ssl-web.key")
        os.rename(staging / "c", ssl_dir / "ssl-web.crt")
        swaps += 1
        time.sleep(every)
        if web_fingerprint(http_get(sock)) != fp:
            missed += 1
        samples.append(sample(proc.pid))
    doc = http_get(sock)
    warm = min(SWAP_WARM_UP, swaps // 2)  # samples[i] is after swap i
    rss = [s["rss_kib"] for s in samples[warm:]]
    slope = statistics.linear_regression(range(len(rss)), rss).slope if len(rss) > 1 else 0.0
    return {"seconds": seconds, "every": every, "swaps": swaps, "missed": missed, "first": first,
            "warm": warm, "level": samples[warm]["rss_kib"], "slope_kib_per_100": slope * 100,
            "last": sample(proc.pid), "max": {k: max(s[k] for s in samples) for k in first},
            "reconciles": doc["counts"]["reconciles"], "writes": doc["counts"]["writes"], "status": doc["status"]}


def trusted(sock: Path) -> set[str]:
    """The SHA-256 fingerprints of the CAs `/health` says are trusted."""
    return {ca["fingerprint"] for ca in http_get(sock).get("trust", {}).get("cas", [])}


def rotation_phase(proc: subprocess.Popen, sock: Path, ssl_dir: Path, rotations: int) -> dict:
    """``rotations`` times: a new self-signed CA in (renamed into place), the previous one out; wait until
    /health shows exactly that, then sample the daemon."""
    authorities, staging = ssl_dir / "authorities", ssl_dir / ".incoming"
    staging.mkdir(exist_ok=True)
    before = sample(proc.pid)
    reconciles0 = http_get(sock)["counts"]["reconciles"]
    samples: list[dict[str, int]] = []
    waits: list[float] = []
    previous: tuple[Path, str] | None = None
    missed = 0
    t0 = time.monotonic()
    for i in range(rotations):
        assert proc.poll() is None, "the daemon exited"
        ca = make_ca(f"rotating CA {i}", generate_key("ec-p256"))
        fp = ca.fingerprint(hashes.SHA256()).hex()
        (staging / "ca.crt").write_bytes(cert_pem(ca))
        path = authorities / f"rotating-{i}.crt"
        start = time.monotonic()
        os.rename(staging / "ca.crt", path)
        if previous is not None:
            os.unlink(previous[0])
        deadline = start + SHOW_DEADLINE_S
        while True:
            shown = trusted(sock)
            if fp in shown and (previous is None or previous[1] not in shown):
                break
            if time.monotonic() > deadline:
                missed += 1
                break
            time.sleep(0.01)
        waits.append(time.monotonic() - start)
        previous = (path, fp)
        samples.append(sample(proc.pid))
    elapsed = time.monotonic() - t0
    doc = http_get(sock)
    warm = min(WARM_UP, rotations // 2)
    level = samples[warm - 1]["rss_kib"] if warm else before["rss_kib"]
    after = samples[warm:]
    xs = list(range(warm, rotations))
    slope = statistics.linear_regression(xs, [s["rss_kib"] for s in after]).slope if len(after) > 1 else 0.0
    return {
        "rotations": rotations, "warm": warm, "missed": missed, "elapsed": elapsed,
        "median_wait": statistics.median(waits), "max_wait": max(waits),
        "before": before, "level": level, "last": samples[-1],
        "max": {k: max(s[k] for s in after or samples) for k in before},
        "min": {k: min(s[k] for s in after or samples) for k in before},
        "slope_kib_per_1000": slope * 1000,
        "reconciles": doc["counts"]["reconciles"] - reconciles0, "status": doc["status"],
    }


def soak(seconds: float, every: float, rotations: int) -> tuple[dict | None, dict | None]:
    work = Path(tempfile.mkdtemp(prefix="srsoak-", dir="/tmp"))
    try:
        # the CA and two peers in authorities/: each peer's chain gets a verdict keyed by the anchor set
        tree = make_tree(work, n_trust=3, host="soak.example.com", ca_type="rsa2048")
        ssl_dir = tree.ssl_dir
        pairs = tree.web_pairs(8)
        sock = work / "h.sock"
        (work / "s.toml").write_text(f'ssl_dir = "{ssl_dir}"\nstate_dir = "{work / "state"}"\n'
                                     f'desired_state = "{tree.desired}"\nsocket = "{sock}"\nlog_format = "json"\n')
        log = (work / "daemon.log").open("wb")
        proc = subprocess.Popen([sys.executable, "-m", "sslreconciler", "run", "--config", str(work / "s.toml")],
                                stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
        try:
            deadline = time.monotonic() + 60
            while not sock.exists():
                assert proc.poll() is None and time.monotonic() < deadline, "the daemon did not start"
                time.sleep(0.05)
            time.sleep(1.0)
            swapped = swaps_phase(proc, sock, ssl_dir, pairs, seconds, every) if seconds > 0 else None
            rotated = rotation_phase(proc, sock, ssl_dir, rotations) if rotations > 0 else None
            if rotated is not None:
                rotated["after"] = "right after the swaps above, same daemon" if swapped else "a fresh daemon"
        finally:
            proc.terminate()
            proc.wait(10)
            log.close()
        return swapped, rotated
    finally:
        shutil.rmtree(work, ignore_errors=True)


def render(r: dict) -> str:
    f, la, mx = r["first"], r["last"], r["max"]
    return f"""{BEGIN}
Written by `make soak` ({dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC) on {machine()}.

{r["seconds"] / 60:g} minutes, a new web pair renamed into place every {r["every"]:g} s: {r["swaps"]} swaps,
{r["reconciles"]} reconciles, {r["writes"]} store writes; {r["missed"]} swaps not yet visible in `/health`
{r["every"]:g} s later; final status `{r["status"]}`.

| | start | end | max |
|---|---|---|---|
| RSS | {f["rss_kib"] / 1024:.1f} MiB | {la["rss_kib"] / 1024:.1f} MiB | {mx["rss_kib"] / 1024:.1f} MiB |
| open file descriptors | {f["fds"]} | {la["fds"]} | {mx["fds"]} |
| threads | {f["threads"]} | {la["threads"]} | {mx["threads"]} |

RSS after the first {r["warm"]} swaps: {r["level"] / 1024:.1f} MiB; least-squares slope after them:
{r["slope_kib_per_100"]:+.1f} KiB per 100 swaps.
{END}"""


def mib(s: dict[str, int]) -> str:
    return f"{s['rss_kib'] / 1024:.2f} MiB"


def render_rotation(r: dict) -> str:
    b, la, mx, mn = r["before"], r["last"], r["max"], r["min"]
    above = mx["rss_kib"] - r["level"]
    met = "met" if above <= FLAT_KIB and r["rotations"] >= 2000 and not r["missed"] else "MISSED"
    if r["rotations"] < 2000:
        met += f" (only {r['rotations']} rotations: the goal is judged on 2,000)"
    return f"""{ROT_BEGIN}
Written by `make soak` ({dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC) on {machine()}, {r["after"]}.

{r["rotations"]} rotations in {r["elapsed"]:.0f} s ({r["rotations"] / r["elapsed"]:.2f} a second: each waits
until `/health` shows the new CA trusted and the previous one gone; median {r["median_wait"] * 1000:.0f} ms,
max {r["max_wait"] * 1000:.0f} ms), {r["reconciles"]} reconciles; {r["missed"]} not shown within
{SHOW_DEADLINE_S:g} s; final status `{r["status"]}`. Warm-up: the first {r["warm"]} rotations.

| | before | after warm-up | end | min / max after warm-up |
|---|---|---|---|---|
| RSS | {mib(b)} | {mib({"rss_kib": r["level"]})} | {mib(la)} | {mib(mn)} / {mib(mx)} |
| open file descriptors | {b["fds"]} | | {la["fds"]} | {mn["fds"]} / {mx["fds"]} |
| threads | {b["threads"]} | | {la["threads"]} | {mn["threads"]} / {mx["threads"]} |

RSS max - post-warm-up level: {above} KiB (goal ≤ {FLAT_KIB} KiB: **{met}**); least-squares slope after
warm-up: {r["slope_kib_per_1000"]:+.1f} KiB per 1,000 rotations.
{ROT_END}"""


def bounded(low: float, high: float, kind: type = float):
    def parse(text: str):
        value = kind(text)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{text} is outside {low:g}..{high:g}")
        return value

    return parse


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=bounded(0, 24 * 60), default=10.0,
                        help="length of the web-pair swap phase (default 10; 0 skips it)")
    parser.add_argument("--every", type=bounded(0.1, 600), default=3.0, help="seconds between swaps (default 3)")
    parser.add_argument("--rotations", type=bounded(0, 100_000, int), default=2000,
                        help="CA rotations in the second phase (default 2000; 0 skips it)")
    parser.add_argument("--no-write", action="store_true", help="print the figures, leave docs/reliability.md")
    args = parser.parse_args()
    swapped, rotated = soak(args.minutes * 60, args.every, args.rotations)
    doc = REPO / "docs" / "reliability.md"
    text = doc.read_text()
    for result, begin, end, block in (
        (swapped, BEGIN, END, render(swapped) if swapped else ""),
        (rotated, ROT_BEGIN, ROT_END, render_rotation(rotated) if rotated else ""),
    ):
        if result is None:
            continue
        text = re.sub(re.escape(begin) + ".*?" + re.escape(end), lambda _, b=block: b, text, flags=re.S)
        print(block)
    if not args.no_write:
        doc.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
