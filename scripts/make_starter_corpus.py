"""Builds the starter corpus for issue 9: synthetic speech from Debian's free synthesizers, generated
noises and synthetic RIRs, with held-out voices, texts and noises, a JSONL manifest and SOURCES.md.

python scripts/make_starter_corpus.py --output DIR [--train-minutes 60] [--heldout-minutes 8]
  [--noise-minutes 30] [--rirs 300] [--heldout-rirs 40] [--seed 0] [--workers N]

Needs: apt-get install espeak-ng flite festival festvox-kallpc16k festvox-kdlpc16k
festvox-us-slt-hts wamerican (espeak-ng alone is enough; the others add voices and words).
The same flags and the same Debian packages give byte-identical audio and manifest.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import hashlib
import json
import logging
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import zlib
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import soundfile as sf

from ansray.data.mix import active_fraction
from ansray.data.noises import NOISE_KINDS, make_noise
from ansray.data.rir import DNS_T60_RANGE, estimate_t60, synthetic_rir
from ansray.io import read_audio, resample, write_audio

log = logging.getLogger("starter_corpus")

RATE = 16000
SPLITS = ("train", "heldout")
MIN_SECONDS, MAX_SECONDS = 2.0, 8.0
NOISE_SECONDS = (5.0, 20.0)
HELDOUT_WORD_PERCENT = 15  # open-class words whose crc32 falls below this go to held-out texts only
DICTIONARY = Path("/usr/share/dict/words")
# The dictionary holds profanity and words on violent or sexual topics; a random sentence about them
# reads badly in a published corpus, so words containing these stems are not used.
SENSITIVE_STEMS = (
    "fuck shit cunt bitch whore slut piss bastard nigg fag retard rape porn sex nazi kill murder tortur "
    "molest suicid penis vagin orgasm erot masturb genital nude naked incest pedo homo lesbian drunk "
    "cocaine heroin abort slave terror genocid"
).split()


# ---------------------------------------------------------------------------------------------
# Voices: which synthesizer voice belongs to which split


@dataclasses.dataclass(frozen=True)
class Voice:
    """One synthesizer voice. `speaker` names the recorded person (or espeak-ng formant set) behind
    it, so that flite's and festival's builds of the same speaker land in the same split."""

    engine: str  # espeak-ng | flite | festival
    name: str  # espeak-ng: accent+variant; flite: -voice name; festival: voice_<name> function
    speaker: str
    split: str

    @property
    def id(self) -> str:
        return f"{self.engine}:{self.name}"


# espeak-ng: a voice is an accent (language file) plus a variant (formant and pitch settings).
# Held-out voices pair a held-out accent with a held-out variant, so neither the accent nor the
# timbre is heard in training.
ESPEAK_ACCENTS = {
    "train": ("en", "en-us", "en-gb-scotland", "en-gb-x-gbclan", "en-gb-x-rp", "en-us-nyc"),
    "heldout": ("en-029", "en-gb-x-gbcwmd"),
}
# Other languages reading the English texts: foreign-accented English, for more varied phonetics.
ESPEAK_FOREIGN_ACCENTS = {"train": ("de", "fr", "es", "it", "pl"), "heldout": ("nl", "sv")}
ESPEAK_HELDOUT_VARIANTS = ("f4", "m6", "klatt5", "Annie", "belinda", "travis", "linda", "Gene")
# Variants with strong echo, robotic buzz, whisper or growl: not clean speech.
ESPEAK_EXCLUDED_VARIANTS = {
    "Demonic", "UniRobot", "anikaRobot", "announcer", "Alicia", "Marco", "pablo", "Tweaky", "fast",
    "whisper", "whisperf", "RicishayMax", "RicishayMax2", "RicishayMax3", "Mr serious", "croak",
    *(f"robosoft{n}" for n in ("", 2, 3, 4, 5, 6, 7, 8)),
}
# flite's kal (8 kHz) is left out: an upsampled 8 kHz target would teach the model to cut 4-8 kHz.
FLITE_VOICES = {"kal16": ("kal", "train"), "awb": ("awb", "train"), "slt": ("slt", "train"), "rms": ("rms", "heldout")}
FESTIVAL_VOICES = {
    "kal_diphone": ("kal", "train", "english"),
    "cmu_us_slt_arctic_hts": ("slt", "train", "us"),
    "ked_diphone": ("ked", "heldout", "english"),
}
ENGINE_WEIGHTS = {"espeak-ng": 0.45, "flite": 0.3, "festival": 0.25}
# Mean F0 (Hz) drawn per utterance, where the voice honours it.
F0_RANGES = {"slt": (150, 215), "kal": (85, 135), "awb": (90, 140), "rms": (85, 135), "ked": (85, 135)}

FESTIVAL_VOICE_DIR = Path("/usr/share/festival/voices")


def espeak_variants() -> list[str]:
    """Variant file names from `espeak-ng --voices=variant` (the `!v/NAME` column)."""
    listing = run_tool(["espeak-ng", "--voices=variant"]).decode()
    # The file column may hold a space ("Mr serious"); columns are separated by two or more.
    return sorted({re.split(r"\s{2,}", line.split("!v/")[1])[0].strip() for line in listing.splitlines() if "!v/" in line})


def espeak_languages() -> set[str]:
    listing = run_tool(["espeak-ng", "--voices"]).decode().splitlines()[1:]
    return {line.split()[1] for line in listing if len(line.split()) > 1}


def available_voices() -> list[Voice]:
    """Every installed voice this corpus uses, with its split."""
    voices = []
    if shutil.which("espeak-ng"):
        languages = espeak_languages() | {"en"}
        variants = [v for v in espeak_variants() if v not in ESPEAK_EXCLUDED_VARIANTS]
        for split in SPLITS:
            held = split == "heldout"
            split_variants = [v for v in variants if (v in ESPEAK_HELDOUT_VARIANTS) == held]
            if not held:
                split_variants.append("")  # the accent's own default voice
            for accent in ESPEAK_ACCENTS[split] + ESPEAK_FOREIGN_ACCENTS[split]:
                if accent not in languages:
                    continue
                for variant in split_variants:
                    name = f"{accent}+{variant}" if variant else accent
                    voices.append(Voice("espeak-ng", name, f"espeak-ng:{variant or 'default'}", split))
    if shutil.which("flite"):
        installed = set(run_tool(["flite", "-lv"]).decode().split(":")[-1].split())
        voices += [Voice("flite", name, speaker, split)
                   for name, (speaker, split) in FLITE_VOICES.items() if name in installed]
    if shutil.which("text2wave"):
        voices += [Voice("festival", name, speaker, split)
                   for name, (speaker, split, folder) in FESTIVAL_VOICES.items()
                   if (FESTIVAL_VOICE_DIR / folder / name).is_dir()]
    return voices


# ---------------------------------------------------------------------------------------------
# Texts: sentences from a hand-written grammar over hand-written and dictionary words


NOUNS = """
apple table window garden letter basket bottle bridge candle carpet castle chair cloud coat coin
corner cottage cup desk door drawer engine farmer feather fence field flower forest fountain glass
hammer harbor hat helmet hill horse island jacket kettle key kitchen ladder lake lamp lantern leaf
library map market meadow mirror mountain needle newspaper ocean orange painting pencil piano
picture pillow planet pocket pond radio river road rocket roof saddle sailor school shelf ship
shoe shovel signal silver sister soldier spoon stamp station stone story street student sugar
suitcase table teacher telephone tent ticket tiger tower town tractor train tree truck tunnel
umbrella valley village violin wagon wall wallet watch whistle wheel window wire wolf workshop
anchor badge barrel beacon blanket boat bucket button cabinet camera canvas carrot cart cellar
chimney clock compass cookie crystal curtain diamond dragon elephant envelope factory ferry fiddle
folder garage gate giraffe guitar handle helicopter honey jar jewel kite knife lemon lighthouse
lobster magnet marble medal melon microphone motor mug notebook onion oven owl paddle parcel parrot
peach pebble pepper pigeon pipe pirate potato puzzle rabbit raft ribbon robot sandwich scarf
shell sled spider sponge squirrel staircase statue stove sweater tablet teapot thermometer
toaster tomato trumpet turtle typewriter vase volcano waiter walnut whale windmill zebra doctor
engineer pilot baker nurse gardener lawyer captain driver painter farmer singer tailor banker
""".split()
ADJECTIVES = """
old new small large bright dark quiet loud warm cold heavy light soft hard quick slow early late
empty full clean dirty narrow wide deep shallow sharp smooth rough sweet bitter fresh stale strange
famous tiny huge golden wooden broken hidden careful gentle brave calm clever curious eager fancy
friendly funny green blue red yellow purple orange grey silver shiny dusty muddy rusty foggy sunny
windy rainy frozen distant nearby ancient modern simple plain noisy polite proud rare rich round
square tall thin thick tired wild young lazy busy happy sad angry lucky honest patient nervous
elegant awkward cheerful gloomy humble fragile sturdy crowded lonely spotless colorful delicate
enormous fierce graceful hollow jolly lively massive mellow mighty precious silent slippery sleepy
sticky tender tidy velvet vivid wobbly wooden crisp faint humid
""".split()
# base form, or base:past for irregular past tenses
VERBS = """
carry:carried clean close collect cook count cover deliver describe draw:drew drop:dropped fill
find:found fix fold follow hold:held hide:hid keep:kept lift lock mark measure mend move open paint
pack pick place polish pull push repair return ring:rang sell:sold send:sent sharpen shake:shook
sort stack stir:stirred store sweep:swept take:took tie touch trade turn wash watch weigh wrap:wrapped
bring:brought build:built buy:bought catch:caught choose:chose drive:drove feed:fed guard hang:hung
heat inspect join kick:kicked lend:lent load mix notice order pour print protect raise reach read:read
record remove replace rescue roll save scrub search shift steer stretch test throw:threw unlock visit
""".split()
ADVERBS = """
quickly slowly quietly loudly carefully gently suddenly finally happily sadly easily rarely often
always never seldom briskly calmly eagerly politely proudly softly boldly kindly neatly warmly
""".split()
NAMES = """
Anna Ben Carla David Elena Frank Grace Henry Iris Jack Karen Leo Maria Nina Oscar Paula Quentin Rosa
Sam Tina Victor Wendy Yusuf Zoe Alice Brian Chloe Daniel Emma Felix Greta Hugo Ivan Julia Kevin Laura
Martin Nora Oliver Peter Rachel Simon Thomas Ursula Vera William Amir Bianca Carlos Diana Ethan Fatima
Gabriel Hannah Isaac Jasmine Kofi Lucia Mateo Naomi Omar Priya Ravi Sofia Tariq Uma Wei Yara Ahmed
Beatrice Cedric Dmitri Esther Fiona George Helen Igor Joanna Kenji Linda Mohammed Nadia Pablo Rita
Abigail Adrian Agnes Alberto Alexei Amelia Anders Angela Arjun Astrid Aziz Bernard Bruno Camille
Chen Clara Colin Dalia Dennis Dominic Duncan Edgar Eleanor Elif Emil Erik Farah Fernando Florence
Gareth Gemma Giorgio Gloria Gustav Harriet Hector Ingrid Irene Jamal Javier Jonas Josephine Kamal
Kasia Lars Leila Lena Luca Magnus Malik Marcus Margot Mei Miguel Mira Monica Nathan Nikolai Olga
Patrick Pedro Philippa Rafael Reza Robin Rupert Sabine Selma Sergei Shreya Sven Tamsin Teresa Theo
Tobias Valentina Walter Xavier Yasmin Yuki Zainab Zara Ingmar Hamish Rowena Ottilie Barnaby Cosmo
""".split()
CITIES = """
Boston Denver Dublin Lisbon Madrid Nairobi Oslo Paris Quebec Rome Seattle Sydney Tokyo Vienna Warsaw
Berlin Cairo Geneva Helsinki Istanbul Jakarta Kyoto Lima Manila Naples Ottawa Prague Riga Seoul
Toronto Venice Zurich Athens Bristol Chicago Delhi Edinburgh Glasgow Houston Lagos Milan Munich
Aberdeen Adelaide Amsterdam Antwerp Auckland Baltimore Bangalore Barcelona Belfast Bergen Bogota
Bologna Bordeaux Brisbane Brussels Budapest Calgary Cardiff Chennai Copenhagen Dakar Dallas Dresden
Florence Galway Gdansk Granada Hamburg Hanoi Havana Kingston Krakow Leeds Lyon Marseille Melbourne
Memphis Montreal Mumbai Nantes Norwich Osaka Oxford Perth Phoenix Porto Quito Salzburg Santiago
Seville Stockholm Tallinn Tangier Tbilisi Toulouse Turin Utrecht Valencia Vancouver Winnipeg York
""".split()
PLACES = """
in the kitchen|at the station|near the river|behind the shed|on the top shelf|in the garden|at the
market|under the bridge|by the window|in the basement|at the office|on the balcony|in the hallway|at
the harbor|on the bus|in the attic|at the corner shop|in the library|on the porch|at the airport
""".replace("\n", " ").split("|")
TIMES = """
on Monday|on Tuesday|on Wednesday|on Thursday|on Friday|on Saturday|on Sunday|at noon|at midnight|in
the spring|in the autumn|every evening|at dawn|in January|in March|in July|in October|in December
""".replace("\n", " ").split("|")
PAST_TIMES = "this morning|last night|yesterday|last week|last year|an hour ago|last summer".split("|")
FUTURE_TIMES = "tomorrow|next week|tonight|after lunch|before dinner|next year|this weekend".split("|")
RELATIVES = "aunt uncle brother sister cousin neighbor grandmother grandfather friend colleague".split()

TEMPLATES = (
    "{the_noun} {verbed} {the_noun} {past_time}.",
    "{name} {verbed} {the_noun} {place}.",
    "Please {verb} {the_noun} {future_time}.",
    "Did {name} {verb} {the_noun} {past_time}?",
    "Why does {the_noun} always {verb} {the_noun}?",
    "{name} said that {the_noun} was too {adj} to {verb}.",
    "We need {number} {nouns} for {the_noun} {future_time}.",
    "The train to {city} leaves at {clock}.",
    "It was {adj} and {adj} {place}, so we stayed {adverb}.",
    "How many {nouns} did {name} {verb} {past_time}?",
    "{the_noun} {verbs} {the_noun} {adverb}.",
    "Put {the_noun} next to {the_noun} and {verb} {the_noun}.",
    "I think {the_noun} is {adverb} {adj}.",
    "When {name} {verbed} {the_noun}, {the_noun} {verbed} {adverb}.",
    "{name} and {name} {verbed} {number} {nouns} {place}.",
    "What {a_adj_noun} that was!",
    "The {dict_noun} of {the_noun} was {dict_adj}.",
    "Nobody expected {the_noun} to be so {dict_adj}.",
    "{name} {dict_adverb} {verbed} {the_noun}.",
    "Call me on {phone} after {clock}.",
    "In {year}, {name} moved from {city} to {city}.",
    "The meeting about {dict_noun} starts at {clock} {time}.",
    "Could you {verb} {the_noun} {adverb}, please?",
    "{name} never {verbed} {the_noun} without {a_noun}.",
    "There were {number} {nouns} {place} {past_time}.",
    "Turn left at {the_noun} and walk {number} meters.",
    "The price of {nouns} went up by {small_number} percent {past_time}.",
    "Don't {verb} {the_noun} {place}!",
    "Is {the_noun} {adj} or {adj}?",
    "{the_noun} looked {adj}, but {the_noun} felt {adj}.",
    "Each {noun} {verbs} {a_adj_noun}.",
    "If it rains {future_time}, {name} will {verb} {the_noun}.",
    "My {relative} {verbed} {the_noun} {past_time}.",
    "{name} asked whether {the_noun} could {verb} {the_noun}.",
    "The {dict_adj} {noun} {verbed} {the_noun} {adverb}.",
    "I would rather {verb} {the_noun} than {verb} {the_noun}.",
    "Order number {number} is ready at counter {small_number}.",
    "Yes, {the_noun} is {adj}, and no, {name} did not {verb} it.",
    "After {dict_noun} came {dict_noun}, and then {the_noun} {verbed}.",
    "{name} from {city} has {number} {adj} {nouns}.",
    "Remember to {verb} {the_noun} and {verb} {the_noun} {future_time}.",
    "Wow, {the_noun} is {adverb} {dict_adj}!",
    "The {noun} is always {adj} {time}.",
    "{name} usually {verbs} {the_noun} {time}.",
)


@dataclasses.dataclass(frozen=True)
class Lexicon:
    """Open-class words of one split; closed-class words (the, and, of...) live in the templates."""

    nouns: tuple[str, ...]
    adjectives: tuple[str, ...]
    verbs: tuple[tuple[str, str], ...]  # (base, past)
    adverbs: tuple[str, ...]
    names: tuple[str, ...]
    cities: tuple[str, ...]
    dict_nouns: tuple[str, ...]
    dict_adjectives: tuple[str, ...]
    dict_adverbs: tuple[str, ...]


def split_of_word(word: str) -> str:
    """A word's split, from a hash that is the same on every machine (unlike Python's hash())."""
    return "heldout" if zlib.crc32(word.lower().encode()) % 100 < HELDOUT_WORD_PERCENT else "train"


def dictionary_words() -> list[str]:
    if not DICTIONARY.exists():
        return []
    return DICTIONARY.read_text(encoding="utf-8", errors="replace").split()


def build_lexicon(split: str, words: list[str]) -> Lexicon:
    def keep(items):
        return tuple(dict.fromkeys(item for item in items if split_of_word(item.split(":")[0]) == split))

    lower = [w for w in words if re.fullmatch(r"[a-z]{5,14}", w) and not any(stem in w for stem in SENSITIVE_STEMS)]
    verbs = tuple((entry.split(":")[0], entry.split(":")[1] if ":" in entry else past_tense(entry))
                  for entry in keep(VERBS))
    return Lexicon(
        nouns=keep(NOUNS),
        adjectives=keep(ADJECTIVES),
        verbs=verbs,
        adverbs=keep(ADVERBS),
        names=keep(NAMES),
        cities=keep(CITIES),
        dict_nouns=keep(w for w in lower if re.search(r"(tion|sion|ment|ness|ity|ance|ence|ship|hood|ism)$", w)),
        dict_adjectives=keep(w for w in lower if re.search(r"(ous|ful|ive|able|ible|less|ical)$", w)),
        dict_adverbs=keep(w for w in lower if re.search(r"(ously|fully|ively|ably|lessly|ically)$", w)),
    )


def past_tense(verb: str) -> str:
    if verb.endswith("e"):
        return verb + "d"
    if verb.endswith("y") and verb[-2] not in "aeiou":
        return verb[:-1] + "ied"
    return verb + "ed"


def third_person(verb: str) -> str:
    if verb.endswith(("s", "x", "z", "ch", "sh", "o")):
        return verb + "es"
    if verb.endswith("y") and verb[-2] not in "aeiou":
        return verb[:-1] + "ies"
    return verb + "s"


def plural(noun: str) -> str:
    if noun.endswith(("s", "x", "z", "ch", "sh")):
        return noun + "es"
    if noun.endswith("y") and noun[-2] not in "aeiou":
        return noun[:-1] + "ies"
    if noun.endswith("f"):
        return noun[:-1] + "ves"
    if noun.endswith("fe"):
        return noun[:-2] + "ves"
    return noun + "s"


def with_article(phrase: str) -> str:
    return ("an " if phrase[0] in "aeiou" else "a ") + phrase


def make_sentence(rng: np.random.Generator, lexicon: Lexicon) -> str:
    """One sentence from a random template, every slot filled independently."""

    def pick(items):
        return items[int(rng.integers(len(items)))]

    def noun():
        return pick(lexicon.dict_nouns) if lexicon.dict_nouns and rng.random() < 0.1 else pick(lexicon.nouns)

    def adjective():
        return pick(lexicon.dict_adjectives) if lexicon.dict_adjectives and rng.random() < 0.2 else pick(lexicon.adjectives)

    def adverb():
        return pick(lexicon.dict_adverbs) if lexicon.dict_adverbs and rng.random() < 0.3 else pick(lexicon.adverbs)

    def the_noun():
        return "the " + (f"{adjective()} {noun()}" if rng.random() < 0.4 else noun())

    slots = {
        "noun": noun, "nouns": lambda: plural(noun()), "adj": adjective, "the_noun": the_noun, "a_noun": lambda: with_article(noun()),
        "a_adj_noun": lambda: with_article(f"{adjective()} {noun()}"),
        "verb": lambda: pick(lexicon.verbs)[0], "verbed": lambda: pick(lexicon.verbs)[1],
        "verbs": lambda: third_person(pick(lexicon.verbs)[0]), "adverb": adverb,
        "name": lambda: pick(lexicon.names), "city": lambda: pick(lexicon.cities), "place": lambda: pick(PLACES), "time": lambda: pick(TIMES),
        "past_time": lambda: pick(PAST_TIMES), "future_time": lambda: pick(FUTURE_TIMES),
        "relative": lambda: pick(RELATIVES), "number": lambda: str(int(rng.integers(2, 1000))),
        "small_number": lambda: str(int(rng.integers(2, 30))),
        "clock": lambda: f"{int(rng.integers(1, 13))}:{int(rng.integers(0, 60)):02d}",
        "year": lambda: str(int(rng.integers(1890, 2030))),
        "phone": lambda: " ".join(str(int(d)) for d in rng.integers(0, 10, 7)),
        "dict_noun": lambda: pick(lexicon.dict_nouns or lexicon.nouns),
        "dict_adj": lambda: pick(lexicon.dict_adjectives or lexicon.adjectives),
        "dict_adverb": lambda: pick(lexicon.dict_adverbs or lexicon.adverbs),
    }
    template = pick(TEMPLATES)
    sentence = re.sub(r"\{(\w+)\}", lambda match: slots[match.group(1)](), template)
    return sentence[0].upper() + sentence[1:]


class SentenceSource:
    """Unique sentences of one split, numbered in the order they are handed out."""

    def __init__(self, split: str, lexicon: Lexicon, rng: np.random.Generator, taken: set[str]):
        self.split, self.lexicon, self.rng, self.taken = split, lexicon, rng, taken
        self.count = 0

    def next(self) -> tuple[str, str]:
        """(text id, sentence). `taken` is shared by the splits, so no sentence is in both."""
        while True:
            sentence = make_sentence(self.rng, self.lexicon)
            if sentence not in self.taken:
                self.taken.add(sentence)
                self.count += 1
                return f"{self.split}-s{self.count:06d}", sentence


# ---------------------------------------------------------------------------------------------
# Synthesis of one utterance


@dataclasses.dataclass(frozen=True)
class UtteranceJob:
    """What a worker needs to synthesise one utterance: the voice, its prosody settings, and the
    sentences it may read (the first `planned` of them, fewer or more to land in 2-8 s)."""

    split: str
    index: int
    voice: Voice
    settings: dict
    sentences: tuple[tuple[str, str], ...]
    planned: int
    seed: tuple[int, ...]


def draw_settings(rng: np.random.Generator, voice: Voice) -> dict:
    """Per-utterance pitch, rate and speed perturbation, in each synthesizer's own terms."""
    if voice.engine == "espeak-ng":
        # -p 0-99 (default 50) and -s words per minute (default 175).
        return {"pitch": int(rng.integers(20, 81)), "words_per_minute": int(rng.integers(130, 196))}
    low, high = F0_RANGES[voice.speaker]
    # Resampling from a pretended rate shifts pitch and formants together (Kaldi's speed
    # perturbation): the only pitch control the HTS voice offers, and a timbre change for all.
    settings = {"speed": round(float(rng.uniform(0.92, 1.08)), 3)}
    if voice.engine == "flite":
        settings |= {"f0_mean": int(rng.integers(low, high + 1)),
                     "duration_stretch": round(float(rng.uniform(0.85, 1.2)), 3)}
    elif voice.name.endswith("_hts"):
        settings |= {"hts_rate": round(float(rng.uniform(0.85, 1.15)), 3)}
    else:
        settings |= {"f0_mean": int(rng.integers(low, high + 1)), "f0_std": int(rng.integers(10, 26)),
                     "duration_stretch": round(float(rng.uniform(0.85, 1.2)), 3)}
    return settings


