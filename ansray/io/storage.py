"""Storage for any fsspec URI: plain paths, file://, s3://, memory://, and any installed protocol.

Lists the audio a job must process, maps each input to its mirrored output, and writes objects
atomically. Credentials come from `storage_options` or the environment s3fs reads; none is logged.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import filecmp
import hashlib
import json
import logging
import os
import posixpath
import secrets
import stat
import tempfile
from collections.abc import Iterable, Sequence
from typing import IO, Any

import fsspec
from fsspec.core import url_to_fs
from fsspec.utils import get_protocol

from ansray.io.jsonl import numbered_lines, parse_jsonl, parse_row
from ansray.io.uris import LOCAL_PROTOCOLS, protocol_of, resolve_entry

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff")
MANIFEST_EXTENSIONS = (".txt", ".jsonl", ".json")

# The fsspec default for s3 is 50 MiB, so reading a 44-byte WAV header would fetch 50 MiB.
# Larger reads (a 30 s window) are fetched in one request whatever the block size.
_READ_BLOCK_SIZE = 4 * 2**20

# Protocols whose single put makes an object appear complete or not at all. s3fs's put is one PUT,
# or a multipart upload completed at the end and aborted on failure.
_WHOLE_OBJECT_PROTOCOLS = {"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "adl", "oss", "memory"}
_GLOB_CHARACTERS = ("*", "?", "[")

log = logging.getLogger(__name__)


class PathEscapeError(ValueError):
    """A key would place an output outside its output root (`..`, an absolute path, a URI)."""


class KeyCollisionError(ValueError):
    """Two different inputs map to the same key, so their outputs would overwrite each other."""


class ManifestError(ValueError):
    """A manifest line cannot be read as a URI or as JSON with `audio_filepath`."""


@dataclasses.dataclass(frozen=True)
class AudioRef:
    """One input file.

    uri: where it lives, as a URI a reader accepts.
    key: its path relative to the input root, mirrored under an output root.
    size: bytes.
    stamp: the object's ETag or modification time, as a string; changes when the object does.
    """

    uri: str
    key: str
    size: int
    stamp: str


# Non-secret S3 settings that botocore reads from each process's own environment, as (variable, client
# setting), most specific first. A task reads its node's environment, not the driver's, so these are
# passed to every task explicitly. Credentials never are: each node uses its own chain.
_S3_ENVIRONMENT = (
    ("AWS_ENDPOINT_URL_S3", "endpoint_url"),
    ("AWS_ENDPOINT_URL", "endpoint_url"),
    ("AWS_REGION", "region_name"),
    ("AWS_DEFAULT_REGION", "region_name"),
)


def storage_options_for(
    uris: Iterable[str], storage_options: dict | None = None, environ: dict | None = None
) -> dict | None:
    """The storage options every task of a job uses: `storage_options`, plus, where any URI is on S3,
    the endpoint and region of the driver's environment that the options do not already set."""
    environ = os.environ if environ is None else environ
    options = json.loads(json.dumps(storage_options)) if storage_options else {}
    if any(protocol_of(uri) in ("s3", "s3a") for uri in uris):
        client = dict(options.get("client_kwargs") or {})
        for variable, setting in _S3_ENVIRONMENT:
            if environ.get(variable) and setting not in client and setting not in options:
                client[setting] = environ[variable]
        if client:
            options["client_kwargs"] = client
    return options or None


def fs_for(uri: str, storage_options: dict | None = None) -> tuple[fsspec.AbstractFileSystem, str]:
    """The filesystem serving `uri` and the path within it."""
    return url_to_fs(uri, **(storage_options or {}))


def exists(uri: str, storage_options: dict | None = None) -> bool:
    fs, path = fs_for(uri, storage_options)
    fs.invalidate_cache(path)
    return fs.exists(path)


def read_bytes(uri: str, storage_options: dict | None = None) -> bytes:
    fs, path = fs_for(uri, storage_options)
    return fs.cat_file(path)


