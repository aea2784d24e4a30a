"""The library and the nodes type-check: mypy, configured in pyproject.toml ([tool.mypy]), reports no
error on sustainml/ and nodes/. Run it alone with ``.venv/bin/mypy`` from the repository root."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.skipif(importlib.util.find_spec("mypy") is None,
                    reason="mypy is not installed (pip install -e '.[test]' installs it)")
def test_mypy_reports_no_error() -> None:
    run = subprocess.run([sys.executable, "-m", "mypy"], cwd=ROOT, capture_output=True, text=True, timeout=280)
    assert run.returncode == 0, f"mypy found errors (fix them; see [tool.mypy] in pyproject.toml):\n{run.stdout}{run.stderr}"
    assert "Success: no issues found" in run.stdout
