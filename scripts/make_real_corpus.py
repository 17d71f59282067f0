"""Builds starter model v2's training and held-out material (issue 18) from a folder of real recordings
laid out like /work/shared/speech-corpus: speech split by speaker, noise split by file, 16 kHz mono.

python scripts/make_real_corpus.py CORPUS_DIR OUT [--heldout-speakers 40] [--heldout-noise-fraction 0.25]
  [--generated-noise-minutes 0] [--heldout-generated-noises 5] [--train-speech-mb 0] [--seed 0]

OUT/train/clean/<speaker>/   speech of training speakers (LibriSpeech Vorbis files copied as they are)
OUT/train/noise/<folder>/    real noise files not held out (16 kHz mono Vorbis)
OUT/train/noise-generated/   ansray.data.noises clips, babble from training speakers (optional)
OUT/heldout/clean/<speaker>/ every LibriSpeech test-other speaker and --heldout-speakers speakers
                             found only among the train-clean-100 excerpts
OUT/heldout/noise/<folder>/  real noise files never used in training
OUT/heldout/noise-generated/ generated noises with held-out seeds, babble from held-out speakers
OUT/heldout/realworld/       Common Voice clips (no clean reference): evaluation inputs only
OUT/corpus.jsonl, OUT/SOURCES.md (every file's source and licence, and the credits CC BY asks for)

The same flags and corpus give the same files and the same decoded audio (Ogg serial numbers differ).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import re
import shlex
import shutil
import sys
import time
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

from ansray.data.mix import active_fraction, level_db
from ansray.data.noises import NOISE_KINDS, VOICE_NOISES, make_noise
from ansray.io import audio_info, downmix, read_audio, resample, write_audio

log = logging.getLogger("real_corpus")

RATE = 16000
TRAIN_CLEAN_5 = "speech/librispeech-train-clean-5"
TRAIN_CLEAN_100 = "speech/librispeech-train-clean-100-excerpts"
TEST_OTHER = "speech/librispeech-test-other-excerpts"
COMMON_VOICE = "speech/commonvoice-cc0"
NOISE = "noise"
AUDIO_SUFFIXES = (".ogg", ".flac", ".wav", ".mp3")
# The speaker of tests/fixtures/speech and examples/: the tests call that speech "never in the
# training corpus", so it is held out wherever it turns up.
ALWAYS_HELD_OUT = ("198",)
LIBRISPEECH_CREDIT = ("LibriSpeech ASR corpus (Vassil Panayotov, Guoguo Chen, Daniel Povey, Sanjeev Khudanpur), "
                      "https://www.openslr.org/12/, from LibriVox public-domain audiobook recordings")
SPEECH_COMMANDS_CREDIT = "Speech Commands dataset (Pete Warden, Google), background noise recordings"
SILENT_LEVEL_DB = -50.0  # Common Voice clips quieter than this are left out (six are nearly silent)
MIN_ACTIVE_FRACTION = 0.2
GENERATED_SECONDS = (10.0, 20.0)


class CorpusError(ValueError):
    """The corpus folder lacks something this script needs; the message names the file."""


@dataclass
class Entry:
    """One output file: where it came from, what it is, under which licence."""

    source: str  # path relative to CORPUS_DIR, or "generated"
    path: str  # path relative to OUT
    split: str  # train | heldout
    role: str  # clean | noise | realworld
    licence: str
    credit: str = ""
    speaker: str | None = None
    kind: str | None = None
    duration: float = 0.0
    extra: dict = field(default_factory=dict)

    def row(self) -> dict:
        return {k: v for k, v in {"path": self.path, "source": self.source, "split": self.split, "role": self.role,
                                  "licence": self.licence, "credit": self.credit, "speaker": self.speaker,
                                  "kind": self.kind, "duration": round(self.duration, 4), **self.extra}.items()
                if v not in (None, "")}


# ---------------------------------------------------------------------------------------------
# Speakers


def speaker_of(path: Path) -> str:
    """LibriSpeech names files `<speaker>-<chapter>-<utterance>`."""
    return path.name.split("-", 1)[0]


def audio_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)


def read_genders(speakers_txt: Path) -> dict[str, str]:
    """{speaker: "F" | "M"} from LibriSpeech's SPEAKERS.TXT; {} without one."""
    if not speakers_txt.exists():
        return {}
    genders = {}
    for line in speakers_txt.read_text(encoding="utf-8", errors="replace").splitlines():
        fields = [f.strip() for f in line.split("|")]
        if not line.startswith(";") and len(fields) >= 5:
            genders[fields[0]] = fields[1]
    return genders


