"""The command line: parsing and exit codes; the `status` socket client."""

from __future__ import annotations

import os
import sys
import types
from collections.abc import Sequence

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """The program's entry point (``sslreconciler``, ``python -m sslreconciler``)."""
    # pydantic looks for third-party plugins in every installed package's metadata when it builds the
    # first model (tens of milliseconds per command), and a plugin would see every value validated,
    # store passwords included. This program uses none: said before the models are imported (app
    # imports them), as an environment default, so the hooks it runs inherit it too.
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    _no_plugin_loader()
    from sslreconciler.cli.app import main as run

    return run(argv)


def _no_plugin_loader() -> None:
    """pydantic imports its plugin loader when it builds the first model, and that module imports
    importlib.metadata (with email, zipfile and csv: about 15 ms of every command that reads its
    settings) before it reads PYDANTIC_DISABLE_PLUGINS and answers: no plugin. The same answer without
    that import: a loader that has none, put in place before pydantic is imported (a process that
    imported pydantic's own first keeps it). Should pydantic ask its loader for more, every command
    fails at once, loudly (tests/test_startup_imports.py runs the CLI); it could not load a plugin."""
    name = "pydantic.plugin._loader"
    if name not in sys.modules:
        loader = types.ModuleType(name, "No pydantic plugins: sslreconciler uses none (sslreconciler.cli).")
        vars(loader)["get_plugins"] = lambda: ()
        sys.modules[name] = loader
