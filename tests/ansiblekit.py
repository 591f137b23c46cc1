"""Running the Ansible collection (ansible/) for real on this machine: its environment and where it is found."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from conftest import REPO

BIN = Path(sys.executable).parent
PLAYBOOKS = REPO / "ansible" / "playbooks"


def ansible_env(root: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SSLRECONCILER_") and k != "NOTIFY_SOCKET"}
    env.update(
        ANSIBLE_COLLECTIONS_PATH=str(root / "collections"),
        ANSIBLE_HOME=str(root / "ansible-home"),
        ANSIBLE_LOCAL_TEMP=str(root / "ansible-tmp"),
        ANSIBLE_REMOTE_TMP=str(root / "ansible-tmp"),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_RETRY_FILES_ENABLED="0",
        ANSIBLE_PYTHON_INTERPRETER=sys.executable,
        PATH=f"{BIN}:{env.get('PATH', '')}",
    )
    return env


def link_collection(root: Path) -> None:
    """The repository's collection as sipxpbx.sslreconciler under ``root``/collections."""
    collection = root / "collections" / "ansible_collections" / "sipxpbx"
    collection.mkdir(parents=True)
    (collection / "sslreconciler").symlink_to(REPO / "ansible")
