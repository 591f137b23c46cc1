"""Run the repository's Ansible collection (ansible/) with this venv's ansible-core, isolated from the
machine's own Ansible settings."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import importlib.metadata as md
import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

from packaging.requirements import Requirement

from conftest import REPO

BIN = Path(sys.executable).parent
PLAYBOOKS = REPO / "ansible" / "playbooks"


def ansible_env(root: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SSLRECONCILER_") and k != "NOTIFY_SOCKET"}
    # The modules' temp files (the wheel's and the bundle's private dirs) in a /tmp of this test's own: a
    # test that looks for what a play left behind sees only its own, whatever runs beside it.
    tmp = root / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    tmp.chmod(0o1777)
    env.update(
        TMPDIR=str(tmp),
        ANSIBLE_COLLECTIONS_PATH=str(root / "collections"),
        ANSIBLE_HOME=str(root / "ansible-home"),
        ANSIBLE_LOCAL_TEMP=str(root / "ansible-tmp"),
        ANSIBLE_REMOTE_TMP=str(root / "ansible-tmp"),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_RETRY_FILES_ENABLED="0",
        ANSIBLE_PYTHON_INTERPRETER=sys.executable,
        ANSIBLE_PIPELINING="1",  # a module's code through stdin: no temp file, chmod and rm per task
        PATH=f"{BIN}:{env.get('PATH', '')}",
    )
    return env


def link_collection(root: Path) -> None:
    """ansible/ as the collection sipxpbx.sslreconciler under ``root``/collections."""
    collection = root / "collections" / "ansible_collections" / "sipxpbx"
    collection.mkdir(parents=True)
    (collection / "sslreconciler").symlink_to(REPO / "ansible")


@contextlib.contextmanager
def step(name: str, timings: dict[str, float]) -> Iterator[None]:
    """One step of a fleet's life inside one test: a failure names its step; ``timings`` gets its seconds."""
    started = time.monotonic()
    try:
        yield
    except AssertionError as e:
        raise AssertionError(f"[step: {name}] {e}") from e
    except Exception as e:
        e.add_note(f"[step: {name}]")
        raise
    finally:
        timings[name] = time.monotonic() - started


def timed_play(
    inventory: Path, env: dict[str, str], plays: list[tuple[str, float]], name: str, *extra: str, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """``ansible-playbook -i inventory PLAYBOOKS/name extra``; its seconds appended to ``plays``; with
    ``check``, a non-zero exit fails with the tail of its output."""
    started = time.monotonic()
    proc = subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", str(inventory), str(PLAYBOOKS / name), *extra],
        capture_output=True, text=True, env=env, timeout=1200,
    )
    plays.append((" ".join([name, *extra]), time.monotonic() - started))
    if check:
        assert proc.returncode == 0, f"{name}: rc {proc.returncode}\n{proc.stdout[-8000:]}\n{proc.stderr[-4000:]}"
    return proc


NODE = "node1.example.com"