def synthesizer_command(voice: Voice, settings: dict, text: str, wav: Path, text_file: Path) -> list[str]:
    if voice.engine == "espeak-ng":
        return ["espeak-ng", "-v", voice.name, "-p", str(settings["pitch"]),
                "-s", str(settings["words_per_minute"]), "-w", str(wav), text]
    if voice.engine == "flite":
        return ["flite", "-voice", voice.name, "--setf", f"int_f0_target_mean={settings['f0_mean']}",
                "--setf", f"duration_stretch={settings['duration_stretch']}", "-t", text, "-o", str(wav)]
    text_file.write_text(text + "\n", encoding="utf-8")
    if "hts_rate" in settings:
        prosody = f"(set! hts_engine_params (append hts_engine_params '((\"-r\" {settings['hts_rate']}))))"
    else:
        prosody = (f"(begin (set! int_lr_params '((target_f0_mean {settings['f0_mean']}) "
                   f"(target_f0_std {settings['f0_std']}) (model_f0_mean 170) (model_f0_std 34))) "
                   f"(Parameter.set 'Duration_Stretch {settings['duration_stretch']}))")
    return ["text2wave", "-o", str(wav), "-eval", f"(voice_{voice.name})", "-eval", prosody, str(text_file)]


def run_tool(command: list[str]) -> bytes:
    result = subprocess.run(command, check=False, capture_output=True, timeout=120)
    if result.returncode != 0:
        raise RuntimeError(f"{shlex.join(command[:6])}... failed ({result.returncode}): {result.stderr.decode()[-500:]}")
    return result.stdout


