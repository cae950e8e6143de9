"""Static checks that catch real bugs, not style: undefined names, unused imports and variables,
syntax errors (ruff's F and E9 rules) over everything that ships or tests it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_no_undefined_names_unused_imports_or_syntax_errors():
    ruff = Path(sys.executable).with_name("ruff")
    exe = str(ruff) if ruff.exists() else shutil.which("ruff")
    assert exe, "ruff is in requirements-dev.txt: make test installs it"
    result = subprocess.run([exe, "check", "--no-cache", "--select", "F,E9", "--output-format", "concise",
                             "app.py", "chalicelib", "infra", "benchmarks", "tests"],
                            cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, f"ruff found problems (fix them, or `ruff check --fix`):\n{result.stdout}"