def open_input(uri: str, storage_options: dict | None = None) -> IO[bytes]:
    """A seekable binary file object that fetches only the byte ranges that are read."""
    fs, path = fs_for(uri, storage_options)
    return fs.open(path, "rb", block_size=_READ_BLOCK_SIZE)


def join_uri(root: str, key: str) -> str:
    """`root/key`, refusing any key that would land outside `root`."""
    check_key(key)
    return root.rstrip("/") + "/" + key


def check_key(key: str) -> None:
    """Raises PathEscapeError unless `key` is a relative path that stays below its root."""
    if not key:
        raise PathEscapeError("empty key")
    if "://" in key or "\x00" in key:
        raise PathEscapeError(f"key {key!r} is not a relative path")
    if key.startswith(("/", "\\")) or (len(key) > 1 and key[1] == ":"):
        raise PathEscapeError(f"key {key!r} is absolute")
    # Backslashes are separators on Windows, so `..\\x` escapes there.
    if ".." in key.replace("\\", "/").split("/"):
        raise PathEscapeError(f"key {key!r} climbs out of its root with '..'")


def output_uri(
    ref: AudioRef, output_root: str, suffix: str | None = None, extension: str | None = None
) -> str:
    """Mirrors `ref.key` under `output_root`.

    `suffix` goes before the extension (`a/b.wav` -> `a/b_clean.wav`); `extension` replaces it.
    """
    stem, old_extension = posixpath.splitext(ref.key)
    if extension is None:
        extension = old_extension
    elif extension and not extension.startswith("."):
        extension = "." + extension
    return join_uri(output_root, stem + (suffix or "") + extension)


def write_bytes_atomic(uri: str, data: bytes | Iterable[bytes], storage_options: dict | None = None) -> None:
    """Writes `data` so that `uri` holds either its old content or all of `data`, never a part.

    `data` is bytes or an iterable of byte chunks. Local files are written to a hidden temporary
    name in the same folder and renamed; object stores get a single put. A writer killed on a local
    disk may leave a hidden `.<name>.<random>.part` file behind, never a partial file at `uri`.
    """
    fs, path = fs_for(uri, storage_options)
    if _protocols(fs) & LOCAL_PROTOCOLS:
        _write_local_atomic(path, [data] if isinstance(data, (bytes, bytearray, memoryview)) else data)
    elif _protocols(fs) & _WHOLE_OBJECT_PROTOCOLS:
        fs.pipe_file(path, _as_bytes(data))
    else:
        # Filesystems like sftp or hdfs show a file while it is being written, but rename atomically.
        temporary = _temporary_name(path)
        try:
            fs.pipe_file(temporary, _as_bytes(data))
            fs.mv(temporary, path)
        finally:
            if fs.exists(temporary):
                fs.rm_file(temporary)
    fs.invalidate_cache(path)


def temporary_path_for(uri: str, storage_options: dict | None = None) -> str:
    """A local path to build `uri`'s content in before `publish_file`: beside it for a local target
    (so the rename is atomic), else in the system's temporary folder."""
    fs, path = fs_for(uri, storage_options)
    if _protocols(fs) & LOCAL_PROTOCOLS:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        return _temporary_name(path)
    folder = tempfile.mkdtemp(prefix="ansray-")
    return os.path.join(folder, posixpath.basename(path) or "object")


def publish_file(local_path: str, uri: str, storage_options: dict | None = None) -> bool:
    """Moves the finished local file `local_path` (from `temporary_path_for`) to `uri`, atomically:
    `uri` holds its old content or all of the new, never a part. `local_path` is gone afterwards.

    Returns False, writing nothing, when `uri` already holds exactly these bytes: a task that Ray runs
    again after a lost node does not write its outputs a second time.
    """
    fs, path = fs_for(uri, storage_options)
    try:
        if _holds_same_bytes(fs, path, local_path):
            return False
        if _protocols(fs) & LOCAL_PROTOCOLS:
            with open(local_path, "rb+") as file:
                os.fsync(file.fileno())
            os.replace(local_path, path)
        elif _protocols(fs) & _WHOLE_OBJECT_PROTOCOLS:
            fs.put_file(local_path, path)  # one PUT, or a multipart upload completed only at the end
        else:
            temporary = _temporary_name(path)
            try:
                fs.put_file(local_path, temporary)
                fs.mv(temporary, path)
            finally:
                if fs.exists(temporary):
                    fs.rm_file(temporary)
    finally:
        discard_file(local_path)
    fs.invalidate_cache(path)
    return True


