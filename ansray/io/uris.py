"""Where a URI points, decided once on the driver: canonical forms, local or remote, and containment.

A job runs its file work on many nodes, and each resolves a relative path against its own working
directory. So every local path is made absolute (and `.`/`..` folded) on the driver before any task
sees it. `local://` is Ray Data's scheme for files on the driver's own node: such work is pinned there.
"""

from __future__ import annotations

import os
import posixpath

from fsspec.utils import get_protocol

LOCAL_PROTOCOLS = frozenset({"file", "local"})
DRIVER_NODE_SCHEME = "local://"


def protocol_of(uri: str) -> str:
    """`s3`, `memory`, ..., or `file` for plain paths and `file://`/`local://` URIs."""
    protocol = get_protocol(str(uri))
    return "file" if protocol in LOCAL_PROTOCOLS else protocol


def is_local(uri: str) -> bool:
    """Whether `uri` names a path on a local filesystem (plain, `file://` or `local://`)."""
    return protocol_of(uri) == "file"


def on_driver_node(uri: str) -> bool:
    """Whether `uri` uses Ray Data's `local://` scheme: a path on the driver's own node."""
    return str(uri).startswith(DRIVER_NODE_SCHEME)


def is_relative_local(uri: str) -> bool:
    """Whether `uri` is a local path that depends on the working directory it is resolved in."""
    return is_local(uri) and not os.path.isabs(os.path.expanduser(_path_part_raw(uri)))


def canonical(uri: str, cwd: str | None = None) -> str:
    """Local paths as absolute plain paths with `.` and `..` folded (relative ones against `cwd`,
    default the current directory); other URIs without a trailing slash. Globs stay globs."""
    uri = str(uri)
    if is_local(uri):
        path = os.path.expanduser(_path_part_raw(uri))
        if not os.path.isabs(path):
            path = os.path.join(cwd or os.getcwd(), path)
        return os.path.normpath(path)
    protocol, _, rest = uri.partition("://")
    rest = rest.rstrip("/") or rest
    return f"{protocol}://{rest}"


def resolve_entry(entry: str, folder: str) -> str:
    """A path named inside a manifest: absolute paths and URIs as they are, relative ones against the
    manifest's `folder` (`.` and `..` folded)."""
    if "://" in entry or entry.startswith("/"):
        return entry
    protocol, _, folder_path = folder.rpartition("://")
    joined = posixpath.normpath(posixpath.join(folder_path, entry))
    return f"{protocol}://{joined}" if protocol else joined


def contains(root: str, uri: str) -> bool:
    """Whether canonical `uri` is `root` itself or lies below it (both canonical)."""
    if protocol_of(root) != protocol_of(uri):
        return False
    root_path, path = _path_part(root), _path_part(uri)
    return path == root_path or path.startswith(root_path.rstrip("/") + "/")


def literal_prefix(uri: str) -> str:
    """The part of a glob before its first folder with a wildcard (the URI itself if none)."""
    head, sep, rest = uri.partition("://")
    path = rest if sep else head
    parts = path.split("/")
    for i, part in enumerate(parts):
        if any(c in part for c in "*?["):
            path = "/".join(parts[:i]) or "/"
            break
    return f"{head}://{path}" if sep else path


def _path_part_raw(uri: str) -> str:
    return uri.split("://", 1)[1] if "://" in uri else uri


def _path_part(uri: str) -> str:
    path = _path_part_raw(uri)
    return posixpath.normpath(path) if path else path
