"""A directory inside a directory another user owns, made when missing and handed to that directory's owner,
never through a link: everything happens on descriptors (no check-then-act on names), so that owner cannot
turn root's chown and chmod against a directory elsewhere by putting a symlink where the directory goes."""

from __future__ import annotations

import errno
import os
import stat

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
module: owned_subdir
short_description: A real directory in a directory another user owns, that owner's
description:
  - Opens O(parent), makes O(name) in it when missing, opens O(name) without following a link (O_NOFOLLOW,
    relative to the parent's descriptor), then gives it the parent's owner and group and O(mode) on that
    descriptor.
  - Fails, naming the path, when O(name) is a symbolic link or not a directory; changes nothing then.
options:
  parent:
    description: The directory (its path is root's configuration, e.g. the ssl dir).
    type: path
    required: true
  name:
    description: One path component inside O(parent).
    type: str
    required: true
  mode:
    description: The directory's mode, octal.
    type: str
    default: "0755"
"""

_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC


def _open_child(module: AnsibleModule, parent_fd: int, name: str, path: str) -> int:
    try:
        return os.open(name, _DIR | os.O_NOFOLLOW, dir_fd=parent_fd)
    except FileNotFoundError:
        raise  # check mode: it would be made
    except OSError as exc:
        why = exc.strerror
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):  # O_DIRECTORY|O_NOFOLLOW says ENOTDIR for a link too
            try:
                link = stat.S_ISLNK(os.stat(name, dir_fd=parent_fd, follow_symlinks=False).st_mode)
            except OSError:  # changed again meanwhile: refused all the same
                link = False
            why = "is a symbolic link" if link else "is not a directory"
        module.fail_json(msg=f"{path}: {why}; refusing to follow or change it (make it a real directory)")
        raise  # not reached: fail_json exits


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "parent": {"type": "path", "required": True},
            "name": {"type": "str", "required": True},
            "mode": {"type": "str", "default": "0755"},
        },
        supports_check_mode=True,
    )
    parent, name = module.params["parent"], module.params["name"]
    path = os.path.join(parent, name)
    if name in ("", ".", "..") or "/" in name:
        module.fail_json(msg=f"{name!r}: not one path component")
    try:
        mode = int(module.params["mode"], 8)
    except ValueError:
        module.fail_json(msg=f"mode {module.params['mode']!r} is not octal")
    try:
        parent_fd = os.open(parent, _DIR)
    except OSError as exc:
        module.fail_json(msg=f"{parent}: cannot be opened as a directory: {exc.strerror}")
    try:
        owner = os.fstat(parent_fd)
        made = False
        if module.check_mode:
            try:
                fd = _open_child(module, parent_fd, name, path)
            except FileNotFoundError:
                module.exit_json(changed=True, path=path)
        else:
            try:
                os.mkdir(name, 0o700, dir_fd=parent_fd)  # 0700 until it is the owner's, with its mode
                made = True
            except FileExistsError:
                pass
            fd = _open_child(module, parent_fd, name, path)
        try:
            st = os.fstat(fd)
            changed = made or (st.st_uid, st.st_gid, st.st_mode & 0o7777) != (owner.st_uid, owner.st_gid, mode)
            if changed and not module.check_mode:
                os.fchown(fd, owner.st_uid, owner.st_gid)
                os.fchmod(fd, mode)
        finally:
            os.close(fd)
    finally:
        os.close(parent_fd)
    module.exit_json(changed=changed, path=path, uid=owner.st_uid, gid=owner.st_gid, mode=f"{mode:04o}")


if __name__ == "__main__":
    main()
