"""Packs a corpus folder into tar chunks of bounded size for a machine reached through size-limited
transfers, and unpacks them there, checking that every chunk arrived whole.

python scripts/pack_corpus.py pack CORPUS DEST_PREFIX [--max-mb 45] [--include train/clean ...]
    writes DEST_PREFIX-1/corpus.tar, DEST_PREFIX-2/corpus.tar, ..., each with CHUNKS.json (all chunks'
    names, sizes and SHA-256, so the unpacking side knows what to wait for)
python scripts/pack_corpus.py unpack 'SOURCE_GLOB' DEST
    extracts each chunk once (a marker records its hash), then fails with the names of missing chunks

Audio is Vorbis already, so the tars are not compressed again (gzip would gain about 1%).
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import json
import sys
import tarfile
from pathlib import Path

CHUNK_FILE = "corpus.tar"
INDEX_FILE = "CHUNKS.json"


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def plan_chunks(files: list[tuple[str, int]], max_bytes: int) -> list[list[str]]:
    """Consecutive runs of (name, size) in the given order, each adding up to at most `max_bytes`
    (a single larger file gets a chunk of its own)."""
    chunks: list[list[str]] = [[]]
    used = 0
    for name, size in files:
        if chunks[-1] and used + size > max_bytes:
            chunks.append([])
            used = 0
        chunks[-1].append(name)
        used += size
    return [chunk for chunk in chunks if chunk]


def pack(corpus: Path, prefix: Path, max_mb: float, include: list[str]) -> list[Path]:
    paths = [corpus / part for part in include] or [corpus]
    files = sorted({str(p.relative_to(corpus)) for path in paths
                    for p in ([path] if path.is_file() else path.rglob("*")) if p.is_file()})
    missing = [str(path) for path in paths if not path.exists()]
    if missing:
        sys.exit(f"pack_corpus.py: nothing to pack at {', '.join(missing)}")
    tar_overhead = 1024  # header and padding per member
    chunks = plan_chunks([(name, (corpus / name).stat().st_size + tar_overhead) for name in files], int(max_mb * 1e6))
    folders = [prefix.parent / f"{prefix.name}-{i + 1}" for i in range(len(chunks))]
    for folder, names in zip(folders, chunks):
        folder.mkdir(parents=True, exist_ok=True)
        with tarfile.open(folder / CHUNK_FILE, "w", format=tarfile.PAX_FORMAT) as tar:
            for name in names:
                info = tar.gettarinfo(str(corpus / name), arcname=name)
                info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""  # same bytes every time
                with open(corpus / name, "rb") as f:
                    tar.addfile(info, f)
    index = [{"name": folder.name, "bytes": (folder / CHUNK_FILE).stat().st_size, "sha256": sha256(folder / CHUNK_FILE),
              "files": len(names)} for folder, names in zip(folders, chunks)]
    for folder in folders:
        (folder / INDEX_FILE).write_text(json.dumps(index, indent=1) + "\n", encoding="utf-8")
    for entry in index:
        print(f"{prefix.parent / entry['name']}: {entry['files']} files, {entry['bytes'] / 1e6:.1f} MB")
    return folders


def unpack(pattern: str, dest: Path) -> None:
    folders = sorted(Path(p) for p in glob.glob(pattern) if (Path(p) / CHUNK_FILE).exists())
    if not folders:
        sys.exit(f"pack_corpus.py: no chunks match {pattern!r} (each a folder holding {CHUNK_FILE})")
    # Chunk folders are packed together, each with the same index of all of them.
    index = json.loads((folders[0] / INDEX_FILE).read_text(encoding="utf-8"))
    expected = {entry["name"]: entry for entry in index}
    dest.mkdir(parents=True, exist_ok=True)
    for folder in folders:
        entry = expected.get(folder.name)
        if entry is None:
            sys.exit(f"pack_corpus.py: {folder} is not in {folders[0] / INDEX_FILE}: chunks of different packings")
        marker = dest / f".unpacked-{folder.name}-{entry['sha256'][:16]}"
        if marker.exists():
            continue
        digest = sha256(folder / CHUNK_FILE)
        if digest != entry["sha256"]:
            sys.exit(f"pack_corpus.py: {folder / CHUNK_FILE}: SHA-256 {digest[:16]} differs from the index's "
                     f"{entry['sha256'][:16]} (incomplete transfer?)")
        with tarfile.open(folder / CHUNK_FILE) as tar:
            tar.extractall(dest, filter="data")
        marker.write_text(digest + "\n")
        print(f"unpacked {folder} ({entry['files']} files) into {dest}")
    # A chunk unpacked by an earlier call counts as here even if its folder has gone since.
    done = {entry["name"] for entry in index if (dest / f".unpacked-{entry['name']}-{entry['sha256'][:16]}").exists()}
    missing = sorted(set(expected) - done)
    if missing:
        sys.exit(f"pack_corpus.py: chunks not here yet: {', '.join(missing)} (have {', '.join(f.name for f in folders)})")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    packing = commands.add_parser("pack")
    packing.add_argument("corpus", type=Path)
    packing.add_argument("prefix", type=Path, help="chunks go to PREFIX-1, PREFIX-2, ...")
    packing.add_argument("--max-mb", type=float, default=45.0)
    packing.add_argument("--include", action="append", default=[], help="subfolder or file to pack (default: all)")
    unpacking = commands.add_parser("unpack")
    unpacking.add_argument("pattern", help="glob of chunk folders, e.g. '.device/corpus-*'")
    unpacking.add_argument("dest", type=Path)
    args = parser.parse_args(argv)
    if args.command == "pack":
        pack(args.corpus, args.prefix, args.max_mb, args.include)
    else:
        unpack(args.pattern, args.dest)


if __name__ == "__main__":
    main()