class OneNode:
    """One node, also the master, driven locally by the real playbooks as root (`background` daemon, no
    systemd). With ``user`` (the service user, as sipx under the unit), its ssl dir (0755) and state dir
    (0700) are that user's; ``group`` is ``sslreconciler_service_group``."""

    def __init__(self, root: Path, user: pwd.struct_passwd | None = None, group: str | None = None) -> None:
        self.root, self.group = root, group
        self.ssl, self.state, self.root_state = root / "ssl", root / "state", root / "root-state"
        self.desired = root / "etc" / "desired-state.json"
        self.staging, self.bundles = root / "staging", root / "controller-bundles"
        self.inventory = root / "inventory.json"
        self.sockets = Path(tempfile.mkdtemp(prefix="sra-", dir="/tmp"))  # AF_UNIX paths stay short
        if user is not None:
            for path, mode in ((self.ssl, 0o755), (self.state, 0o700)):
                path.mkdir(mode=mode)
                path.chmod(mode)
                os.chown(path, user.pw_uid, user.pw_gid)
        self.env = ansible_env(root / "ansible")
        self.env.update(PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1")  # local wheels only
        link_collection(root / "ansible")

    def play(self, playbook: str, *options: str, **more: object) -> subprocess.CompletedProcess[str]:
        """``ansible-playbook`` with ``options`` on this node; ``more``: host variables over the defaults."""
        host_vars: dict[str, object] = {
            "ansible_connection": "local",
            "ansible_python_interpreter": sys.executable,
            "sslreconciler_install_method": "none",
            "sslreconciler_bin": str(BIN / "sslreconciler"),
            "sslreconciler_service_manager": "background",
            "sslreconciler_ssl_dir": str(self.ssl),
            "sslreconciler_state_dir": str(self.state),
            "sslreconciler_root_state_dir": str(self.root_state),
            "sslreconciler_config": str(self.root / "etc" / "sslreconciler.toml"),
            "sslreconciler_desired_state_file": str(self.desired),
            "sslreconciler_socket": str(self.sockets / "health.sock"),
            "sslreconciler_settings": {"log_format": "json"},
            "sslreconciler_staging": str(self.staging),
            "sslreconciler_ca_name": "ca.node1.example.com",
            "sslreconciler_bundle_dir": str(self.bundles),
            "sslreconciler_health_timeout": 240,
            **({"sslreconciler_service_group": self.group} if self.group else {}),
            **more,
        }
        self.inventory.write_text(json.dumps({"all": {"children": {
            "sslreconciler_master": {"hosts": {NODE: {}}},
            "sslreconciler_nodes": {"hosts": {NODE: host_vars}}}}}))
        return subprocess.run([str(BIN / "ansible-playbook"), "-i", str(self.inventory), str(PLAYBOOKS / playbook),
                               *options], capture_output=True, text=True, env=self.env, timeout=900)

    def stop(self) -> None:
        """The daemon the install role started in the background, if it did."""
        with contextlib.suppress(OSError, ValueError):
            os.kill(int((self.state / "daemon.pid").read_text()), signal.SIGTERM)
        shutil.rmtree(self.sockets, ignore_errors=True)


def wheelhouse(dest: Path, project: str = "sslreconciler") -> Path:
    """``project``'s dependencies as wheels, repacked from what this venv has installed (each file its RECORD
    lists, with a RECORD of their hashes): ``pip install --no-index --find-links dest`` installs them
    without asking an index or the network."""
    dest.mkdir(parents=True, exist_ok=True)
    seen: set[str] = {project}
    todo = [project]
    while todo:
        for text in md.requires(todo.pop()) or []:
            req = Requirement(text)
            if (req.marker is None or req.marker.evaluate({"extra": ""})) and req.name.lower() not in seen:
                seen.add(req.name.lower())
                todo.append(req.name)
                _repack(md.distribution(req.name), dest)
    return dest


def _repack(dist: md.Distribution, dest: Path) -> None:
    files = [f for f in dist.files or [] if not str(f).startswith("..") and "__pycache__" not in f.parts]
    info = next(f.parts[0] for f in files if f.parts[0].endswith(".dist-info"))
    tags = [line.split(":", 1)[1].strip() for line in (dist.read_text("WHEEL") or "").splitlines()
            if line.startswith("Tag:")]
    parts = [".".join(dict.fromkeys(t.split("-")[i] for t in tags)) for i in range(3)]
    name = f"{info.removesuffix('.dist-info')}-{'-'.join(parts)}.whl"
    skip = {f"{info}/{n}" for n in ("RECORD", "INSTALLER", "REQUESTED", "direct_url.json")}
    record = []
    with zipfile.ZipFile(dest / name, "w", zipfile.ZIP_DEFLATED) as whl:
        for f in files:
            if str(f) in skip:
                continue
            data = Path(dist.locate_file(f)).read_bytes()
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            whl.writestr(str(f), data)
            record.append(f"{f},sha256={digest},{len(data)}")
        whl.writestr(f"{info}/RECORD", "\n".join([*record, f"{info}/RECORD,,"]) + "\n")
