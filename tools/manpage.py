"""Write docs/sslreconciler.1 from the argument parser, so the man page cannot drift from --help.

Usage: python tools/manpage.py [OUTPUT]   (default docs/sslreconciler.1; `make man` runs it)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))

from sslreconciler import __version__  # noqa: E402
from sslreconciler.cli.app import build_parser  # noqa: E402
from sslreconciler.config.environment import VARIABLES  # noqa: E402


def esc(text: str) -> str:
    return text.replace("\\", "\\e").replace("-", "\\-").replace("\n.", "\n\\&.")


def _subcommands(parser: argparse.ArgumentParser) -> list[tuple[str, argparse.ArgumentParser, str]]:
    out = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help or "" for a in action._choices_actions}
            for name, sub in action.choices.items():
                out.append((name, sub, helps.get(name, "")))
    return out


def _help(action: argparse.Action) -> str:
    """The help text as --help prints it (%(default)s and %(choices)s expanded)."""
    text = action.help or ""
    if "%" not in text:
        return text
    params = {k: v for k, v in vars(action).items() if v is not argparse.SUPPRESS}
    if action.choices is not None:
        params["choices"] = ", ".join(map(str, action.choices))
    return text % params


def _options(parser: argparse.ArgumentParser) -> list[str]:
    lines = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction) or action.help == argparse.SUPPRESS:
            continue
        if action.option_strings:
            flags = ", ".join(action.option_strings)
            metavar = "" if action.nargs == 0 else f" {action.metavar or action.dest.upper()}"
            lines += [".TP", f"\\fB{esc(flags)}\\fR{esc(metavar)}", esc(_help(action))]
        else:
            lines += [".TP", f"\\fI{esc(action.metavar or action.dest.upper())}\\fR", esc(_help(action))]
    return lines


def _section(path: str, parser: argparse.ArgumentParser, summary: str) -> list[str]:
    lines = [".SS " + esc(path), esc(summary)]
    if parser.description:
        lines += [".PP", esc(parser.description)]
    lines += _options(parser)
    for name, sub, text in _subcommands(parser):
        lines += _section(f"{path} {name}", sub, text)
    return lines


def render() -> str:
    parser = build_parser()
    lines = [
        f'.TH SSLRECONCILER 1 "" "sslreconciler {__version__}" "User Commands"',
        ".SH NAME",
        "sslreconciler \\- keep a PBX node's TLS keystores derived from its PEM sources",
        ".SH SYNOPSIS",
        "\\fBsslreconciler\\fR \\fICOMMAND\\fR [\\fIoptions\\fR]",
        ".SH DESCRIPTION",
        esc(parser.description or ""),
        ".SH OPTIONS",
        *_options(parser),
        ".SH COMMANDS",
    ]
    for name, sub, text in _subcommands(parser):
        lines += _section(f"sslreconciler {name}", sub, text)
    lines += [
        ".SH EXIT STATUS",
        "reconcile, check, pki, web: 0 ok or warnings only, 1 degraded, failed or refused, 2 usage or "
        "configuration error. status: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.",
        ".SH ENVIRONMENT",
        *[line for name, text in VARIABLES for line in (".TP", f"\\fB{esc(name)}\\fR", esc(text))],
        "Precedence: defaults < settings file < SSLRECONCILER_* < command\\-line options.",
        ".SH FILES",
        ".TP",
        "/etc/sslreconciler/sslreconciler.toml",
        "settings",
        ".TP",
        "/etc/sslreconciler/desired\\-state.json",
        "desired state (missing: the sipXecs seed layout)",
        ".TP",
        "/etc/sipxpbx/ssl",
        "the node's TLS directory",
        ".TP",
        "/run/sslreconciler/health.sock",
        "the daemon's health socket",
        ".TP",
        "/etc/sslreconciler/store\\-password",
        "the store-password credential (the unit's LoadCredential=; a manual run reads it from credentials_dir)",
        ".SH SEE ALSO",
        "/usr/share/doc/sslreconciler/ (README.md, operations.md, pki.md, desired\\-state.md)",
    ]
    return "\n".join(lines) + "\n"


def main() -> int:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / "docs" / "sslreconciler.1"
    out.write_text(render())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
