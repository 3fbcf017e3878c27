"""The suite without the ``monailabel`` extra: its tests skip (they do not error), even with ``scripts/`` on the path
(the app folder, ``scripts/monailabel_app``, cannot pass for the package).

Absence is simulated in a subprocess by a ``sitecustomize`` that makes ``import monailabel`` fail; nothing is
uninstalled.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

BLOCKER = '''
import importlib.machinery
import sys


class _NoMonaiLabel:
    """A meta path finder that finds ``monailabel`` only outside site-packages, as if the extra were not installed
    (so a folder called ``monailabel`` on the path would still be found, as a namespace package)."""

    def find_spec(self, name, path=None, target=None):
        if name != "monailabel":
            return None
        paths = [p for p in sys.path if "site-packages" not in p and "dist-packages" not in p]
        spec = importlib.machinery.PathFinder.find_spec(name, paths)
        if spec is None:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return spec


sys.meta_path.insert(0, _NoMonaiLabel())
'''


@pytest.mark.slow
def test_monailabel_tests_skip_without_the_extra(tmp_path: Path) -> None:
    (tmp_path / "sitecustomize.py").write_text(BLOCKER)
    # scripts/ on the path too: the app folder must not pass for the package
    path = os.pathsep.join([str(tmp_path), str(REPO / "scripts"), str(REPO), os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "PYTHONPATH": path}
    check = subprocess.run(
        [sys.executable, "-c", "import sys, helpers.bundles as b; sys.exit(b.monailabel_installed())"],
        cwd=REPO / "tests",
        env=env,
        capture_output=True,
        check=False,
        text=True,
        timeout=120,
    )
    assert check.returncode == 0, check.stderr
    # the simulation holds, and nothing under scripts/ shadows the package: ``import monailabel`` fails outright
    shadow = subprocess.run(
        [sys.executable, "-c", "import monailabel; print(list(monailabel.__path__))"],
        env=env,
        capture_output=True,
        check=False,
        text=True,
        timeout=120,
    )
    assert shadow.returncode != 0 and "No module named 'monailabel'" in shadow.stderr, shadow
    tests = [
        "tests/scripts/test_monailabel_app.py",
        "tests/bundles/test_monailabel_overrides.py::test_monailabel_bundle_train_task_runs_the_bundle",
    ]
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests],
        cwd=REPO,
        env=env,
        capture_output=True,
        check=False,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "error" not in run.stdout.lower().split("\n")[-2], run.stdout[-2000:]
    assert "2 skipped" in run.stdout, run.stdout[-2000:]
