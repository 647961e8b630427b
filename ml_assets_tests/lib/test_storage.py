"""storage.py: local paths and fsspec URLs, and writes that land whole or not at all."""

from __future__ import annotations

from pathlib import Path

import pytest
from upath import UPath

from ml_assets.lib.storage import is_local, storage_path, write_atomic, write_text_atomic


def test_text_files_are_replaced_whole_or_not_at_all(tmp_path: Path) -> None:
    path = UPath(tmp_path) / "reports" / "report.html"
    write_text_atomic(path, "<p>good</p>")

    def fails_midway(fh) -> None:  # noqa: ANN001
        fh.write(b"<p>half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_atomic(path, fails_midway)
    assert path.read_text() == "<p>good</p>"
    write_text_atomic(path, "<p>newer</p>")
    assert path.read_text() == "<p>newer</p>"
    assert [p.name for p in (tmp_path / "reports").iterdir()] == ["report.html"]


def test_an_object_store_path_lists_afresh_and_a_local_one_stays_local(tmp_path: Path) -> None:
    local = storage_path(str(tmp_path))
    assert is_local(local) and local == UPath(tmp_path)
    remote = storage_path("memory://bucket/data")
    assert not is_local(remote)
    assert remote.storage_options == {"use_listings_cache": False}
    assert (remote / "spec" / "file.parquet").storage_options == remote.storage_options


def test_a_write_to_an_object_store_lands_whole(tmp_path: Path) -> None:
    path = storage_path("memory://bucket/reports/report.html")
    write_text_atomic(path, "<p>one</p>")
    write_text_atomic(path, "<p>two</p>")
    assert path.read_text() == "<p>two</p>"
    assert [p.name for p in path.parent.iterdir()] == ["report.html"]
