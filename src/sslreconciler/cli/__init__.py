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
    imported pydantic's own first keeps it). Should a pydantic release ask its loader for anything else,
    the stand-in steps aside: it loads pydantic's own module and answers from it (slower, never wrong)."""
    name = "pydantic.plugin._loader"
    if name in sys.modules:
        return
    loader = types.ModuleType(name, "No pydantic plugins: sslreconciler uses none (sslreconciler.cli).")

    def real(attribute: str) -> object:
        import importlib

        if attribute.startswith("__"):  # the import system asking what kind of module this is
            raise AttributeError(attribute)

        del sys.modules[name]  # pydantic's own module from here on
        return getattr(importlib.import_module(name), attribute)

    vars(loader)["get_plugins"] = lambda: ()
    vars(loader)["__getattr__"] = real
    sys.modules[name] = loader
