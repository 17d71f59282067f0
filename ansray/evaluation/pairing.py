"""Pairs each enhanced file with its noisy input and clean reference: by relative key across folder trees,
or from the denoise job's manifest, whose rows name the output (`audio_filepath`) and its input
(`input_filepath`). Several enhanced sets (systems, each with a name) pair with the same noisy and clean
files. A file without a partner is reported, never silently dropped."""

from __future__ import annotations

import logging
import posixpath
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from ansray.data.layouts import FILEID
from ansray.io import fs_for, list_audio, read_jsonl

log = logging.getLogger(__name__)

PAIR_BY = ("key", "fileid")
"""How files in different trees match: by relative key less its extension (`a/b.flac` ~ `a/b.wav`), or
by the `fileid_N` that DNS Challenge file names end with (`..._snr5_fileid_7.wav` ~ `clean_fileid_7.wav`)."""

ENHANCED = "enhanced"
"""The system name of an enhanced set given without one."""
PARTNER_ROLES = ("noisy", "clean")
"""The roles of the files that every system's output is compared with; no system may take these names."""
SYSTEM_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]*")


class PairingError(ValueError):
    """The inputs cannot be paired at all: a manifest row that is not JSON with the paths, or no pair."""


@dataclass(frozen=True)
class EvaluationItem:
    """One input and its files, as URIs: the output of each system (`enhanced`: system name -> URI), the
    noisy input and the clean reference where given, and its reference transcript where known. `key`
    names it in the results: its path relative to the first system's tree, or, from a manifest, its
    input's path relative to the inputs' common folder, or, with no enhanced set, the noisy file's."""

    key: str
    enhanced: dict[str, str] = field(default_factory=dict)
    noisy: str | None = None
    clean: str | None = None
    text: str | None = None


@dataclass(frozen=True)
class Unpaired:
    """A file left out of the evaluation: its URI, its role (a system's name, noisy or clean) and why."""

    uri: str
    role: str
    reason: str


@dataclass
class Pairing:
    """The items to evaluate, in key order, and the files that could not be paired."""

    items: list[EvaluationItem] = field(default_factory=list)
    unpaired: list[Unpaired] = field(default_factory=list)


def as_systems(enhanced: str | Mapping[str, str] | None) -> dict[str, str]:
    """Enhanced sets by system name: a single URI is named ENHANCED; None is no set."""
    if enhanced is None:
        return {}
    if isinstance(enhanced, str):
        return {ENHANCED: enhanced}
    return dict(enhanced)


def check_system_names(names: Iterable[str]) -> None:
    """Raises ValueError for a name that is not a word of letters, digits and `_.+-`, that is
    taken by the noisy or clean files, or that is given twice."""
    seen = set()
    for name in names:
        if not SYSTEM_NAME.fullmatch(name):
            raise ValueError(f"system name {name!r}: use letters, digits and _.+- (starting with a letter or digit)")
        if name in PARTNER_ROLES:
            raise ValueError(f"system name {name!r} is taken by the {name} files; choose another")
        if name in seen:
            raise ValueError(f"system name {name!r} is given twice")
        seen.add(name)


def pair_files(
    enhanced: str | Mapping[str, str] | None,
    noisy: str | None = None,
    clean: str | None = None,
    *,
    pair_by: str = "key",
    storage_options: dict | None = None,
) -> Pairing:
    """Pairs the files under each enhanced set, `noisy` and `clean` (folders, prefixes or globs; see
    list_audio). `enhanced` is one URI, or URIs by system name.

    An enhanced set may instead be the denoise job's manifest (`.jsonl`): its rows give the noisy
    partners, so `noisy` must then be None. An item needs a partner in every tree given; files that
    lack one, and keys that two files of one tree share, are listed in `Pairing.unpaired`."""
    if pair_by not in PAIR_BY:
        raise ValueError(f"pair_by must be one of {PAIR_BY}, got {pair_by!r}")
    systems = as_systems(enhanced)
    check_system_names(systems)
    manifests = {name: uri for name, uri in systems.items() if is_manifest(uri)}
    if manifests and noisy is not None:
        raise ValueError("with a denoise manifest, the noisy inputs are its rows' input_filepath; drop noisy")
    unpaired: list[Unpaired] = []
    keyed: dict[str, list[tuple[str, str]]] = {}
    manifest_rows: dict[str, list[dict]] = {}
    for name, uri in manifests.items():
        manifest_rows[name], failed = read_denoise_manifest(uri, storage_options)
        prefix = f"{name}: " if len(systems) > 1 else ""
        unpaired.extend(Unpaired(u.uri, u.role, prefix + u.reason) for u in failed)
    if manifests:
        inputs = list(dict.fromkeys(row["input_filepath"] for rows in manifest_rows.values() for row in rows))
        input_keys = dict(zip(inputs, keys_below_common_folder(inputs, storage_options)))
    for name, uri in systems.items():
        if name in manifests:
            keyed[name] = [(input_keys[row["input_filepath"]], row["audio_filepath"]) for row in manifest_rows[name]]
        else:
            keyed[name] = _listed(uri, storage_options)
    if manifests:
        keyed["noisy"] = [(input_keys[uri], uri) for uri in inputs]
    elif noisy is not None:
        keyed["noisy"] = _listed(noisy, storage_options)
    if clean is not None:
        keyed["clean"] = _listed(clean, storage_options)
    if not keyed:
        raise ValueError("nothing to pair: give an enhanced set or the noisy files")

    by_match: dict[str, dict[str, tuple[str, str]]] = {}
    for role, files in keyed.items():
        by_match[role], left_out = _index_by_match_key(files, role, pair_by)
        unpaired.extend(left_out)
    pairing = _join(by_match, systems=list(systems))
    pairing.unpaired = unpaired + pairing.unpaired
    return pairing


