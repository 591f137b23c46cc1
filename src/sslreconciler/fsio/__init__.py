"""File I/O at the edge: anchored, bounded, hang-free reads (``reads``) and atomic writes (``writes``).

Every operation on the ssl dir and the state dir works relative to a directory descriptor opened
once (``open_dir``): a name is looked up inside that directory, never re-resolved from the root, so
a directory or link swapped in by whoever owns the directory cannot redirect a privileged caller.
The names callers use are all here.
"""

from sslreconciler.fsio.reads import (
    MAX_SOURCE_BYTES,
    IsADirectory,
    fd_path,
    is_utf8_name,
    list_names,
    open_dir,
    open_subdir,
    opened_dir,
    printable_name,
    read_at,
    read_regular,
    read_source,
    resolve_source,
    written_by_others,
)
from sslreconciler.fsio.swap import current_version_at, remove_versions_at, swap_set_at, version_pattern
from sslreconciler.fsio.writes import (
    LOCK_NAME,
    LOCK_TEMP_PREFIX,
    TEMP_PREFIX,
    atomic_symlink,
    atomic_symlink_at,
    atomic_write,
    atomic_write_at,
    fsync_dir,
    lstat_at,
    new_symlink_at,
    owner_for_new_files,
    remove_stale_temp_files,
    replace_together_at,
    set_attributes_at,
    write_temp_at,
)

__all__ = [
    "LOCK_NAME",
    "LOCK_TEMP_PREFIX",
    "MAX_SOURCE_BYTES",
    "TEMP_PREFIX",
    "IsADirectory",
    "atomic_symlink",
    "atomic_symlink_at",
    "atomic_write",
    "atomic_write_at",
    "current_version_at",
    "fd_path",
    "fsync_dir",
    "is_utf8_name",
    "list_names",
    "lstat_at",
    "new_symlink_at",
    "open_dir",
    "open_subdir",
    "opened_dir",
    "owner_for_new_files",
    "printable_name",
    "read_at",
    "read_regular",
    "read_source",
    "remove_stale_temp_files",
    "remove_versions_at",
    "replace_together_at",
    "resolve_source",
    "set_attributes_at",
    "swap_set_at",
    "version_pattern",
    "write_temp_at",
    "written_by_others",
]
