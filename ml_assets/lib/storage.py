"""Where stored files live: local paths or any fsspec URL (s3://, gs://, az://, memory://),
and writes that land whole or not at all on either."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from upath import UPath

LOCAL_PROTOCOLS = ("", "file", "local")


def is_local(path: Path) -> bool:
    return getattr(path, "protocol", "") in LOCAL_PROTOCOLS


def storage_path(location: str) -> UPath:
    """``location`` as a path. A URL's filesystem lists afresh every time: fsspec caches
    directory listings per process, and a long-lived one (a Celery worker, a code server)
    would otherwise never see a day file that another process wrote after its first look."""
    if "://" not in location or location.startswith("file://"):
        return UPath(location)
    return UPath(location, use_listings_cache=False)


def write_atomic(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """``write(file)`` to ``path`` whole or not at all: into a temporary file, one per writing
    process, renamed into place (on an object store: copied, then the temporary removed). A
    failed write never replaces the last good file and leaves no temporary behind."""
    if is_local(path):
        # An object store has no directories; creating its "parents" could create a bucket.
        path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        with tmp.open("wb") as fh:
            write(fh)
        tmp.rename(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text_atomic(path: Path, text: str) -> None:
    data = text.encode()
    write_atomic(path, lambda fh: fh.write(data))
