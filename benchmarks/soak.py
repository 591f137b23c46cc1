"""`make soak`: the daemon for 10 minutes with a certificate swap every few seconds.

Records RSS, open file descriptors and threads at the start and the end (and the extremes), and
writes them into docs/reliability.md between the SOAK markers.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "benchmarks"))

from run import http_get, machine, make_tree, web_fingerprint  # noqa: E402

BEGIN, END = "<!-- SOAK:BEGIN -->", "<!-- SOAK:END -->"


def sample(pid: int) -> dict[str, int]:
    status = Path(f"/proc/{pid}/status").read_text()

    def field(name: str) -> int:
        return int(next(line.split()[1] for line in status.splitlines() if line.startswith(name + ":")))

    return {"rss_kib": field("VmRSS"), "threads": field("Threads"), "fds": len(os.listdir(f"/proc/{pid}/fd"))}


def soak(seconds: float, every: float) -> dict:
    work = Path(tempfile.mkdtemp(prefix="srsoak-", dir="/tmp"))
    try:
        tree = make_tree(work, host="soak.example.com", ca_type="rsa2048")
        ssl_dir = tree.ssl_dir
        pairs = tree.web_pairs(8)
        sock = work / "h.sock"
        (work / "s.toml").write_text(f'ssl_dir = "{ssl_dir}"\nstate_dir = "{work / "state"}"\n'
                                     f'desired_state = "{tree.desired}"\nsocket = "{sock}"\nlog_format = "json"\n')
        log = (work / "daemon.log").open("wb")
        proc = subprocess.Popen([sys.executable, "-m", "sslreconciler", "run", "--config", str(work / "s.toml")],
                                stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
        try:
            while not sock.exists():
                assert proc.poll() is None
                time.sleep(0.05)
            time.sleep(1.0)
            first = sample(proc.pid)
            samples = [first]
            staging = ssl_dir / ".incoming"
            staging.mkdir()
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
            last = sample(proc.pid)
            doc = http_get(sock)
        finally:
            proc.terminate()
            proc.wait(10)
            log.close()
        return {"seconds": seconds, "every": every, "swaps": swaps, "missed": missed, "first": first, "last": last,
                "max": {k: max(s[k] for s in samples) for k in first}, "reconciles": doc["counts"]["reconciles"],
                "writes": doc["counts"]["writes"], "status": doc["status"]}
    finally:
        shutil.rmtree(work, ignore_errors=True)


def render(r: dict) -> str:
    f, la, mx = r["first"], r["last"], r["max"]
    return f"""{BEGIN}
Written by `make soak` ({dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC) on {machine()}.

{r["seconds"] / 60:.0f} minutes, a new web pair renamed into place every {r["every"]:g} s: {r["swaps"]} swaps,
{r["reconciles"]} reconciles, {r["writes"]} store writes; {r["missed"]} swaps not yet visible in `/health`
{r["every"]:g} s later; final status `{r["status"]}`.

| | start | end | max |
|---|---|---|---|
| RSS | {f["rss_kib"] / 1024:.1f} MiB | {la["rss_kib"] / 1024:.1f} MiB | {mx["rss_kib"] / 1024:.1f} MiB |
| open file descriptors | {f["fds"]} | {la["fds"]} | {mx["fds"]} |
| threads | {f["threads"]} | {la["threads"]} | {mx["threads"]} |
{END}"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--every", type=float, default=3.0)
    args = parser.parse_args()
    result = soak(args.minutes * 60, args.every)
    block = render(result)
    doc = REPO / "docs" / "reliability.md"
    text = doc.read_text()
    doc.write_text(re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), lambda _: block, text, flags=re.S))
    print(block)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