def read_reader_names(speakers_txt: Path) -> dict[str, str]:
    names = {}
    if speakers_txt.exists():
        for line in speakers_txt.read_text(encoding="utf-8", errors="replace").splitlines():
            fields = [f.strip() for f in line.split("|")]
            if not line.startswith(";") and len(fields) >= 5:
                names[fields[0]] = fields[4]
    return names


def choose_heldout_speakers(
    by_folder: dict[str, list[Path]], count: int, genders: dict[str, str], seed: int
) -> set[str]:
    """The held-out speakers: all of test-other, every ALWAYS_HELD_OUT speaker present, and `count`
    speakers drawn (seeded, alternating female and male where SPEAKERS.TXT says) from those who
    appear only among the train-clean-100 excerpts, so that no training speaker is lost."""
    speakers = {folder: {speaker_of(p) for p in paths} for folder, paths in by_folder.items()}
    heldout = set(speakers.get(TEST_OTHER, set()))
    heldout |= {s for group in speakers.values() for s in group if s in ALWAYS_HELD_OUT}
    only_100 = sorted(speakers.get(TRAIN_CLEAN_100, set()) - speakers.get(TRAIN_CLEAN_5, set()) - heldout, key=int)
    if count > len(only_100):
        raise CorpusError(f"{TRAIN_CLEAN_100}: asked to hold out {count} speakers, only {len(only_100)} appear nowhere else")
    rng = np.random.default_rng((seed, 1))
    pools = {g: [s for s in only_100 if genders.get(s, "?") == g] for g in ("F", "M", "?")}
    for pool in pools.values():
        rng.shuffle(pool)
    chosen: list[str] = []
    order = ["F", "M"]
    while len(chosen) < count:
        for gender in order + ["?"]:
            if pools[gender] and len(chosen) < count:
                chosen.append(pools[gender].pop())
        if not any(pools.values()):
            break
    return heldout | set(chosen)


def subsample_per_speaker(paths: list[Path], fraction: float, seed: int) -> list[Path]:
    """Keeps ceil(fraction x n) utterances of each speaker (seeded): every speaker stays."""
    if fraction >= 1.0:
        return paths
    by_speaker: dict[str, list[Path]] = {}
    for path in paths:
        by_speaker.setdefault(speaker_of(path), []).append(path)
    kept = []
    for speaker, group in sorted(by_speaker.items()):
        rng = np.random.default_rng((seed, 2, int(speaker) if speaker.isdigit() else len(speaker)))
        order = rng.permutation(len(group))
        kept += [group[i] for i in sorted(order[: max(1, int(np.ceil(fraction * len(group))))])]
    return sorted(kept)


# ---------------------------------------------------------------------------------------------
# Licences, read from the corpus's own files


def folder_licences(corpus: Path) -> dict[str, str]:
    """{folder: licence} from the corpus README's tables (rows like | `noise/x/` | ... | licence |)."""
    readme = corpus / "README.md"
    if not readme.exists():
        raise CorpusError(f"{readme}: missing (it names each folder's licence)")
    licences = {}
    for line in readme.read_text(encoding="utf-8").splitlines():
        match = re.match(r"\|\s*`([^`]+)/`\s*\|(.*)\|\s*$", line)
        if match:
            licences[match.group(1)] = match.group(2).split("|")[-1].strip()
    return licences