def is_manifest(uri: str) -> bool:
    return uri.lower().endswith(".jsonl")


def read_denoise_manifest(uri: str, storage_options: dict | None = None) -> tuple[list[dict], list[Unpaired]]:
    """The rows of a denoise manifest that name an output to evaluate, and the inputs it failed on.

    The manifest is appended to by each run, so the last row for an input decides. Rows with status
    `error` have no output and are returned as Unpaired with the job's reason. Paths are used as the
    job wrote them. Raises PairingError for rows that are not the denoise job's."""
    latest: dict[str, dict] = {}
    for number, row in read_jsonl(uri, storage_options):
        if "input_filepath" not in row:
            raise PairingError(f"{uri} line {number}: expected the denoise job's rows, with input_filepath")
        if row.get("status") != "error" and not row.get("audio_filepath"):
            raise PairingError(f"{uri} line {number}: a row with status {row.get('status')!r} names no audio_filepath")
        latest[row["input_filepath"]] = row
    rows, failed = [], []
    for row in latest.values():
        if row.get("status") == "error":
            reason = f"the denoise job failed on it: {row.get('error') or 'no reason recorded'}"
            failed.append(Unpaired(row["input_filepath"], "noisy", reason))
        else:
            rows.append(row)
    return rows, failed


def keys_below_common_folder(uris: list[str], storage_options: dict | None = None) -> list[str]:
    """Each URI's path relative to the deepest folder that holds them all (the whole path where they
    live on different filesystems)."""
    if not uris:
        return []
    paths = [fs_for(uri, storage_options)[1] for uri in uris]
    protocols = {uri.split("://")[0] if "://" in uri else "file" for uri in uris}
    if len(protocols) > 1:
        return [path.lstrip("/") for path in paths]
    folders = {posixpath.dirname(path) for path in paths}
    root = posixpath.commonpath(list(folders)) if len(folders) > 1 else folders.pop()
    return [posixpath.relpath(path, root) if root else path.lstrip("/") for path in paths]


def match_key(key: str, pair_by: str) -> str | None:
    """What `key` is matched on across trees; None where a DNS file name has no `fileid_N`."""
    if pair_by == "fileid":
        found = FILEID.search(key)
        return f"fileid_{found.group(1)}" if found else None
    return posixpath.splitext(key)[0]


def _listed(uri: str, storage_options: dict | None) -> list[tuple[str, str]]:
    return [(ref.key, ref.uri) for ref in list_audio(uri, storage_options=storage_options)]


def _index_by_match_key(
    files: Iterable[tuple[str, str]], role: str, pair_by: str
) -> tuple[dict[str, tuple[str, str]], list[Unpaired]]:
    """(match key -> (key, uri)) for one tree, and the files whose match key is missing or shared."""
    groups: dict[str, list[tuple[str, str]]] = {}
    left_out = []
    for key, uri in files:
        matched = match_key(key, pair_by)
        if matched is None:
            left_out.append(Unpaired(uri, role, f"no fileid_N in the name {key!r}"))
        else:
            groups.setdefault(matched, []).append((key, uri))
    index = {}
    for matched, group in groups.items():
        if len(group) == 1:
            index[matched] = group[0]
            continue
        keys = ", ".join(key for key, _ in group)
        left_out.extend(Unpaired(uri, role, f"ambiguous: {keys} all match {matched!r}") for _, uri in group)
    return index, left_out


def _join(by_match: dict[str, dict[str, tuple[str, str]]], systems: list[str]) -> Pairing:
    """Items for the match keys present in every role; the first role (systems in order, then noisy,
    then clean) gives the item's key."""
    roles = systems + [role for role in PARTNER_ROLES if role in by_match]
    pairing = Pairing()
    for matched in sorted(set().union(*(by_match[role] for role in roles))):
        present = {role: by_match[role][matched] for role in roles if matched in by_match[role]}
        missing = [role for role in roles if role not in present]
        if missing:
            reason = f"no {' or '.join(missing)} file matches {matched!r}"
            pairing.unpaired.extend(Unpaired(uri, role, reason) for role, (_, uri) in present.items())
            continue
        pairing.items.append(EvaluationItem(
            key=present[roles[0]][0],
            enhanced={system: present[system][1] for system in systems},
            **{role: present[role][1] for role in PARTNER_ROLES if role in present},
        ))
    pairing.items.sort(key=lambda item: item.key)
    return pairing
