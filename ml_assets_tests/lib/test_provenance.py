"""provenance.py: the code version and git commit recorded with every run."""

from __future__ import annotations

import re

from ml_assets.lib.provenance import code_version, git_commit


def test_code_version_is_stable() -> None:
    first = code_version()
    code_version.cache_clear()  # recompute from the files, not from the cache
    second = code_version()
    assert first == second
    assert re.fullmatch(r"0\.1\.0\+[0-9a-f]{12}", first)


def test_git_commit_is_a_sha_or_unknown() -> None:
    commit = git_commit()
    assert commit == "unknown" or re.fullmatch(r"[0-9a-f]{40}", commit)
