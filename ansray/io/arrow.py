"""pyarrow filesystems for the Ray APIs that take one (RunConfig storage, read_parquet), built from
the same fsspec URI and storage_options that the rest of ansray uses, so that an S3 endpoint or
credentials given once reach Ray Train and Ray Data too."""

from __future__ import annotations

import os

import pyarrow.fs

from ansray.io.storage import fs_for
from ansray.io.uris import is_local


def arrow_filesystem(uri: str, storage_options: dict | None = None) -> tuple[pyarrow.fs.FileSystem | None, str]:
    """(filesystem, path) for `uri`: (None, absolute path) for a local path, else the fsspec
    filesystem wrapped for pyarrow and the path without its protocol (`s3://b/x` -> `b/x`), which is
    what `RunConfig(storage_filesystem=...)` and `read_parquet(filesystem=...)` expect."""
    fs, path = fs_for(uri, storage_options)
    if is_local(uri):
        return None, os.path.abspath(path)
    return pyarrow.fs.PyFileSystem(pyarrow.fs.FSSpecHandler(fs)), path.rstrip("/")
