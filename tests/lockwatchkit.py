"""Watch a command's writer-lock sessions: at each moment it lets go of the ssl dir's lock, freeze it, take
the lock as another writer would, and copy the ssl dir as that writer finds it.

``python lockwatchkit.py SSL_DIR OUT_DIR -- COMMAND...`` starts COMMAND and, while it runs, waits on the
lock file with a blocking ``flock`` (the kernel wakes it the instant the holder closes its descriptor),
stops the command (SIGSTOP), takes the real writer lock through the product's own ``writer_lock``, copies
the ssl dir to ``OUT_DIR/release-N``, lets go and resumes the command. So each copy is what a writer
slipping in at that release would see, and the test can open the stores in it with keytool or openssl.
``OUT_DIR/watch.json``: the command's exit code and output, the releases copied, and ``missed``: releases
where the command had the lock again before it was stopped (then nothing could be seen of that gap).
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from sslreconciler.fsio import LOCK_NAME
from sslreconciler.rootread import opened_ssl_dir
from sslreconciler.writer_lock import try_lock_for_writing


def watch(ssl_dir: Path, out: Path, command: list[str]) -> dict[str, object]:
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "stdout", "wb") as stdout, open(out / "stderr", "wb") as stderr:
        proc = subprocess.Popen(command, stdout=stdout, stderr=stderr)
        released, missed = 0, 0
        while proc.poll() is None:
            try:
                fd = os.open(ssl_dir / LOCK_NAME, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
            except OSError:
                time.sleep(0.0002)  # nobody holds it: a lock file is there only while it is held
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)  # returns the instant the holder lets go
                if proc.poll() is not None:
                    break
                os.kill(proc.pid, signal.SIGSTOP)
            finally:
                os.close(fd)
            try:
                with opened_ssl_dir(ssl_dir) as dir_fd:
                    held = try_lock_for_writing(dir_fd, str(ssl_dir))
                    if held is None:  # the command had it again before it stopped: no gap seen here
                        missed += 1
                        continue
                    with held:
                        released += 1
                        shutil.copytree(
                            ssl_dir, out / f"release-{released}", symlinks=True,
                            ignore=shutil.ignore_patterns(".*"),  # the lock file and temp files
                        )
            finally:
                os.kill(proc.pid, signal.SIGCONT)
        rc = proc.wait()
    result = {"rc": rc, "released": released, "missed": missed,
              "out": (out / "stdout").read_text(), "err": (out / "stderr").read_text()}
    (out / "watch.json").write_text(json.dumps(result))
    return result


if __name__ == "__main__":
    split = sys.argv.index("--")
    watch(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[split + 1:])
