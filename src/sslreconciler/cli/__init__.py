"""The command line: parsing and exit codes; the `status` socket client."""

from sslreconciler.cli.app import main

__all__ = ["main"]
