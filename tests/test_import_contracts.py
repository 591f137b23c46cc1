"""The import contracts (pyproject.toml, `make lint`) are not decoration: each one breaks when the rule it
states is broken. A copy of the package gets one forbidden import per contract, and lint-imports must
report every contract broken; the untouched copy keeps them all."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# module of the copy -> the import added to it, and the contract it breaks
BREAKS = {
    "pki/der.py": "import sslreconciler.config.wording",  # Layers: pki is below config
    "reconcile/observe.py": "import sslreconciler.reconcile.decide",  # Inside reconcile: observe under decide
    "reconcile/plan.py": "import subprocess",  # Decide is pure
    "stores/jks.py": "import sslreconciler.cli.common",  # The core never imports a shell (and Layers)
    "daemon/slots.py": "import sslreconciler.cluster.sequence",  # Shells do not import each other
    "daemon/schedule.py": "import time",  # The scheduler is pure
}


def _copy(tmp: Path) -> Path:
    shutil.copytree(ROOT / "src" / "sslreconciler", tmp / "src" / "sslreconciler",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp / "pyproject.toml")
    return tmp


def _lint_imports(tree: Path) -> tuple[int, str]:
    tool = Path(sys.executable).parent / "lint-imports"
    done = subprocess.run([str(tool), "--no-cache"], cwd=tree, capture_output=True, text=True, timeout=300,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(tree / "src")})
    return done.returncode, done.stdout + done.stderr


def _counts(output: str) -> tuple[int, int]:
    found = re.search(r"Contracts: (\d+) kept, (\d+) broken", output)
    assert found, output
    return int(found[1]), int(found[2])


def test_the_copy_keeps_every_contract(tmp_path: Path) -> None:
    rc, output = _lint_imports(_copy(tmp_path))
    kept, broken = _counts(output)
    assert rc == 0 and broken == 0 and kept >= 6, output


def test_each_contract_breaks_when_its_rule_is_broken(tmp_path: Path) -> None:
    tree = _copy(tmp_path)
    for module, line in BREAKS.items():
        path = tree / "src" / "sslreconciler" / module
        path.write_text(path.read_text() + f"\n{line}  # noqa\n")
    rc, output = _lint_imports(tree)
    kept, broken = _counts(output)
    assert rc != 0 and kept == 0 and broken >= 6, output  # not one contract left standing