def _holds_same_bytes(fs: fsspec.AbstractFileSystem, path: str, local_path: str) -> bool:
    """Whether `path` exists with the bytes of `local_path`. Object stores are asked for their MD5 ETag
    (single-part uploads) instead of a download; anything else unknown counts as different."""
    fs.invalidate_cache(path)
    try:
        info = fs.info(path)
    except FileNotFoundError:
        return False
    if int(info.get("size") or -1) != os.path.getsize(local_path):
        return False
    if _protocols(fs) & LOCAL_PROTOCOLS:
        return filecmp.cmp(path, local_path, shallow=False)
    etag = str(info.get("ETag") or info.get("etag") or "").strip('"')
    if len(etag) != 32 or not all(c in "0123456789abcdef" for c in etag.lower()):
        return False
    digest = hashlib.md5(usedforsecurity=False)
    with open(local_path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest() == etag.lower()


def discard_file(local_path: str) -> None:
    """Removes a temporary file from `temporary_path_for` (and its private folder, if it has one)."""
    if os.path.exists(local_path):
        os.unlink(local_path)
    folder = os.path.dirname(local_path)
    if os.path.basename(folder).startswith("ansray-") and folder.startswith(tempfile.gettempdir()):
        with contextlib.suppress(OSError):
            os.rmdir(folder)


def list_audio(
    inputs: str | Sequence[str],
    *,
    recursive: bool = True,
    extensions: Sequence[str] = AUDIO_EXTENSIONS,
    storage_options: dict | None = None,
) -> list[AudioRef]:
    """Lists the audio files named by `inputs`, in a deterministic order.

    Each input is one of:
      - a directory or prefix: its files with one of `extensions` (case-insensitive), sorted by key;
      - a glob (`s3://b/2024/**/*.flac`): matches with one of `extensions`, keys relative to the
        folder before the first wildcard, sorted by key;
      - a manifest (`.txt`, `.jsonl`, `.json`): one URI per line, or JSON lines with
        `audio_filepath` (NeMo). Relative entries are resolved against the manifest's folder, and
        keys are relative to the deepest folder holding the manifest and all its entries. Manifest
        order is kept;
      - a file URI: kept in the given order; keys are relative to the deepest folder that holds all
        the file URIs given directly.
    Extensions filter only what is discovered (directories and globs), never files named
    explicitly. The same URI named twice is listed once. Two different files with the same key raise
    KeyCollisionError, since their outputs would overwrite each other.
    """
    if isinstance(inputs, str):
        inputs = [inputs]
    suffixes = tuple(extension.lower() for extension in extensions)
    groups: list[list[AudioRef] | None] = []
    explicit_files: list[str] = []
    for item in inputs:
        fs, path = fs_for(item, storage_options)
        if _is_glob(path) and not _exists(fs, path):  # `name[1].wav` that exists is a name, not a pattern
            groups.append(_list_glob(fs, path, item, suffixes))
            if not groups[-1]:
                raise FileNotFoundError(f"{item} matches no audio files ({', '.join(suffixes)})")
        elif path.lower().endswith(MANIFEST_EXTENSIONS) and not path.lower().endswith(suffixes):
            groups.append(_list_manifest(item, storage_options))
            if not groups[-1]:
                log.warning("%s lists no audio files", item)
        elif not path.lower().endswith(suffixes) and _is_directory(fs, path):
            groups.append(_list_directory(fs, path, item, recursive, suffixes))
            if not groups[-1]:
                log.warning("%s holds no audio files (%s)", item, ", ".join(suffixes))
        else:
            groups.append(None)  # placeholder: keys of explicit files depend on all of them
            explicit_files.append(item)
    explicit = iter(_refs_for_files(explicit_files, storage_options))
    refs = []
    for group in groups:
        refs.extend([next(explicit)] if group is None else group)
    return _check_unique(refs)


def read_manifest(uri: str, storage_options: dict | None = None) -> list[str]:
    """The audio URIs a manifest names (one path, or one JSON row with `audio_filepath`, a line),
    relative entries resolved against its folder."""
    folder = _parent_uri(uri, storage_options)
    uris = []
    for number, line in numbered_lines(read_bytes(uri, storage_options).decode("utf-8"), comments=True):
        entry = line
        if line.startswith("{"):
            try:
                entry = parse_row(line, ("audio_filepath",))["audio_filepath"]
            except ValueError as error:
                raise ManifestError(f"{uri} line {number}: expected JSON with 'audio_filepath' ({error})") from None
        uris.append(resolve_entry(entry, folder))
    return uris


def read_jsonl(
    uri: str,
    storage_options: dict | None = None,
    *,
    required: Sequence[str] = (),
    strict: bool = False,
    missing_ok: bool = False,
) -> list[tuple[int, dict]]:
    """`jsonl.parse_jsonl` of the file at `uri`; with `missing_ok` a file that does not exist has no rows."""
    if missing_ok and not exists(uri, storage_options):
        return []
    return parse_jsonl(read_bytes(uri, storage_options).decode("utf-8"), uri, required=required, strict=strict)


def _parent_uri(uri: str, storage_options: dict | None) -> str:
    fs, path = fs_for(uri, storage_options)
    return _uri_like(fs, posixpath.dirname(path.rstrip("/")), uri)


def _list_manifest(uri: str, storage_options: dict | None) -> list[AudioRef]:
    if not exists(uri, storage_options):
        raise FileNotFoundError(f"manifest {uri} does not exist")
    folder = _parent_uri(uri, storage_options)
    return _refs_for_files(read_manifest(uri, storage_options), storage_options, folder, uri)


def _refs_for_files(
    uris: list[str], storage_options: dict | None, base_folder: str | None = None, listed_in: str = ""
) -> list[AudioRef]:
    """Refs for named files, keyed relative to the deepest folder holding them all (and base_folder)."""
    located = [(uri, *fs_for(uri, storage_options)) for uri in uris]
    if not located:
        return []
    folders = [posixpath.dirname(path) for _, _, path in located]
    named = list(uris)
    if base_folder is not None:
        folders.append(fs_for(base_folder, storage_options)[1])
        named.append(base_folder)
    if len({get_protocol(uri) for uri in named}) == 1:
        root = posixpath.commonpath(folders) if len(set(folders)) > 1 else folders[0]
    else:
        root = ""  # no folder holds files from two filesystems: keys keep their whole path
    refs = []
    for uri, fs, path in located:
        if _protocols(fs) & LOCAL_PROTOCOLS and os.path.islink(path):
            info = _link_info(path) or {}
        else:
            try:
                info = fs.info(path)
            except FileNotFoundError as error:
                where = f" (listed in {listed_in})" if listed_in else ""
                raise FileNotFoundError(f"{uri}{where} does not exist") from error
        size = int(info.get("size") or 0)
        refs.append(AudioRef(_uri_like(fs, path, uri), _relative_key(path, root), size, _stamp(info)))
    return refs


def _list_directory(
    fs: fsspec.AbstractFileSystem, root: str, like: str, recursive: bool, suffixes: tuple[str, ...]
) -> list[AudioRef]:
    root = root.rstrip("/") or "/"
    fs.invalidate_cache(root)  # a job must see what was written since this filesystem last listed
    if recursive:
        entries = fs.find(root, detail=True)
    else:
        entries = {entry["name"]: entry for entry in fs.ls(root, detail=True)}
    return _refs_from_entries(fs, entries, root, like, suffixes)


def _list_glob(
    fs: fsspec.AbstractFileSystem, pattern: str, like: str, suffixes: tuple[str, ...]
) -> list[AudioRef]:
    parts = pattern.split("/")
    first_wildcard = next(i for i, part in enumerate(parts) if _is_glob(part))
    root = "/".join(parts[:first_wildcard]) or ("/" if pattern.startswith("/") else "")
    fs.invalidate_cache(root)
    return _refs_from_entries(fs, fs.glob(pattern, detail=True), root, like, suffixes)


def _refs_from_entries(
    fs: fsspec.AbstractFileSystem,
    entries: dict[str, dict[str, Any]],
    root: str,
    like: str,
    suffixes: tuple[str, ...],
) -> list[AudioRef]:
    refs = []
    for path, info in entries.items():
        if not path.lower().endswith(suffixes):
            continue
        if info.get("type") != "file":
            if not info.get("islink"):
                continue
            info = _link_info(path)  # a link to a file is followed; a broken one stays, to fail as an input
            if info is None:
                continue
        refs.append(AudioRef(_uri_like(fs, path, like), _relative_key(path, root), int(info.get("size") or 0),
                             _stamp(info)))
    return sorted(refs, key=lambda ref: ref.key)


def _link_info(path: str) -> dict[str, Any] | None:
    """What a local symbolic link points to: a file's size and time; None for a directory (not followed,
    so a link can never make a listing loop); no size and no stamp for a dangling link or a loop, which
    then fails as that file's own error."""
    try:
        status = os.stat(path)
    except OSError:
        return {"size": 0}
    if stat.S_ISDIR(status.st_mode):
        return None
    return {"size": status.st_size, "mtime": status.st_mtime}


def _check_unique(refs: list[AudioRef]) -> list[AudioRef]:
    by_key: dict[str, AudioRef] = {}
    unique = []
    for ref in refs:
        seen = by_key.get(ref.key)
        if seen is None:
            by_key[ref.key] = ref
            unique.append(ref)
        elif seen.uri != ref.uri:
            raise KeyCollisionError(
                f"{seen.uri} and {ref.uri} both map to key {ref.key!r}; their outputs would collide"
            )
    return unique


def _relative_key(path: str, root: str) -> str:
    root = root.rstrip("/")
    if not root:
        return path.lstrip("/")
    return path[len(root) + 1 :] if path.startswith(root + "/") else posixpath.basename(path)


def _uri_like(fs: fsspec.AbstractFileSystem, path: str, like: str) -> str:
    """`path` as a URI in the style of `like`: a plain local path stays plain."""
    if _protocols(fs) & LOCAL_PROTOCOLS and "://" not in like:
        return path
    return fs.unstrip_protocol(path)


def _stamp(info: dict[str, Any]) -> str:
    for field in ("ETag", "etag", "mtime", "LastModified", "last_modified", "updated", "created"):
        value = info.get(field)
        if value is None:
            continue
        if isinstance(value, datetime.datetime):
            value = value.timestamp()
        return str(value).strip('"')
    return ""


def _is_glob(path: str) -> bool:
    return any(character in path for character in _GLOB_CHARACTERS)


def _exists(fs: fsspec.AbstractFileSystem, path: str) -> bool:
    fs.invalidate_cache(path)
    return fs.exists(path)


def _is_directory(fs: fsspec.AbstractFileSystem, path: str) -> bool:
    fs.invalidate_cache(path)
    return fs.isdir(path)


def _protocols(fs: fsspec.AbstractFileSystem) -> set[str]:
    protocol = fs.protocol
    return {protocol} if isinstance(protocol, str) else set(protocol)


def _temporary_name(path: str) -> str:
    folder, name = posixpath.split(path)
    return posixpath.join(folder, f".{name}.{secrets.token_hex(6)}.part")


def _as_bytes(data: bytes | Iterable[bytes]) -> bytes:
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data)
    return b"".join(data)


def _write_local_atomic(path: str, chunks: Iterable[bytes]) -> None:
    folder = os.path.dirname(path)
    os.makedirs(folder, exist_ok=True)
    temporary = _temporary_name(path)
    # os.open with 0o666 lets the umask decide permissions, as for any new file (mkstemp gives 0o600).
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(descriptor, "wb") as file:
            for chunk in chunks:
                file.write(chunk)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise
