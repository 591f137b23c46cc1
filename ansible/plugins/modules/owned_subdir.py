"""A directory inside a directory another user owns, made when missing and handed to that directory's owner,
never through a link: everything happens on descriptors (no check-then-act on names), so that owner cannot
turn root's chown and chmod against a directory elsewhere by putting a symlink where the directory goes.
With ``owner: root`` the directory is root's instead (root's own state dir, next to the service's)."""

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
  - With O(owner=root) the directory is made and kept root:root instead (a directory of root's own); the
    play fails when O(parent) is not root's or is group/other-writable.
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
  owner:
    description: Whose the directory is, C(parent) (the parent's owner and group) or C(root) (root:root).
    type: str
    choices: [parent, root]
    default: parent
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
            "owner": {"type": "str", "choices": ["parent", "root"], "default": "parent"},
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
        parent_st = os.fstat(parent_fd)
        roots = module.params["owner"] == "root"
        uid, gid = (0, 0) if roots else (parent_st.st_uid, parent_st.st_gid)
        if roots and (parent_st.st_uid != 0 or parent_st.st_mode & 0o022):  # another user could swap it
            module.fail_json(
                msg=f"{parent}: not root's alone (owner uid {parent_st.st_uid}, mode "
                f"{parent_st.st_mode & 0o7777:04o}); root's directory is not made in it"
            )
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
            changed = made or (st.st_uid, st.st_gid, st.st_mode & 0o7777) != (uid, gid, mode)
            if changed and not module.check_mode:
                os.fchown(fd, uid, gid)
                os.fchmod(fd, mode)
        finally:
            os.close(fd)
    finally:
        os.close(parent_fd)
    module.exit_json(changed=changed, path=path, uid=uid, gid=gid, mode=f"{mode:04o}")


if __name__ == "__main__":
    main()
