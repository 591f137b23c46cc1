"""Root's plays never act, through what the service user owns, on other files.

The service user owns the ssl dir and the state dir (/var/lib/sslreconciler, sipx:sipx 0700 under systemd).
Each test runs the real roles through ansible-playbook as root (one local node that is also the master) on
directories a throwaway user owns, with that user doing what an attacker would: a link where the role makes
a directory, a wheel swapped between its copy and its install, a link where the node's bundle goes.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import pwd
import signal
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from ansiblekit import OneNode
from userkit import as_user, run_as


@pytest.fixture
def site(world: Path, service_user: pwd.struct_passwd) -> Iterator[OneNode]:
    s = OneNode(world, service_user)
    yield s
    s.stop()


def _ok(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
    return proc.stdout + proc.stderr


def _ours(site: OneNode, prefix: str) -> set[str]:
    """What the plays left under ``prefix`` in the node's own temp dir (ansiblekit.ansible_env's TMPDIR)."""
    return {p.name for p in Path(site.env["TMPDIR"]).iterdir() if p.name.startswith(prefix)}


# -- A: authorities/ is made and handed over, never through a link ---------------------------------------

@pytest.mark.slow
def test_install_role_never_follows_a_link_at_authorities(site: OneNode, service_user: pwd.struct_passwd) -> None:
    victim = site.root / "victimdir"  # a root directory the service user wants
    victim.mkdir(mode=0o755)
    (victim / "kept").write_text("root's\n")
    run_as(service_user, f"import os; os.symlink({str(victim)!r}, {str(site.ssl / 'authorities')!r})")
    proc = site.play("install.yml")
    st = victim.stat()
    assert (st.st_uid, st.st_gid, oct(st.st_mode & 0o7777)) == (0, 0, "0o755"), (
        f"the play handed {victim} (through the link {site.ssl}/authorities) to uid {st.st_uid}")
    assert proc.returncode != 0, "the play went on past a link at authorities/"
    out = proc.stdout + proc.stderr
    assert f"{site.ssl}/authorities" in out and "symbolic link" in out, out[-4000:]
    assert os.readlink(site.ssl / "authorities") == str(victim)  # the user's link is left as it is


@pytest.mark.slow
def test_install_role_refuses_a_file_at_authorities_and_hands_over_a_real_directory(
        site: OneNode, service_user: pwd.struct_passwd) -> None:
    (site.ssl / "authorities").write_text("not a directory\n")
    proc = site.play("install.yml")
    assert proc.returncode != 0 and "not a directory" in proc.stdout, proc.stdout[-4000:]
    (site.ssl / "authorities").unlink()
    (site.ssl / "authorities").mkdir(mode=0o700)  # root's, as an older install-bundle left it
    _ok(site.play("install.yml"))
    st = (site.ssl / "authorities").lstat()
    assert (st.st_uid, st.st_gid, oct(st.st_mode & 0o7777)) == (service_user.pw_uid, service_user.pw_gid, "0o755")


# -- B: root installs the wheel it copied, from a directory only root can write --------------------------

def _wheel(path: Path, module: str) -> Path:
    """A tiny wheel of sslreconciler 0.0.1 holding the one module ``module`` (no dependencies)."""
    dist = "sslreconciler-0.0.1.dist-info"
    files = {
        f"{module}.py": b"MARK = True\n",
        f"{dist}/METADATA": b"Metadata-Version: 2.1\nName: sslreconciler\nVersion: 0.0.1\n",
        f"{dist}/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = "".join(
        f"{name},sha256={base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b'=').decode()},{len(data)}\n"
        for name, data in files.items()) + f"{dist}/RECORD,,\n"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
        zf.writestr(f"{dist}/RECORD", record)
    path.write_bytes(buf.getvalue())
    return path


SWAPPER = """
import os, sys, time
state, evil = sys.argv[1], open(sys.argv[2], 'rb').read()
while True:  # every wheel root leaves in the state dir becomes the attacker's, as soon as it is there
    for name in os.listdir(state):
        path = os.path.join(state, name)
        if name.endswith('.whl') and not name.startswith('.'):
            try:
                with open(path, 'rb') as f:
                    if f.read() == evil:
                        continue
            except OSError:
                continue
            with open(os.path.join(state, '.evil'), 'wb') as f:
                f.write(evil)
            os.rename(os.path.join(state, '.evil'), path)
            print('swapped', name, flush=True)
    time.sleep(0.002)
"""


@pytest.mark.slow
def test_the_wheel_root_installs_is_the_one_it_copied(site: OneNode, service_user: pwd.struct_passwd) -> None:
    controller = site.root / "controller"
    controller.mkdir(mode=0o700)
    good = _wheel(controller / "sslreconciler-0.0.1-py3-none-any.whl", "srt_good_marker")
    evil = _wheel(site.root / "evil.whl", "srt_evil_marker")
    os.chown(evil, service_user.pw_uid, service_user.pw_gid)
    before = _ours(site, "sslreconciler-install")
    swapper = subprocess.Popen(as_user(service_user, sys.executable, "-c", SWAPPER, site.state, evil),
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        proc = site.play("install.yml", sslreconciler_install_method="wheel", sslreconciler_wheel=str(good),
                         sslreconciler_venv=str(site.root / "venv"), sslreconciler_python=sys.executable)
    finally:
        os.kill(swapper.pid, signal.SIGKILL)
        swapped = swapper.communicate(timeout=60)[0]
    _ok(proc)
    installed = {p.name for p in (site.root / "venv").glob("lib/python*/site-packages/srt_*_marker.py")}
    assert installed == {"srt_good_marker.py"}, f"root installed {installed} (the service user's swaps: {swapped!r})"
    assert not list(site.state.glob("*.whl")), "the wheel was put where the service user can change it"
    assert _ours(site, "sslreconciler-install") == before, "the wheel's private directory was left behind"


# -- C: the node's copy of the bundle is in root's own directory -----------------------------------------

@pytest.mark.slow
def test_rollout_never_touches_what_the_service_user_put_where_the_bundle_went(
        site: OneNode, service_user: pwd.struct_passwd) -> None:
    target = site.root / "root-file"  # a root file the service user would like to change
    target.write_text("root's, 0644\n")
    target.chmod(0o644)
    planted = site.state / "incoming.bundle.tgz"
    run_as(service_user, f"import os; os.symlink({str(target)!r}, {str(planted)!r})")
    _ok(site.play("install.yml"))
    before = _ours(site, "sslreconciler-bundle")
    _ok(site.play("rollout.yml"))
    st = target.stat()
    assert (oct(st.st_mode & 0o7777), st.st_uid, target.read_text()) == ("0o644", 0, "root's, 0644\n"), (
        f"the play changed {target} through the link {planted}: mode {oct(st.st_mode & 0o7777)}")
    assert os.readlink(planted) == str(target), "root acted on the service user's state dir"
    assert (site.ssl / "ssl.keystore").exists()  # install-bundle read the bundle from root's directory
    assert _ours(site, "sslreconciler-bundle") == before, "the node's copy of the bundle (a private key) was left behind"
