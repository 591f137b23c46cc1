"""The command line: parsing and exit codes; the `status` socket client."""

from __future__ import annotations

import os
from collections.abc import Sequence

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """The program's entry point (``sslreconciler``, ``python -m sslreconciler``)."""
    # pydantic looks for third-party plugins in every installed package's metadata when it builds the
    # first model (tens of milliseconds per command), and a plugin would see every value validated,
    # store passwords included. This program uses none: said before the models are imported (app
    # imports them), as an environment default, so the hooks it runs inherit it too.
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    from sslreconciler.cli.app import main as run

    return run(argv)
