"""The environment variables sslreconciler reads: one list for --help, the man page and the README."""

from __future__ import annotations

# (name, meaning); SSLRECONCILER_<FIELD> works for every settings key, these are the ones people set.
VARIABLES: list[tuple[str, str]] = [
    ("SSLRECONCILER_CONFIG", "the settings TOML when --config is not given"),
    ("SSLRECONCILER_SSL_DIR", "the ssl dir (settings key ssl_dir); likewise SSLRECONCILER_<KEY> for every key"),
    ("SSLRECONCILER_STATE_DIR", "where run state is kept (state_dir)"),
    ("SSLRECONCILER_DESIRED_STATE", "the desired-state file (desired_state)"),
    ("SSLRECONCILER_SOCKET", "the health socket (socket)"),
    (
        "SSLRECONCILER_CREDENTIALS_DIR",
        "where a manual run reads credentials (credentials_dir, default /etc/sslreconciler)",
    ),
    (
        "SSLRECONCILER_WORKERS",
        "cores a reconcile of many trusted certificates may use (workers): 0 one per core (default), 1 serial",
    ),
    ("CREDENTIALS_DIRECTORY", "set by systemd (LoadCredential=); when set, credentials are read from it"),
    ("STATE_DIRECTORY", "set by systemd (StateDirectory=); the default state dir under systemd"),
    ("NOTIFY_SOCKET", "set by systemd; `run` speaks sd_notify on it"),
    ("XDG_STATE_HOME", "the default state dir's parent when not root and not under systemd"),
    ("SSLRECONCILER_CHANGED, SSLRECONCILER_SSL_DIR", "given to hooks: the rewritten artifacts, the ssl dir"),
]


def epilog() -> str:
    width = max(len(name) for name, _ in VARIABLES[:-1])
    lines = ["environment:"]
    lines += [f"  {name:<{width}}  {text}" for name, text in VARIABLES[:-1]]
    lines.append("precedence: defaults < settings file < SSLRECONCILER_* < command-line options")
    return "\n".join(lines)
