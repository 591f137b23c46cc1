"""What the command groups share: the exit codes, the node options, option types, and how a command
finds its settings and speaks on stderr. Light on purpose: ``status`` imports it too."""

from __future__ import annotations

import argparse
import sys

from sslreconciler.model.errors import ConfigError

TYPE_CHECKING = False  # pathlib is imported where a path is made: `status` does without it
if TYPE_CHECKING:
    from pathlib import Path

EXIT_OK, EXIT_DEGRADED, EXIT_USAGE = 0, 1, 2
KEY_TYPES = ["rsa2048", "rsa4096", "ec-p256"]


def common_options(hidden: bool = False, as_text: bool = False) -> argparse.ArgumentParser:
    """The node options; ``hidden`` for commands they mean nothing to (still accepted, as before);
    ``as_text`` keeps the paths given as text (``status``, which only passes its socket on, and so never
    imports pathlib); otherwise each is a ``Path``. Options and --help are the same either way."""
    path: type[str] | type[Path]
    if as_text:
        path = str
    else:
        from pathlib import Path

        path = Path

    def shown(text: str) -> str:
        return argparse.SUPPRESS if hidden else text

    common = argparse.ArgumentParser(add_help=False)
    group = common.add_argument_group("common options")
    group.add_argument(
        "--config",
        type=path,
        metavar="FILE",
        help=shown("settings TOML (default /etc/sslreconciler/sslreconciler.toml when present)"),
    )
    group.add_argument(
        "--ssl-dir", type=path, metavar="DIR", help=shown("the node's TLS directory (default /etc/sipxpbx/ssl)")
    )
    group.add_argument(
        "--desired-state",
        type=path,
        metavar="FILE",
        help=shown(
            "desired-state JSON (default /etc/sslreconciler/desired-state.json; missing file: the sipXecs seed layout)"
        ),
    )
    group.add_argument(
        "--state-dir",
        type=path,
        metavar="DIR",
        help=shown(
            "where run state is kept (default $STATE_DIRECTORY under systemd, /var/lib/sslreconciler as root, "
            "else ~/.local/state/sslreconciler)"
        ),
    )
    group.add_argument(
        "--socket",
        type=path,
        metavar="PATH",
        help=shown("the daemon's health socket (default /run/sslreconciler/health.sock)"),
    )
    return common


def days(text: str) -> int:
    """A validity in days: a whole number from 1 (argparse turns the ValueError into exit 2)."""
    try:
        days = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of days") from None
    if not 1 <= days <= 36500:
        raise argparse.ArgumentTypeError(f"{days} is outside 1..36500 days")
    return days


def flag_overrides(args: argparse.Namespace) -> dict[str, object]:
    return {
        "ssl_dir": args.ssl_dir,
        "state_dir": args.state_dir,
        "desired_state": args.desired_state,
        "socket": args.socket,
    }


def daemon_state_dir(args: argparse.Namespace) -> Path:
    """The state dir of the daemon these settings describe: the settings without the command line's
    ``--state-dir`` (root's one-shots keep their own records elsewhere, the daemon's stays where it is).
    A one-shot leaves its hook results there for the daemon (reconcile/hook_record.py)."""
    from sslreconciler.config.settings import load_settings

    return load_settings(args.config, {**flag_overrides(args), "state_dir": None}).resolved_state_dir()


def command_name(args: argparse.Namespace) -> str:
    """The command as typed, without options: ``pki install-bundle``, ``web install``, ``reconcile``."""
    words = [getattr(args, "command", None)]
    words += [getattr(args, f"{args.command}_command", None)] if getattr(args, "command", None) else []
    return " ".join(w for w in words if w)


def say(text: str) -> None:
    """A line on stderr; names in it may come from the files, so no control character gets through."""
    from sslreconciler.model.text import printable

    print(printable(text), file=sys.stderr)


def require_dir(ssl_dir: Path) -> None:
    """A usage error (exit 2) for an ssl dir that is not there, rather than a finding per file."""
    if not ssl_dir.is_dir():
        raise ConfigError(ssl_dir, "no such directory (the ssl dir: --ssl-dir, ssl_dir in the settings)")