def normalised(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def _blanket_row(m: re.Match) -> tuple[str, tuple[str, str, str]]:
    name, url, author, editor, licence, _ = m.groups()
    return name, (licence, author + (f" (edited by {editor})" if editor not in ("-", "") else ""), url)


def _assets_row(m: re.Match) -> tuple[str, tuple[str, str, str]]:
    stem, licence, url, author = m.groups()
    return stem, (licence, author, url)


def _ibm_max_row(m: re.Match) -> tuple[str, tuple[str, str, str]]:
    name, url, author, licence = m.groups()
    return Path(name).stem, ({"Attribution": "CC BY", "Creative Commons 0": "CC0"}.get(licence, licence), author, url)


# Licence files found beside noise files, the pattern of one file's line, and how to read it.
LICENCE_FILES = (
    ("SOUNDS_LICENSING.md",  # Blanket: | [Name](url) | Author | Editor | License
     re.compile(r"\|\s*\[([^\]]+)\]\(([^)]+)\)\s*\|\s*([^|]+?)\s*\|\s*([^|]+?)\s*\|\s*([^|]+?)\s*(\||$)"), _blanket_row),
    ("soundscape-assets.md",  # | Soundscape | `public/sfx/x.mp3` | License | URL | Artist |
     re.compile(r"\|[^|]+\|\s*`[^`]*?([^/`]+)\.\w+`\s*\|\s*([^|]+?)\s*\|\s*(\S+)\s*\|\s*([^|]+?)\s*\|"), _assets_row),
    ("README.md",  # IBM MAX: *    [x.wav](url) by [Author](...) | ... License:</span> Attribution
     re.compile(r"\*\s+\[([^\]]+)\]\(([^)]+)\) by \[([^\]]+)\].*License:</span>\s*(.+?)\s*$"), _ibm_max_row),
)


def file_licences(folder: Path) -> dict[str, tuple[str, str, str]]:
    """{normalised file stem: (licence, author, source URL)} from the licence files beside the noise
    files (LICENCE_FILES), and a public-domain dedication covering the whole folder."""
    found: dict[str, tuple[str, str, str]] = {}
    for name, pattern, read_row in LICENCE_FILES:
        if (folder / name).exists():
            for line in (folder / name).read_text(encoding="utf-8").splitlines():
                match = pattern.match(line)
                if match:
                    stem, entry = read_row(match)
                    found[normalised(stem)] = entry
    public_domain = folder / "LICENSE-public-domain.txt"
    if public_domain.exists():
        author = re.search(r"I, (\w+), hereby", public_domain.read_text(encoding="utf-8"))
        for path in audio_files(folder):
            found[normalised(path.stem)] = ("public domain", author.group(1) if author else "", public_domain.name)
    return found


def noise_licence(path: Path, corpus: Path, folders: dict[str, str]) -> tuple[str, str, str]:
    """(licence, credit, source URL) of one noise file: its own entry in a licence file beside it,
    else its folder's licence from the corpus README, unless that says it is per file."""
    per_file = file_licences(path.parent).get(normalised(path.stem))
    if per_file:
        return per_file
    folder = str(path.parent.relative_to(corpus))
    licence = folders.get(folder, "")
    if not licence or "per file" in licence.lower():
        raise CorpusError(f"{path}: no licence found for this file (neither beside it nor in README.md)")
    credit = SPEECH_COMMANDS_CREDIT if "speech-commands" in folder else ""
    return licence, credit, ""


def is_attribution(licence: str) -> bool:
    return bool(re.search(r"\bCC[ -]BY\b|Attribution", licence, re.IGNORECASE))


# ---------------------------------------------------------------------------------------------
# Writing


def decoded_digest(path: Path) -> str:
    data, _, _ = read_audio(str(path))
    return hashlib.sha256(np.ascontiguousarray(data, dtype=np.float32).tobytes()).hexdigest()[:16]


def read_mono(source: Path) -> np.ndarray:
    """The whole file, downmixed and at 16 kHz. Read with soundfile directly: for MP3, libsndfile's
    frame count is an estimate from the header, which ansray's truncation check rejects even when
    the whole stream decodes."""
    data, rate = sf.read(source, dtype="float32", always_2d=True)
    return resample(downmix(data)[:, 0], rate, RATE)


def copy_or_convert(source: Path, dest: Path, *, copy_if_16k_mono: bool) -> float:
    """Copies a 16 kHz mono file as it is (with `copy_if_16k_mono`); anything else is downmixed,
    resampled and encoded as Ogg Vorbis. Returns the duration in seconds."""
    info = audio_info(str(source))
    dest.parent.mkdir(parents=True, exist_ok=True)
    if copy_if_16k_mono and info.sample_rate == RATE and info.channels == 1 and source.suffix == dest.suffix:
        shutil.copyfile(source, dest)
        return info.frames / RATE
    mono = read_mono(source)
    write_audio(str(dest), mono, RATE, format="OGG", subtype="VORBIS")
    return len(mono) / RATE


def speech_entries(corpus: Path, out: Path, files: list[Path], split: str, names: dict[str, str],
                   licences: dict[str, str]) -> list[Entry]:
    entries = []
    for source in files:
        speaker = speaker_of(source)
        folder = str(source.relative_to(corpus).parts[0] + "/" + source.relative_to(corpus).parts[1])
        suffix = source.suffix if source.suffix.lower() in (".ogg", ".flac", ".wav") else ".ogg"
        path = Path(split) / "clean" / speaker / (source.stem + suffix)
        # Speech is copied bit for bit where it already is 16 kHz mono: no second lossy coding of targets.
        duration = copy_or_convert(source, out / path, copy_if_16k_mono=True)
        reader = names.get(speaker, "")
        entries.append(Entry(str(source.relative_to(corpus)), str(path), split, "clean", licences.get(folder, "CC BY 4.0"),
                             LIBRISPEECH_CREDIT + (f"; reader: {reader} (LibriVox)" if reader else ""),
                             speaker=speaker, duration=duration))
    return entries


def noise_entries(corpus: Path, out: Path, files: list[Path], split: str, licences: dict[str, str]) -> list[Entry]:
    entries = []
    for source in files:
        licence, credit, url = noise_licence(source, corpus, licences)
        folder = source.parent.name
        path = Path(split) / "noise" / folder / (source.stem + ".ogg")
        # Noise is always Vorbis: 16-bit WAV noise would take a fifth of the device's transfer budget.
        duration = copy_or_convert(source, out / path, copy_if_16k_mono=False)
        entries.append(Entry(str(source.relative_to(corpus)), str(path), split, "noise", licence, credit,
                             kind=f"{folder}/{source.stem}", duration=duration, extra={"url": url} if url else {}))
    return entries


def realworld_entries(corpus: Path, out: Path, licences: dict[str, str]) -> tuple[list[Entry], list[str]]:
    """Common Voice clips at 16 kHz mono FLAC, without the nearly silent ones (returned apart)."""
    entries, silent = [], []
    for source in audio_files(corpus / COMMON_VOICE):
        mono = read_mono(source)
        if level_db(mono) < SILENT_LEVEL_DB or active_fraction(mono, RATE) < MIN_ACTIVE_FRACTION:
            silent.append(str(source.relative_to(corpus)))
            continue
        path = Path("heldout") / "realworld" / (source.stem + ".flac")
        write_audio(str(out / path), mono, RATE, format="FLAC", subtype="PCM_16")
        entries.append(Entry(str(source.relative_to(corpus)), str(path), "heldout", "realworld",
                             licences.get(COMMON_VOICE, "CC0"), "Mozilla Common Voice", duration=len(mono) / RATE))
    return entries, silent


def generated_noise_entries(out: Path, split: str, seconds: float, count: int | None, talkers: list[Path],
                            seed: int) -> list[Entry]:
    """Noise clips from ansray.data.noises, kinds in shuffled rounds, until `seconds` (or `count`
    clips); babble and office voices come from `talkers`, the same split's speech."""
    rng = np.random.default_rng((seed, 3, 0 if split == "train" else 1))
    entries: list[Entry] = []
    kinds: list[str] = []
    total = 0.0
    while (count is None and total < seconds) or (count is not None and len(entries) < count):
        if not kinds:
            kinds = [str(k) for k in rng.permutation(NOISE_KINDS)]
        kind = kinds.pop()
        length = round(float(rng.uniform(*GENERATED_SECONDS)), 2)
        voices: list[np.ndarray] = []
        if kind in VOICE_NOISES:
            chosen = rng.choice(len(talkers), size=min(16, len(talkers)), replace=False)
            voices = [read_audio(str(talkers[i]))[0][:, 0] for i in sorted(chosen)]
        clip_seed = (seed, 4, 0 if split == "train" else 1, len(entries))
        noise = make_noise(kind, np.random.default_rng(clip_seed), length, RATE, voices)
        path = Path(split) / "noise-generated" / f"{kind}_{len(entries):04d}.ogg"
        (out / path).parent.mkdir(parents=True, exist_ok=True)
        write_audio(str(out / path), noise, RATE, format="OGG", subtype="VORBIS")
        entries.append(Entry("generated", str(path), split, "noise", "Apache-2.0 (generated by ansray)",
                             kind=f"generated/{kind}", duration=len(noise) / RATE, extra={"seed": list(clip_seed)}))
        total += length
    return entries


# ---------------------------------------------------------------------------------------------
# SOURCES.md


def sources_markdown(entries: list[Entry], argv: list[str], heldout_speakers: set[str], silent: list[str],
                     genders: dict[str, str], names: dict[str, str]) -> str:
    lines = [
        "# Real-speech corpus for starter model v2: sources and licences",
        "",
        "Made by `scripts/make_real_corpus.py` from the openly licensed recordings gathered in",
        "`shared/speech-corpus` (see its README). Speech is split by speaker, noise by file; nothing",
        "held out is used in training. Common Voice clips have no clean reference: they are held-out",
        "real-world inputs only, never training targets.",
        "",
        "```",
        shlex.join(["python", "scripts/make_real_corpus.py", *argv]),
        "```",
        "",
        "## Counts",
        "",
        "| split | role | files | hours | speakers |",
        "|---|---|---:|---:|---:|",
    ]
    for (split, role), group in sorted(_groups(entries).items()):
        speakers = len({e.speaker for e in group if e.speaker})
        lines.append(f"| {split} | {role} | {len(group)} | {sum(e.duration for e in group) / 3600:.3f} | {speakers or ''} |")
    held = sorted(heldout_speakers, key=lambda s: int(s) if s.isdigit() else 0)
    sexes = Counter(genders.get(s, "?") for s in held)
    lines += ["", f"Held-out speakers ({sexes['F']} female, {sexes['M']} male, {sexes['?']} unknown): "
              + ", ".join(held) + ".", ""]
    if silent:
        lines += ["Common Voice clips left out as nearly silent: " + ", ".join(f"`{s}`" for s in silent) + ".", ""]
    credits = sorted({(e.kind or "", e.credit, e.licence, e.extra.get("url", "")) for e in entries
                      if e.role == "noise" and is_attribution(e.licence) and e.split == "train"})
    lines += [
        "## Credits (CC BY sources used in training)",
        "",
        "A model trained on this corpus must carry these credits (e.g. in its model dir's README).",
        "Changes made: speech copied as published (Ogg Vorbis, 16 kHz mono); noise downmixed to mono,",
        "resampled to 16 kHz and re-encoded as Ogg Vorbis; both mixed at random SNRs for training.",
        "",
        f"- Speech: {LIBRISPEECH_CREDIT}; licence CC BY 4.0 (https://creativecommons.org/licenses/by/4.0/).",
        f"  Readers ({len({e.speaker for e in entries if e.role == 'clean' and e.split == 'train'})} training speakers): "
        + ", ".join(f"{names.get(s) or 'reader'} ({s})" for s in sorted({e.speaker for e in entries if e.role == "clean"
                                                                 and e.split == "train" and e.speaker}, key=int)) + ".",
    ]
    for kind, credit, licence, url in credits:
        lines.append(f"- Noise `{kind}`: {credit or 'see source'}; {licence}" + (f"; {url}" if url else "") + ".")
    lines += ["", "## Every file", "", "| file | source | licence | credit |", "|---|---|---|---|"]
    for e in sorted(entries, key=lambda e: e.path):
        lines.append(f"| `{e.path}` | `{e.source}` | {e.licence} | {e.credit if e.role != 'clean' else 'LibriSpeech'} |")
    return "\n".join(lines) + "\n"


def _groups(entries: list[Entry]) -> dict[tuple[str, str], list[Entry]]:
    groups: dict[tuple[str, str], list[Entry]] = {}
    for e in entries:
        groups.setdefault((e.split, e.role if "generated" not in (e.kind or "") else "noise-generated"), []).append(e)
    return groups


# ---------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus", type=Path, help="the recordings (layout of shared/speech-corpus)")
    parser.add_argument("output", type=Path, help="folder to write; must not hold an earlier corpus")
    parser.add_argument("--heldout-speakers", type=int, default=40,
                        help="speakers held out from the train-clean-100 excerpts, besides all test-other speakers")
    parser.add_argument("--heldout-noise-fraction", type=float, default=0.25,
                        help="fraction of each noise folder's files held out (at least one per folder)")
    parser.add_argument("--generated-noise-minutes", type=float, default=0.0,
                        help="minutes of ansray-generated noise added to the training noise")
    parser.add_argument("--heldout-generated-noises", type=int, default=5,
                        help="generated noise clips for the held-out evaluation set")
    parser.add_argument("--train-speech-mb", type=float, default=0.0,
                        help="cap on the training speech's size, met by keeping the same fraction of each "
                             "speaker's utterances (0: no cap)")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    started = time.monotonic()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    corpus, out = args.corpus, args.output
    if (out / "corpus.jsonl").exists() or any((out / split).exists() for split in ("train", "heldout")):
        sys.exit(f"{out} already holds a corpus: remove it or choose another output")
    by_folder = {folder: audio_files(corpus / folder) for folder in (TRAIN_CLEAN_5, TRAIN_CLEAN_100, TEST_OTHER)}
    for folder, files in by_folder.items():
        if not files:
            sys.exit(f"{corpus / folder}: no audio files")
    speakers_txt = corpus / TRAIN_CLEAN_5 / "SPEAKERS.TXT"
    genders, names = read_genders(speakers_txt), read_reader_names(speakers_txt)
    licences = folder_licences(corpus)
    heldout = choose_heldout_speakers(by_folder, args.heldout_speakers, genders, args.seed)
    speech = sorted(p for files in by_folder.values() for p in files)
    train_speech = [p for p in speech if speaker_of(p) not in heldout]
    heldout_speech = [p for p in speech if speaker_of(p) in heldout]
    if args.train_speech_mb > 0:
        total_mb = sum(p.stat().st_size for p in train_speech) / 1e6
        train_speech = subsample_per_speaker(train_speech, args.train_speech_mb / total_mb, args.seed)
        log.info("training speech capped at %.0f MB: %d utterances kept (%.0f MB before)", args.train_speech_mb,
                 len(train_speech), total_mb)

    noise_train, noise_heldout = [], []
    for folder in sorted(p for p in (corpus / NOISE).iterdir() if p.is_dir()):
        files = audio_files(folder)
        if not files:
            continue
        rng = np.random.default_rng((args.seed, 5, zlib.crc32(folder.name.encode())))
        held = max(1, int(round(args.heldout_noise_fraction * len(files))))
        chosen = {files[i] for i in rng.choice(len(files), size=min(held, len(files) - 1), replace=False)}
        noise_heldout += sorted(chosen)
        noise_train += [f for f in files if f not in chosen]

    entries = speech_entries(corpus, out, train_speech, "train", names, licences)
    entries += speech_entries(corpus, out, heldout_speech, "heldout", names, licences)
    entries += noise_entries(corpus, out, noise_train, "train", licences)
    entries += noise_entries(corpus, out, noise_heldout, "heldout", licences)
    realworld, silent = realworld_entries(corpus, out, licences)
    entries += realworld
    talkers = {split: [out / e.path for e in entries if e.split == split and e.role == "clean"] for split in ("train", "heldout")}
    if args.generated_noise_minutes > 0:
        entries += generated_noise_entries(out, "train", args.generated_noise_minutes * 60, None, talkers["train"], args.seed)
    if args.heldout_generated_noises > 0:
        entries += generated_noise_entries(out, "heldout", 0.0, args.heldout_generated_noises, talkers["heldout"], args.seed)
    for e in entries:
        if e.source == "generated" or not e.path.endswith(Path(e.source).name):
            e.extra["audio_sha256"] = decoded_digest(out / e.path)

    with open(out / "corpus.jsonl", "w", encoding="utf-8") as manifest:
        manifest.writelines(json.dumps(e.row(), sort_keys=True) + "\n" for e in sorted(entries, key=lambda e: e.path))
    (out / "SOURCES.md").write_text(sources_markdown(entries, argv, heldout, silent, genders, names), encoding="utf-8")
    for (split, role), group in sorted(_groups(entries).items()):
        speakers = len({e.speaker for e in group if e.speaker})
        print(f"{split}/{role}: {len(group)} files, {sum(e.duration for e in group) / 3600:.3f} h"
              + (f", {speakers} speakers" if speakers else ""))
    print(f"written to {out} in {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    try:
        main()
    except CorpusError as error:
        sys.exit(f"make_real_corpus.py: error: {error}")
