"""Hash links made in place (fsio.new_symlink_at, execute's MakeLink with fresh=True): one symlinkat where
observe saw the name free; whatever took the name since is never written through or replaced unless it is a
symlink; the owner is the directory's for root in another user's directory, as for every file written there."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sslreconciler.fsio import new_symlink_at, owner_for_new_files
from sslreconciler.reconcile.execute import execute
from sslreconciler.reconcile.steps import MakeLink, StepFailed


@pytest.fixture
def link_dir(tmp_path: Path) -> Path:
    d = tmp_path / "ssl" / "authorities"
    d.mkdir(parents=True)
    return d


def make_link(link_dir: Path) -> None:
    """abcd1234.0 -> ca.crt made through the directory's descriptor, as execute makes it."""
    fd = os.open(link_dir, os.O_RDONLY | os.O_DIRECTORY)
    try:
        new_symlink_at(fd, "abcd1234.0", "ca.crt", (None, None))
    finally:
        os.close(fd)


def test_a_free_name_gets_the_link(link_dir: Path) -> None:
    make_link(link_dir)
    assert os.readlink(link_dir / "abcd1234.0") == "ca.crt"
    assert not [p for p in link_dir.iterdir() if p.name != "abcd1234.0"], "a temp entry was left"


@pytest.mark.parametrize("in_the_way", ["file", "directory", "fifo"])
def test_something_that_took_the_name_is_left_alone(link_dir: Path, in_the_way: str) -> None:
    """A file that appeared between observe and execute: the step fails (link-failed), the file is untouched."""
    target = link_dir / "abcd1234.0"
    if in_the_way == "file":
        target.write_bytes(b"not yours")
    elif in_the_way == "directory":
        target.mkdir()
    else:
        os.mkfifo(target)
    before = target.lstat()
    ssl_fd = os.open(link_dir.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        failures = execute(ssl_fd, [MakeLink("authorities", "abcd1234.0", "ca.crt", fresh=True)], ("authorities",))
    finally:
        os.close(ssl_fd)
    assert [type(f) for f in failures] == [StepFailed] and "exists" in failures[0].reason.lower(), failures
    after = target.lstat()
    assert (after.st_ino, after.st_mode, after.st_mtime_ns) == (before.st_ino, before.st_mode, before.st_mtime_ns)
    if in_the_way == "file":
        assert target.read_bytes() == b"not yours"


def test_a_link_that_took_the_name_is_replaced_in_one_rename(link_dir: Path) -> None:
    (link_dir / "abcd1234.0").symlink_to("/etc/passwd")
    make_link(link_dir)
    assert os.readlink(link_dir / "abcd1234.0") == "ca.crt"
    assert [p.name for p in link_dir.iterdir()] == ["abcd1234.0"]
    assert Path("/etc/passwd").exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="root writing in another user's directory")
def test_root_in_the_service_users_directory_leaves_the_link_to_that_user(link_dir: Path) -> None:
    os.chown(link_dir, 4321, 4322)
    fd = os.open(link_dir, os.O_RDONLY | os.O_DIRECTORY)
    try:
        assert owner_for_new_files(fd) == (4321, 4322)
        new_symlink_at(fd, "abcd1234.0", "ca.crt", owner_for_new_files(fd))
    finally:
        os.close(fd)
    st = (link_dir / "abcd1234.0").lstat()
    assert (st.st_uid, st.st_gid) == (4321, 4322)

