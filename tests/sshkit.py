"""A real SSH server for the fleet tests: Debian's openssh-server on 127.0.0.1, and a login user who becomes
root with sudo, the way Ansible reaches the nodes of a real cluster.

``ssh_login(client_dir)`` starts ``/usr/sbin/sshd -D -e -f CONFIG`` on a free port of 127.0.0.1 with a host
key, a config and a pid file of its own in a root-owned directory under /run (``StrictModes`` checks every
directory above the authorized keys, and /tmp is world-writable), ``UsePAM no``, public keys only, one
allowed user. That user is made here: a shell, an unlocked account (``*``, no password to guess), a 0700
home (Ansible's remote tmp, private), and NOPASSWD sudo through a file in /etc/sudoers.d. The client's
ed25519 key and known_hosts (the server's host key, checked strictly) are written to ``client_dir``.
Everything is undone on the way out, on failure too: the control masters Ansible left (ControlPersist),
sshd, the user's processes, the sudoers file, the user and their home, the server's directory.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

SSHD = "/usr/sbin/sshd"
SFTP_SERVER = "/usr/lib/openssh/sftp-server"


@dataclass(frozen=True)
class SshLogin:
    port: int
    user: pwd.struct_passwd
    key: Path  # the client's private key (ed25519)
    known_hosts: Path
    control_dir: Path  # ControlPersist sockets: short (AF_UNIX paths), removed at the end
    log: Path  # sshd's own log (-e)

    def ssh_argv(self) -> list[str]:
        """``ssh`` with the options Ansible is given below, for a command run by the test itself."""
        return ["ssh", "-p", str(self.port), "-i", str(self.key), *self._options(), f"{self.user.pw_name}@127.0.0.1"]

    def _options(self) -> list[str]:
        return ["-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
                "-o", f"UserKnownHostsFile={self.known_hosts}", "-o", "GlobalKnownHostsFile=/dev/null"]

    def ansible_env(self, env: dict[str, str]) -> None:
        """Ansible's ssh connection: host key checking on against our known_hosts, one multiplexed connection
        kept open between tasks (ControlPersist), modules through stdin (pipelining: no temp file per task)."""
        env.update(
            ANSIBLE_HOST_KEY_CHECKING="True",
            ANSIBLE_PIPELINING="1",
            ANSIBLE_SSH_ARGS=" ".join(["-C", "-o", "ControlMaster=auto", "-o", "ControlPersist=120s", *self._options()]),
            ANSIBLE_SSH_CONTROL_PATH_DIR=str(self.control_dir),
        )

    def host_vars(self, python: str) -> dict[str, object]:
        """The connection variables of one inventory host reached through this server."""
        return {
            "ansible_connection": "ssh",
            "ansible_host": "127.0.0.1",
            "ansible_port": self.port,
            "ansible_user": self.user.pw_name,
            "ansible_ssh_private_key_file": str(self.key),
            "ansible_become": True,
            "ansible_become_method": "sudo",
            "ansible_python_interpreter": python,
            # The login user's own, in a 0700 home: what Ansible copies over (a bundle) waits there for root.
            "ansible_remote_tmp": f"{self.user.pw_dir}/.ansible/tmp",
        }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run(*argv: str | Path, **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in argv], check=True, capture_output=True, text=True, timeout=60, **kw)  # type: ignore[call-overload]


def _processes_of(uid: int) -> list[int]:
    pids = []
    for status in Path("/proc").glob("[0-9]*/status"):
        with contextlib.suppress(OSError):
            for line in status.read_text().splitlines():
                if line.startswith("Uid:"):
                    if int(line.split()[1]) == uid:
                        pids.append(int(status.parent.name))
                    break
    return pids


def _wait(condition, timeout: float, what: str, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}"
                                 + (f"\nsshd log:\n{log.read_text()[-4000:]}" if log and log.exists() else ""))
        time.sleep(0.2)


@contextlib.contextmanager
def ssh_login(client_dir: Path, tag: str = "") -> Iterator[SshLogin]:
    if os.geteuid() != 0:
        pytest.skip("needs root: it starts sshd, makes a login user and gives it sudo")
    name = f"srssh{tag}{os.getpid() % 1_000_000}"
    server = Path(tempfile.mkdtemp(prefix="srssh-", dir="/run"))
    control_dir = Path(tempfile.mkdtemp(prefix="srcp-", dir="/tmp"))
    sudoers = Path("/etc/sudoers.d") / f"srssh-{name}"
    sshd: subprocess.Popen[bytes] | None = None
    made_user = False
    try:
        server.chmod(0o755)
        _run("useradd", "--create-home", "--shell", "/bin/bash", "--user-group", name)
        made_user = True
        _run("usermod", "--password", "*", name)  # unlocked, with no password: only the key logs in
        user = pwd.getpwnam(name)
        Path(user.pw_dir).chmod(0o700)

        client_dir.mkdir(parents=True, exist_ok=True)
        key = client_dir / "id_ed25519"
        _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"{name}-test", "-f", key)
        keys = server / "authorized_keys"
        keys.mkdir(mode=0o755)
        (keys / name).write_text(key.with_suffix(".pub").read_text())
        (keys / name).chmod(0o644)
        host_key = server / "ssh_host_ed25519_key"
        _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "test-host", "-f", host_key)

        sudoers.write_text(f"{name} ALL=(root) NOPASSWD: ALL\n")
        sudoers.chmod(0o440)
        _run("visudo", "-c", "-q", "-f", sudoers)

        privsep = Path("/run/sshd")  # sshd's privilege separation directory (the package's tmpfiles.d makes it)
        if not privsep.is_dir():
            privsep.mkdir(mode=0o755, exist_ok=True)

        port = _free_port()
        config = server / "sshd_config"
        config.write_text(
            f"Port {port}\nListenAddress 127.0.0.1\nHostKey {host_key}\nPidFile {server / 'sshd.pid'}\n"
            f"AuthorizedKeysFile {keys}/%u\nUsePAM no\nStrictModes yes\nPubkeyAuthentication yes\n"
            "PasswordAuthentication no\nKbdInteractiveAuthentication no\nPermitRootLogin no\n"
            f"AllowUsers {name}\nMaxSessions 50\nMaxStartups 50:30:100\nLogLevel VERBOSE\n"
            f"Subsystem sftp {SFTP_SERVER}\n"
        )
        _run(SSHD, "-t", "-f", config)
        known_hosts = client_dir / "known_hosts"
        known_hosts.write_text(f"[127.0.0.1]:{port} {' '.join(host_key.with_suffix('.pub').read_text().split()[:2])}\n")
        log = client_dir / "sshd.log"
        with log.open("wb") as out:
            sshd = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        login = SshLogin(port, user, key, known_hosts, control_dir, log)

        def logs_in() -> bool:
            assert sshd is not None and sshd.poll() is None, f"sshd exited:\n{log.read_text()[-4000:]}"
            proc = subprocess.run([*login.ssh_argv(), "sudo", "-n", "id", "-u"], capture_output=True, text=True,
                                  timeout=60)
            return proc.returncode == 0 and proc.stdout.strip() == "0"

        _wait(logs_in, 60, f"{name} to log in on 127.0.0.1:{port} and become root", log)
        yield login
    finally:
        for control in control_dir.iterdir():  # the ControlPersist masters of the ssh clients Ansible ran
            subprocess.run(["ssh", "-o", f"ControlPath={control}", "-O", "exit", "x"], capture_output=True,
                           timeout=30)
        if sshd is not None:
            sshd.terminate()
            sshd.wait(timeout=30)
        if made_user:
            uid = pwd.getpwnam(name).pw_uid
            with contextlib.suppress(AssertionError):
                _wait(lambda: not _processes_of(uid), 30, f"{name}'s sessions to end")
            for pid in _processes_of(uid):  # only this test's user: every one of its processes is ours
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        sudoers.unlink(missing_ok=True)
        if made_user:
            subprocess.run(["userdel", "--remove", name], capture_output=True, timeout=60)
        shutil.rmtree(server, ignore_errors=True)
        shutil.rmtree(control_dir, ignore_errors=True)
