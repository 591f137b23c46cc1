"""One error root: every exception class the package defines derives from ``SslReconcilerError``, so a
caller can tell "refused on purpose" from a bug with one ``except`` (issue 23).

The walk imports every module of the package and looks at every class defined in it (and the classes
nested in those), so a new module with its own ``class Oops(Exception)`` fails here.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from collections.abc import Iterator

import pytest

import sslreconciler
from sslreconciler.model.errors import SslReconcilerError


def _classes_in(owner: object, module: str) -> Iterator[type]:
    for value in vars(owner).values():
        if inspect.isclass(value) and value.__module__ == module and value is not owner:
            yield value
            yield from _classes_in(value, module)


def _exceptions_defined() -> list[type[BaseException]]:
    found: list[type[BaseException]] = []
    for info in pkgutil.walk_packages(sslreconciler.__path__, "sslreconciler."):
        if info.name.endswith(".__main__"):  # runs the CLI on import
            continue
        module = importlib.import_module(info.name)
        found += [cls for cls in _classes_in(module, module.__name__) if issubclass(cls, BaseException)]
    return found


def test_the_walk_sees_the_package_s_exceptions() -> None:
    """The walk itself works: it finds the errors we know of in the layers far apart."""
    names = {f"{cls.__module__}.{cls.__qualname__}" for cls in _exceptions_defined()}
    for known in (
        "sslreconciler.model.errors.ConfigError",
        "sslreconciler.stores.entries.StoreUnreadable",
        "sslreconciler.pki.der.DERError",
        "sslreconciler.cluster.acme.transport.AcmeFailure",
        "sslreconciler.cli.status.BadResponse",
        "sslreconciler.writer_lock.DirLocked",
    ):
        assert known in names


def test_every_exception_the_package_defines_derives_from_the_one_root() -> None:
    outside = sorted(
        f"{cls.__module__}.{cls.__qualname__}"
        for cls in _exceptions_defined()
        if not issubclass(cls, SslReconcilerError)
    )
    assert outside == []


@pytest.mark.parametrize(
    ("where", "name", "also"),
    [
        ("sslreconciler.pki.der", "DERError", ValueError),
        ("sslreconciler.stores.jks_writer", "JKSEncodeError", ValueError),
        ("sslreconciler.cli.status", "BadResponse", ValueError),
        ("sslreconciler.reconcile.acme_state", "BadRecord", ValueError),
        ("sslreconciler.writer_lock", "DirLocked", OSError),
    ],
)
def test_errors_keep_the_base_their_callers_catch(where: str, name: str, also: type[Exception]) -> None:
    """e.g. ``status`` catches a bad answer as a ValueError, the CLI a held lock as an OSError."""
    assert issubclass(getattr(importlib.import_module(where), name), also)
