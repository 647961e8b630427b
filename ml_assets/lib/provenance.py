"""Which code produced a result: the package version with a hash of its sources and specs,
and the git commit of the checkout, recorded with every run."""

from __future__ import annotations

import hashlib
import subprocess
from functools import cache
from pathlib import Path

import ml_assets

PACKAGE_DIR = Path(ml_assets.__file__).resolve().parent


@cache
def code_version() -> str:
    """Package version plus a hash of every source and spec file: same code, same value."""
    digest = hashlib.sha256()
    for path in sorted(PACKAGE_DIR.rglob("*")):
        if path.suffix in {".py", ".yaml"} and "__pycache__" not in path.parts:
            digest.update(path.relative_to(PACKAGE_DIR).as_posix().encode())
            digest.update(path.read_bytes())
    return f"{ml_assets.__version__}+{digest.hexdigest()[:12]}"


@cache
def git_commit() -> str:
    """The git commit of the checkout the package runs from, or 'unknown'."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=PACKAGE_DIR, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 else "unknown"