def synthesise(voice: Voice, settings: dict, text: str, workdir: Path) -> np.ndarray:
    """`text` read by `voice`, as [T] float32 at 16 kHz, speed-perturbed when `settings` say so."""
    wav = workdir / "speech.wav"
    run_tool(synthesizer_command(voice, settings, text, wav, workdir / "text.txt"))
    data, rate = sf.read(wav, dtype="float32", always_2d=True)
    pretended_rate = int(round(rate * settings.get("speed", 1.0)))
    return resample(data[:, 0], pretended_rate, RATE)


def trimmed(speech: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """`speech` [T] without leading and trailing silence beyond a 0.05-0.3 s margin, faded in and
    out over 5 ms so the cut makes no click. Silence: 10 ms frames 40 dB below the loudest."""
    frame = RATE // 100
    frames = len(speech) // frame
    if frames == 0:
        return speech
    energy = np.sqrt(np.mean(speech[: frames * frame].reshape(frames, frame) ** 2, axis=1))
    active = np.flatnonzero(energy > energy.max() * 10 ** (-40 / 20))
    if active.size == 0:
        return speech[:0]
    start = max(0, active[0] * frame - int(rng.uniform(0.05, 0.25) * RATE))
    stop = min(len(speech), (active[-1] + 1) * frame + int(rng.uniform(0.1, 0.3) * RATE))
    return faded(speech[start:stop].copy())


def faded(x: np.ndarray, seconds: float = 0.005) -> np.ndarray:
    ramp = np.linspace(0.0, 1.0, min(len(x) // 2, int(seconds * RATE)), dtype=np.float32)
    if len(ramp):
        x[: len(ramp)] *= ramp
        x[-len(ramp) :] *= ramp[::-1]
    return x


def cropped(speech: np.ndarray, seconds: float) -> np.ndarray:
    """`speech` cut to at most `seconds`, at the quietest 20 ms frame of its last 1.5 s."""
    limit = int(seconds * RATE)
    if len(speech) <= limit:
        return speech
    frame = RATE // 50
    window = speech[limit - int(1.5 * RATE) : limit]
    frames = len(window) // frame
    energy = np.mean(window[: frames * frame].reshape(frames, frame) ** 2, axis=1)
    cut = limit - int(1.5 * RATE) + (int(np.argmin(energy)) + 1) * frame
    return faded(speech[:cut].copy(), 0.02)


def synthesise_utterance(job: UtteranceJob) -> dict | None:
    """Worker: synthesises `job`, trims it, fits it into 2-8 s and normalises its peak.

    Reads more or fewer of the job's sentences until it fits, and crops one sentence that alone
    runs past 8 s. Returns a manifest row with the audio under "audio", or None when all the
    job's sentences together last under 2 s.
    """
    rng = np.random.default_rng(job.seed)
    count = job.planned
    tried: dict[int, np.ndarray] = {}
    with tempfile.TemporaryDirectory(prefix="starter-") as workdir:
        while count not in tried:
            text = " ".join(sentence for _, sentence in job.sentences[:count])
            tried[count] = trimmed(synthesise(job.voice, job.settings, text, Path(workdir)), rng)
            seconds = len(tried[count]) / RATE
            if seconds > MAX_SECONDS and count > 1:
                count -= 1
            elif seconds < MIN_SECONDS and count < len(job.sentences):
                count += 1
    # The loop stops at a count already tried: the one in range, or the nearest two straddle it.
    fitting = [c for c, audio in tried.items() if MIN_SECONDS <= len(audio) / RATE <= MAX_SECONDS]
    too_long = [c for c, audio in tried.items() if len(audio) / RATE > MAX_SECONDS]
    if fitting:
        count = max(fitting)
    elif too_long:
        count = min(too_long)
    else:
        return None
    speech = cropped(tried[count], MAX_SECONDS)
    peak_db = rng.uniform(-8.0, -2.0)
    speech = (speech / (np.max(np.abs(speech)) + 1e-12) * 10 ** (peak_db / 20)).astype(np.float32)
    return {
        "split": job.split, "role": "clean", "kind": "speech", "voice": job.voice.id,
        "speaker": job.voice.speaker, "engine": job.voice.engine, "settings": job.settings,
        "text_ids": [text_id for text_id, _ in job.sentences[:count]],
        "text": " ".join(sentence for _, sentence in job.sentences[:count]),
        "cropped": len(tried[count]) > len(speech), "peak_dbfs": round(float(peak_db), 2),
        "duration": round(len(speech) / RATE, 4),
        "active_fraction": round(active_fraction(speech, RATE), 3), "audio": speech,
    }


def plan_utterances(split: str, voices: list[Voice], sentences: SentenceSource, seed: int) -> Iterator[UtteranceJob]:
    """Endless jobs for `split`, each from its own seeded generator; the sentence source is shared
    and consumed in job order, so job i is the same whatever the batch size or worker count."""
    by_engine: dict[str, list[Voice]] = {}
    for voice in voices:
        if voice.split == split:
            by_engine.setdefault(voice.engine, []).append(voice)
    engines = sorted(by_engine)
    if not engines:
        raise RuntimeError(f"no {split} voices installed: see ESPEAK_ACCENTS, FLITE_VOICES, FESTIVAL_VOICES")
    weights = np.array([ENGINE_WEIGHTS[engine] for engine in engines])
    index = 0
    while True:
        job_seed = (seed, SPLITS.index(split), 1, index)
        rng = np.random.default_rng(job_seed)
        engine = engines[int(rng.choice(len(engines), p=weights / weights.sum()))]
        voice = by_engine[engine][int(rng.integers(len(by_engine[engine])))]
        if voice.engine == "espeak-ng" and rng.random() < 0.75:
            # Three draws in four from the English accents, whatever the number of foreign ones.
            english = [v for v in by_engine[engine] if v.name.split("+")[0] in ESPEAK_ACCENTS[split]]
            voice = english[int(rng.integers(len(english)))] if english else voice
        settings = draw_settings(rng, voice)
        target = rng.uniform(MIN_SECONDS + 0.5, MAX_SECONDS - 1.0)
        candidates = tuple(sentences.next() for _ in range(4))
        # About 2.6 words per second at each synthesizer's default rate, plus a pause per sentence.
        planned, estimate = 0, 0.0
        while planned < len(candidates) - 1 and estimate < target:
            estimate += len(candidates[planned][1].split()) / 2.6 + 0.4
            planned += 1
        yield UtteranceJob(split, index, voice, settings, candidates, max(1, planned), job_seed)
        index += 1


def voice_slug(voice: Voice) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", voice.id).strip("-")


def make_clean(split: str, seconds: float, voices: list[Voice], sentences: SentenceSource,
               output: Path, pool: concurrent.futures.Executor, workers: int, seed: int) -> list[dict]:
    """Synthesises utterances of `split` in batches until `seconds` of speech are written."""
    rows, total = [], 0.0
    jobs = plan_utterances(split, voices, sentences, seed)
    folder = output / split / "clean"
    folder.mkdir(parents=True, exist_ok=True)
    while total < seconds:
        batch = [next(jobs) for _ in range(4 * workers)]
        for job, row in zip(batch, pool.map(synthesise_utterance, batch)):
            if row is None or total >= seconds:
                continue
            path = folder / f"utt{len(rows):05d}_{voice_slug(job.voice)}.wav"
            write_audio(str(path), row.pop("audio"), RATE, format="WAV", subtype="PCM_16")
            rows.append({"path": str(path.relative_to(output)), **row})
            total += row["duration"]
        log.info("%s clean: %d utterances, %.1f of %.1f min", split, len(rows), total / 60, seconds / 60)
    return rows


# ---------------------------------------------------------------------------------------------
# Noises and RIRs


@dataclasses.dataclass(frozen=True)
class NoiseJob:
    split: str
    index: int
    kind: str
    seconds: float
    seed: tuple[int, ...]
    path: str
    talkers_from: tuple[str, ...]  # clean files of the same split, for babble and office


def plan_noises(split: str, seconds: float, clean_rows: list[dict], seed: int) -> list[NoiseJob]:
    """Noise clips of `split` adding up to `seconds`, cycling through the kinds in shuffled rounds
    so that every kind gets an equal share."""
    rng = np.random.default_rng((seed, SPLITS.index(split), 2))
    clean_paths = [row["path"] for row in clean_rows]
    jobs, total, kinds = [], 0.0, []
    while total < seconds:
        if not kinds:
            kinds = list(rng.permutation(NOISE_KINDS))
        kind = str(kinds.pop())
        length = round(float(rng.uniform(*NOISE_SECONDS)), 2)
        talkers = ()
        if kind in ("babble", "office"):
            chosen = rng.choice(len(clean_paths), size=min(16, len(clean_paths)), replace=False)
            talkers = tuple(clean_paths[i] for i in sorted(chosen))
        index = len(jobs)
        path = f"{split}/noise/{kind}_{index:04d}.wav"
        jobs.append(NoiseJob(split, index, kind, length, (seed, SPLITS.index(split), 3, index), path, talkers))
        total += length
    return jobs


def make_noise_file(job: NoiseJob, output: Path) -> dict:
    """Worker: generates and writes one noise clip, returns its manifest row."""
    utterances = [read_audio(str(output / path))[0][:, 0] for path in job.talkers_from]
    noise = make_noise(job.kind, np.random.default_rng(job.seed), job.seconds, RATE, utterances)
    write_audio(str(output / job.path), noise, RATE, format="WAV", subtype="PCM_16")
    return {"path": job.path, "split": job.split, "role": "noise", "kind": job.kind,
            "duration": round(len(noise) / RATE, 4), "seed": list(job.seed),
            "talkers_from": list(job.talkers_from)}


def make_rirs(split: str, count: int, output: Path, seed: int) -> list[dict]:
    """`count` synthetic RIRs with T60 uniform over the DNS range, each redrawn until its measured
    T60 also lies in that range (jobs/synthesize.py filters on the measured one)."""
    folder = output / split / "rir"
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for index in range(count):
        rng = np.random.default_rng((seed, SPLITS.index(split), 4, index))
        while True:
            t60 = float(rng.uniform(*DNS_T60_RANGE))
            rir = synthetic_rir(rng, t60, RATE, direct_delay=rng.uniform(0.001, 0.01),
                                early_reflections=int(rng.integers(3, 13)), reverb_gain=rng.uniform(0.15, 0.5))
            measured = estimate_t60(rir, RATE)
            if DNS_T60_RANGE[0] <= measured <= DNS_T60_RANGE[1]:
                break
        path = folder / f"rir{index:04d}_t60-{t60:.2f}.wav"
        # PCM_16 clips the unit direct path to 32767/32768, which no mixer can hear.
        write_audio(str(path), rir, RATE, format="WAV", subtype="PCM_16")
        rows.append({"path": str(path.relative_to(output)), "split": split, "role": "rir", "kind": "rir",
                     "duration": round(len(rir) / RATE, 4), "t60": round(t60, 3), "t60_measured": round(measured, 3)})
    return rows


# ---------------------------------------------------------------------------------------------
# SOURCES.md


# Our reading of /usr/share/doc/<package>/copyright; SOURCES.md prints it next to the file's hash.
PACKAGE_LICENCES = {
    "espeak-ng": ("the espeak-ng program", "GPL-3.0-or-later (a few files BSD-2-Clause or Apple's free-use notice)"),
    "espeak-ng-data": ("espeak-ng's voices, variants and pronunciation rules", "GPL-3.0-or-later"),
    "flite": ("the flite program", "CMU/Edinburgh free licence (BSD-style: keep notice, mark changes, no endorsement); build scripts GPL-2"),
    "libflite1": ("flite's built-in voices kal16, awb, rms, slt (CMU ARCTIC and diphone databases)", "CMU/Edinburgh free licence (BSD-style)"),
    "festival": ("the Festival program", "CSTR Edinburgh free licence (BSD-style)"),
    "festlex-cmu": ("CMU pronouncing dictionary for Festival", "CSTR/CMU free licence (BSD-style)"),
    "festlex-poslex": ("part-of-speech lexicon and n-gram for Festival", "CSTR free licence (BSD-style)"),
    "festvox-kallpc16k": ("Festival voice kal_diphone", "Alan W Black and Kevin Lenzo free licence (BSD-style)"),
    "festvox-kdlpc16k": ("Festival voice ked_diphone", "CSTR free licence (BSD-style)"),
    "festvox-us-slt-hts": ("Festival voice cmu_us_slt_arctic_hts", "EST-2000/EST-2003 (CMU, BSD-style) and BSD-3-Clause (HTS, Nagoya Institute of Technology)"),
    "wamerican": ("/usr/share/dict/words, for the sentence grammar's rarer words", "SCOWL licence (permissive, keep notice); parts public domain"),
}
ENGINE_PACKAGES = {
    "espeak-ng": ("espeak-ng", "espeak-ng-data"),
    "flite": ("flite", "libflite1"),
    "festival": ("festival", "festlex-cmu", "festlex-poslex"),
}
FESTIVAL_VOICE_PACKAGES = {"kal_diphone": "festvox-kallpc16k", "ked_diphone": "festvox-kdlpc16k",
                           "cmu_us_slt_arctic_hts": "festvox-us-slt-hts"}


def package_version(package: str) -> str | None:
    if shutil.which("dpkg-query") is None:
        return None
    result = subprocess.run(["dpkg-query", "-W", "-f=${Version}", package], check=False, capture_output=True, text=True)
    return result.stdout.strip() if result.returncode == 0 and result.stdout.strip() else None


def copyright_summary(package: str) -> str:
    path = Path(f"/usr/share/doc/{package}/copyright")
    if not path.exists():
        return "copyright file missing"
    text = path.read_bytes()
    # Only machine-readable (DEP-5) copyright files name their licences in `License:` fields.
    dep5 = text.startswith(b"Format:")
    short_names = sorted(set(re.findall(rb"^License:[ \t]*(\S.*)$", text, re.MULTILINE))) if dep5 else []
    names = f"; DEP-5 names: {', '.join(name.decode().strip() for name in short_names)}" if short_names else ""
    return f"`{path}` sha256 {hashlib.sha256(text).hexdigest()[:16]}{names}"


def sources_markdown(rows: list[dict], voices: list[Voice], argv: list[str], used_dictionary: bool) -> str:
    used = {row["voice"] for row in rows if row["role"] == "clean"}
    packages = []
    for engine, names in ENGINE_PACKAGES.items():
        if any(voice_id.startswith(engine + ":") for voice_id in used):
            packages += names
    packages += sorted({FESTIVAL_VOICE_PACKAGES[v.name] for v in voices if v.id in used and v.engine == "festival"})
    if used_dictionary:
        packages.append("wamerican")
    lines = [
        "# Starter corpus: sources and licences",
        "",
        "Everything here was synthesised on a Debian machine by `scripts/make_starter_corpus.py`.",
        "No recording is included as such, but the flite and festival voices are built from recordings",
        "of their speakers (kal, ked, awb, rms, slt: diphone voices splice recorded units), which the",
        "licences below allow to use and redistribute. Rerunning the command below with the same",
        "package versions gives the same files.",
        "",
        "```",
        shlex.join(["python", "scripts/make_starter_corpus.py", *argv]),
        "```",
        "",
        "## Speech synthesizers and voices (Debian packages)",
        "",
        "| package | version | what it provides | licence (our reading) | copyright file |",
        "|---|---|---|---|---|",
    ]
    for package in packages:
        role, licence = PACKAGE_LICENCES[package]
        lines.append(f"| {package} | {package_version(package) or 'unknown (not installed by dpkg)'} | {role} | {licence} | {copyright_summary(package)} |")
    lines += [
        "",
        "mbrola voices (listed by espeak-ng as `mb-*`) are not used: the MBROLA databases are licensed",
        "for non-commercial, non-military use only. flite's 8 kHz `kal` is not used (band-limited).",
        "",
        "## Texts",
        "",
        "Sentences come from a small grammar written for this script (templates and word lists in",
        "`scripts/make_starter_corpus.py`, Apache-2.0 like the rest of ansray)"
        + (", with rarer nouns, adjectives and adverbs taken by suffix from `/usr/share/dict/words`"
           " (Debian package wamerican, SCOWL licence, see above), leaving out profanity and words on"
           " violent or sexual topics." if used_dictionary else "."),
        f"Open-class words are split between train and held-out by crc32 (about {HELDOUT_WORD_PERCENT} % to",
        "held-out), and no sentence appears in both splits. Each clean file's `text` and `text_ids`",
        "are in `corpus.jsonl`.",
        "",
        "## Noises",
        "",
        "Generated in numpy by `ansray/data/noises.py` (Apache-2.0), every parameter drawn per clip:",
        "babble (3-8 talker streams built from the same split's synthetic utterances), office (HVAC",
        "noise, keyboard clicks, distant babble), music (chords, bass, melody, drums), mains hum",
        "(50/60 Hz and harmonics), keyboard clicks, traffic (brown-noise rumble and passing vehicles",
        "with Doppler), fan, engine, white and pink noise. Held-out clips use other seeds and only",
        "held-out voices.",
        "",
        "## Room impulse responses",
        "",
        "`ansray.data.rir.synthetic_rir` (exponential-decay noise tail with sparse early reflections),",
        f"T60 uniform in {DNS_T60_RANGE[0]}-{DNS_T60_RANGE[1]} s (the DNS 2021 range), redrawn until the",
        "measured (Schroeder) T60 lies in that range too.",
        "",
        "## Counts",
        "",
        "| split | clean files | clean hours | voices | speakers | noise files | noise hours | RIRs |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for split in SPLITS:
        clean = [r for r in rows if r["split"] == split and r["role"] == "clean"]
        noise = [r for r in rows if r["split"] == split and r["role"] == "noise"]
        rirs = [r for r in rows if r["split"] == split and r["role"] == "rir"]
        lines.append(
            f"| {split} | {len(clean)} | {sum(r['duration'] for r in clean) / 3600:.3f} | "
            f"{len({r['voice'] for r in clean})} | {len({r['speaker'] for r in clean})} | {len(noise)} | "
            f"{sum(r['duration'] for r in noise) / 3600:.3f} | {len(rirs)} |"
        )
    lines += ["", "Noise kinds (files per split): "]
    for split in SPLITS:
        kinds = Counter(r["kind"] for r in rows if r["split"] == split and r["role"] == "noise")
        lines.append(f"- {split}: " + ", ".join(f"{kind} {n}" for kind, n in sorted(kinds.items())))
    lines += ["", "Voices per engine (available to each split): "]
    for split in SPLITS:
        counts = Counter(v.engine for v in voices if v.split == split)
        lines.append(f"- {split}: " + ", ".join(f"{engine} {n}" for engine, n in sorted(counts.items())))
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", required=True, type=Path, help="folder to write the corpus to")
    parser.add_argument("--train-minutes", type=float, default=60.0, help="minutes of clean training speech")
    parser.add_argument("--heldout-minutes", type=float, default=8.0, help="minutes of clean held-out speech")
    parser.add_argument("--noise-minutes", type=float, default=30.0,
                        help="minutes of training noise; held-out gets this × heldout-minutes / train-minutes")
    parser.add_argument("--rirs", type=int, default=300, help="training RIRs")
    parser.add_argument("--heldout-rirs", type=int, default=40, help="held-out RIRs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="synthesis processes")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    started = time.monotonic()
    if not shutil.which("espeak-ng"):
        sys.exit("espeak-ng is not installed: apt-get install -y espeak-ng (flite and festival voices are optional)")
    for split in SPLITS:
        if (args.output / split).exists() and any((args.output / split).iterdir()):
            # Files left from another run would be listed by jobs/synthesize.py but not in corpus.jsonl.
            sys.exit(f"{args.output / split} is not empty: remove it or choose another --output")
    voices = available_voices()
    for split in SPLITS:
        log.info("%s voices: %s", split, dict(Counter(v.engine for v in voices if v.split == split)))
    words = dictionary_words()
    taken: set[str] = set()
    minutes = {"train": args.train_minutes, "heldout": args.heldout_minutes}
    rirs = {"train": args.rirs, "heldout": args.heldout_rirs}
    output: Path = args.output
    rows = []
    with concurrent.futures.ProcessPoolExecutor(max_workers=args.workers) as pool:
        for split in SPLITS:
            sentences = SentenceSource(split, build_lexicon(split, words), np.random.default_rng((args.seed, SPLITS.index(split), 0)), taken)
            clean = make_clean(split, minutes[split] * 60, voices, sentences, output, pool, args.workers, args.seed)
            noise_seconds = args.noise_minutes * 60 * minutes[split] / max(args.train_minutes, 1e-9)
            (output / split / "noise").mkdir(parents=True, exist_ok=True)
            jobs = plan_noises(split, noise_seconds, clean, args.seed)
            noises = list(pool.map(make_noise_file, jobs, [output] * len(jobs)))
            log.info("%s noise: %d clips, %.1f min", split, len(noises), sum(r["duration"] for r in noises) / 60)
            rows += clean + noises + make_rirs(split, rirs[split], output, args.seed)
    with open(output / "corpus.jsonl", "w", encoding="utf-8") as manifest:
        manifest.writelines(json.dumps(row, sort_keys=True) + "\n" for row in rows)
    (output / "SOURCES.md").write_text(sources_markdown(rows, voices, argv, bool(words)), encoding="utf-8")
    for split in SPLITS:
        clean = [r for r in rows if r["split"] == split and r["role"] == "clean"]
        noise = [r for r in rows if r["split"] == split and r["role"] == "noise"]
        print(f"{split}: {len(clean)} clean files, {sum(r['duration'] for r in clean) / 3600:.3f} h, "
              f"{len({r['voice'] for r in clean})} voices; {len(noise)} noise files, "
              f"{sum(r['duration'] for r in noise) / 3600:.3f} h; {rirs[split]} RIRs")
    print(f"written to {output} in {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
