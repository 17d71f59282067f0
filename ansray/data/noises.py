"""Noise generators for starter corpora: babble, music, mains hum, keyboard clicks, traffic, office,
fan, engine, white and pink noise, all synthesised in numpy from an `np.random.Generator`.

Each generator takes (rng, seconds, sample_rate), babble and office also utterances to build voices
from, and returns [T] float32 with peak 0.5, T = round(seconds · sample_rate); every parameter
(mains frequency, tempo, rpm...) is drawn from `rng`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

PEAK = 0.5  # the same peak as ansray.data.synthetic: mixing rescales anyway, and it leaves headroom


# ---------------------------------------------------------------------------------------------
# Building blocks


def frame_count(seconds: float, sample_rate: int) -> int:
    frames = int(round(seconds * sample_rate))
    if frames <= 0 or sample_rate <= 0:
        raise ValueError(f"need a positive duration and rate, got {seconds} s at {sample_rate} Hz")
    return frames


def peak_normalised(x: np.ndarray, peak: float = PEAK) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return (peak * x / (np.max(np.abs(x)) + 1e-12)).astype(np.float32)


def coloured_noise(
    rng: np.random.Generator,
    frames: int,
    sample_rate: int,
    slope: float,
    band: tuple[float, float] | None = None,
) -> np.ndarray:
    """Gaussian noise [frames] whose power falls as 1/f^slope (0 white, 1 pink, 2 brown), with
    unit RMS, optionally limited to `band` (Hz) by a smooth spectral mask."""
    spectrum = np.fft.rfft(rng.standard_normal(frames))
    freqs = np.fft.rfftfreq(frames, 1.0 / sample_rate)
    # Below 20 Hz the 1/f law is cut off, or brown noise would be one huge DC drift.
    spectrum /= np.maximum(freqs, 20.0) ** (slope / 2.0)
    spectrum[0] = 0.0  # no DC offset
    if band is not None:
        spectrum *= band_mask(freqs, *band)
    noise = np.fft.irfft(spectrum, frames)
    return noise / (np.sqrt(np.mean(noise**2)) + 1e-12)


def band_mask(freqs: np.ndarray, low: float, high: float) -> np.ndarray:
    """Amplitude response of a band-pass with 12 dB/octave skirts (second-order-like) at `low` and
    `high` Hz; `low` = 0 makes it a low-pass."""
    f = np.maximum(freqs, 1e-3)
    highpass = 1.0 if low <= 0 else 1.0 / (1.0 + (low / f) ** 2)
    lowpass = 1.0 / (1.0 + (f / high) ** 2)
    return highpass * lowpass


def filtered(x: np.ndarray, sample_rate: int, low: float, high: float) -> np.ndarray:
    """`x` [T] through `band_mask` (zero-phase, in the frequency domain)."""
    freqs = np.fft.rfftfreq(len(x), 1.0 / sample_rate)
    return np.fft.irfft(np.fft.rfft(x) * band_mask(freqs, low, high), len(x))


def slow_curve(rng: np.random.Generator, frames: int, sample_rate: int, changes_per_second: float) -> np.ndarray:
    """A smooth random curve [frames] in about [-1, 1]: random knots `1/changes_per_second` apart,
    joined by cosine interpolation, for level drifts and rpm changes."""
    seconds = frames / sample_rate
    knots = max(2, int(np.ceil(seconds * changes_per_second)) + 2)
    values = rng.uniform(-1.0, 1.0, knots)
    position = np.arange(frames) / sample_rate * changes_per_second
    index = np.minimum(position.astype(int), knots - 2)
    fraction = (1.0 - np.cos(np.pi * (position - index))) / 2.0
    return values[index] * (1.0 - fraction) + values[index + 1] * fraction


def add_at(out: np.ndarray, start: int, sound: np.ndarray) -> None:
    """Adds `sound` into `out` from frame `start`, cutting what falls outside."""
    if start >= len(out) or start + len(sound) <= 0:
        return
    begin = max(0, -start)
    stop = min(len(sound), len(out) - start)
    out[start + begin : start + stop] += sound[begin:stop]


def damped_sine(frequency: float, decay: float, frames: int, sample_rate: int, phase: float = 0.0) -> np.ndarray:
    """A sine of `frequency` Hz whose amplitude falls by 1/e every `decay` seconds."""
    t = np.arange(frames) / sample_rate
    return np.exp(-t / decay) * np.sin(2 * np.pi * frequency * t + phase)


def harmonic_tone(phase: np.ndarray, amplitudes: Sequence[float], phases: Sequence[float] | None = None) -> np.ndarray:
    """Σ_k amplitudes[k-1] · sin(k · phase + phases[k-1]) for a running `phase` [T] in radians."""
    phases = np.zeros(len(amplitudes)) if phases is None else phases
    return sum(a * np.sin((k + 1) * phase + p) for k, (a, p) in enumerate(zip(amplitudes, phases)))


def harmonics_below_nyquist(fundamental: float, count: int, sample_rate: int) -> int:
    return max(1, min(count, int(0.45 * sample_rate / fundamental)))


# ---------------------------------------------------------------------------------------------
# Stationary noises


def white_noise(rng: np.random.Generator, seconds: float, sample_rate: int = 16000) -> np.ndarray:
    """White Gaussian noise with a slow ±2 dB level drift."""
    frames = frame_count(seconds, sample_rate)
    drift = 10.0 ** (2.0 * slow_curve(rng, frames, sample_rate, rng.uniform(0.1, 0.5)) / 20.0)
    return peak_normalised(rng.standard_normal(frames) * drift)


def pink_noise(rng: np.random.Generator, seconds: float, sample_rate: int = 16000) -> np.ndarray:
    """Noise with a 1/f^s power spectrum, s drawn in 0.7-1.3 around pink, and a slow ±2 dB drift."""
    frames = frame_count(seconds, sample_rate)
    noise = coloured_noise(rng, frames, sample_rate, rng.uniform(0.7, 1.3))
    drift = 10.0 ** (2.0 * slow_curve(rng, frames, sample_rate, rng.uniform(0.1, 0.5)) / 20.0)
    return peak_normalised(noise * drift)


def mains_hum(rng: np.random.Generator, seconds: float, sample_rate: int = 16000) -> np.ndarray:
    """Mains hum: 50 or 60 Hz and 4-16 harmonics (transformer buzz puts much of its energy at
    twice the mains frequency) with a ±0.2 % frequency wander, over a faint pink floor."""
    frames = frame_count(seconds, sample_rate)
    mains = float(rng.choice([50.0, 60.0]))
    count = harmonics_below_nyquist(mains, int(rng.integers(4, 17)), sample_rate)
    amplitudes = rng.uniform(0.2, 1.0, count) / np.arange(1, count + 1) ** rng.uniform(0.5, 1.5)
    if count > 1:
        amplitudes[1] *= rng.uniform(1.0, 3.0)
    frequency = mains * (1.0 + 0.002 * slow_curve(rng, frames, sample_rate, 0.5))
    phase = 2 * np.pi * np.cumsum(frequency) / sample_rate
    hum = harmonic_tone(phase, amplitudes, rng.uniform(0, 2 * np.pi, count))
    hum /= np.sqrt(np.mean(hum**2)) + 1e-12
    floor = coloured_noise(rng, frames, sample_rate, 1.0) * 10.0 ** (rng.uniform(-45, -30) / 20.0)
    return peak_normalised(hum + floor)


def fan_noise(rng: np.random.Generator, seconds: float, sample_rate: int = 16000) -> np.ndarray:
    """A fan: broadband airflow noise, a blade-pass tone (rpm/60 × blades, 40-600 Hz) with a few
    harmonics, and a gentle modulation at the rotation rate."""
    frames = frame_count(seconds, sample_rate)
    rotation = rng.uniform(10.0, 60.0)  # revolutions per second: 600-3600 rpm
    blades = int(rng.integers(3, 10))
    blade_pass = rotation * blades
    airflow = coloured_noise(rng, frames, sample_rate, rng.uniform(0.5, 1.5),
                             band=(rng.uniform(30, 150), rng.uniform(1500, 6000)))
    count = harmonics_below_nyquist(blade_pass, int(rng.integers(2, 6)), sample_rate)
    frequency = blade_pass * (1.0 + 0.003 * slow_curve(rng, frames, sample_rate, 0.3))
    phase = 2 * np.pi * np.cumsum(frequency) / sample_rate
    tone = harmonic_tone(phase, rng.uniform(0.2, 1.0, count) / np.arange(1, count + 1))
    tone /= np.sqrt(np.mean(tone**2)) + 1e-12
    t = np.arange(frames) / sample_rate
    wobble = 1.0 + rng.uniform(0.02, 0.15) * np.sin(2 * np.pi * rotation * t)
    return peak_normalised((airflow + 10.0 ** (rng.uniform(-12, 0) / 20.0) * tone) * wobble)


def engine_noise(rng: np.random.Generator, seconds: float, sample_rate: int = 16000) -> np.ndarray:
    """A combustion engine: firing frequency rpm/60 × cylinders/2 (4-stroke) with rich harmonics,
    rpm rising and falling slowly, and combustion noise pulsing with each firing."""
    frames = frame_count(seconds, sample_rate)
    cylinders = int(rng.choice([3, 4, 6, 8]))
    rpm = rng.uniform(700, 3500) * (1.0 + rng.uniform(0.05, 0.3) * slow_curve(rng, frames, sample_rate, 0.2))
    firing = rpm / 60.0 * cylinders / 2.0
    phase = 2 * np.pi * np.cumsum(firing) / sample_rate
    count = harmonics_below_nyquist(float(np.max(firing)), int(rng.integers(6, 20)), sample_rate)
    amplitudes = rng.uniform(0.3, 1.0, count) / np.arange(1, count + 1) ** rng.uniform(0.7, 1.5)
    tone = harmonic_tone(phase, amplitudes, rng.uniform(0, 2 * np.pi, count))
    tone /= np.sqrt(np.mean(tone**2)) + 1e-12
    combustion = coloured_noise(rng, frames, sample_rate, 1.0, band=(80.0, rng.uniform(1500, 4000)))
    combustion *= (1.0 + np.cos(phase)) ** 2 / 1.5
    rumble = coloured_noise(rng, frames, sample_rate, 2.0, band=(20.0, 300.0))
    return peak_normalised(tone + rng.uniform(0.3, 1.0) * combustion + rng.uniform(0.2, 0.8) * rumble)


# ---------------------------------------------------------------------------------------------
# Events: clicks, music, traffic


def keyboard_clicks(rng: np.random.Generator, seconds: float, sample_rate: int = 16000) -> np.ndarray:
    """Typing: words of 2-9 keystrokes 80-250 ms apart, separated by 0.3-2 s pauses; each key a
    press and a quieter release, sounded as a short noise burst through the keyboard's resonances
    (one set per clip, 1.5-6 kHz) over a low thud, on a faint room-tone floor."""
    frames = frame_count(seconds, sample_rate)
    out = np.zeros(frames)
    resonances = rng.uniform(1500.0, 6000.0, int(rng.integers(2, 5)))
    thud = rng.uniform(100.0, 300.0)
    click_frames = int(0.04 * sample_rate)

    def click(level: float) -> np.ndarray:
        burst = rng.standard_normal(click_frames) * np.exp(-np.arange(click_frames) / (rng.uniform(0.5, 2) * 1e-3 * sample_rate))
        ring = sum(
            rng.uniform(0.3, 1.0) * damped_sine(f * rng.uniform(0.95, 1.05), rng.uniform(2, 8) * 1e-3,
                                                click_frames, sample_rate, rng.uniform(0, 2 * np.pi))
            for f in resonances
        )
        low = rng.uniform(0.2, 0.8) * damped_sine(thud, rng.uniform(4, 12) * 1e-3, click_frames, sample_rate)
        return level * (0.5 * burst + ring + low)

    time = rng.uniform(0.0, 0.5)
    while time < seconds:
        for _ in range(int(rng.integers(2, 10))):
            start = int(time * sample_rate)
            add_at(out, start, click(rng.uniform(0.5, 1.0)))
            add_at(out, start + int(rng.uniform(0.04, 0.12) * sample_rate), click(rng.uniform(0.1, 0.4)))
            time += rng.uniform(0.08, 0.25)
        time += rng.uniform(0.3, 2.0)
    floor = coloured_noise(rng, frames, sample_rate, 1.0) * 10.0 ** (rng.uniform(-50, -35) / 20.0)
    return peak_normalised(out / (np.max(np.abs(out)) + 1e-12) + floor)


_MAJOR = (0, 2, 4, 5, 7, 9, 11)
_MINOR = (0, 2, 3, 5, 7, 8, 10)
_PROGRESSIONS = ((0, 3, 4, 0), (0, 5, 3, 4), (0, 4, 5, 3), (5, 3, 0, 4), (0, 3, 0, 4), (1, 4, 0, 0))


def music(rng: np.random.Generator, seconds: float, sample_rate: int = 16000) -> np.ndarray:
    """A short piece: a chord progression in a random key and tempo (60-160 bpm), a bass line and a
    melody on the scale, each an additive instrument with its own timbre and envelope, and (most of
    the time) kick, snare and hi-hat."""
    frames = frame_count(seconds, sample_rate)
    out = np.zeros(frames)
    beat = 60.0 / rng.uniform(60.0, 160.0)
    scale = _MAJOR if rng.random() < 0.6 else _MINOR
    root = int(rng.integers(45, 58))  # MIDI note of the key's tonic, A2..A#3
    progression = _PROGRESSIONS[int(rng.integers(len(_PROGRESSIONS)))]

    def midi_of(degree: int, octave: int = 0) -> int:
        return root + 12 * (octave + degree // 7) + scale[degree % 7]

    def instrument() -> tuple[np.ndarray, float, float]:
        """(harmonic amplitudes, attack s, decay s): pluck-like when decay is short, pad-like when long."""
        count = int(rng.integers(3, 12))
        return 1.0 / np.arange(1, count + 1) ** rng.uniform(0.7, 2.0), rng.uniform(0.003, 0.08), rng.uniform(0.15, 2.0)

    def note(midi: int, length: float, voice: tuple[np.ndarray, float, float], level: float) -> np.ndarray:
        amplitudes, attack, decay = voice
        frequency = 440.0 * 2.0 ** ((midi - 69) / 12.0)
        count = harmonics_below_nyquist(frequency, len(amplitudes), sample_rate)
        n = int((length + 0.3) * sample_rate)
        t = np.arange(n) / sample_rate
        vibrato = 1.0 + 0.003 * np.sin(2 * np.pi * 5.5 * t)
        tone = harmonic_tone(2 * np.pi * frequency * np.cumsum(vibrato) / sample_rate, amplitudes[:count])
        envelope = np.minimum(t / attack, 1.0) * np.exp(-t / decay)
        envelope *= np.clip((length + 0.3 - t) / 0.3, 0.0, 1.0)  # release over the last 0.3 s
        return level * tone * envelope

    chords, bass, melody = instrument(), instrument(), instrument()
    bar = 4 * beat
    time, bar_index = 0.0, 0
    while time < seconds:
        degree = progression[bar_index % len(progression)]
        for step in (0, 2, 4):
            add_at(out, int(time * sample_rate), note(midi_of(degree + step, 1), bar, chords, 0.25))
        for b in range(4):
            add_at(out, int((time + b * beat) * sample_rate), note(midi_of(degree, -1), beat, bass, 0.4))
        position = 0.0
        while position < bar - 1e-6:
            length = beat * float(rng.choice([0.5, 1.0, 1.0, 2.0]))
            if rng.random() < 0.85:
                degree_note = degree + int(rng.choice([0, 2, 4, 1, 3, 5, 7]))
                add_at(out, int((time + position) * sample_rate), note(midi_of(degree_note, 2), length, melody, 0.3))
            position += length
        time += bar
        bar_index += 1
    if rng.random() < 0.75:
        out += drums(rng, frames, sample_rate, beat) * rng.uniform(0.3, 1.0) * np.max(np.abs(out))
    return peak_normalised(out)


def drums(rng: np.random.Generator, frames: int, sample_rate: int, beat: float) -> np.ndarray:
    """Kick on beats 1 and 3, snare on 2 and 4, hi-hat on every eighth, peak about 1."""
    out = np.zeros(frames)
    n = int(0.3 * sample_rate)
    t = np.arange(n) / sample_rate
    kick_pitch = rng.uniform(45.0, 70.0) * (1.0 + 2.0 * np.exp(-t / 0.02))  # the pitch drop of a kick
    kick = np.sin(2 * np.pi * np.cumsum(kick_pitch) / sample_rate) * np.exp(-t / rng.uniform(0.05, 0.15))
    snare_decay = rng.uniform(0.05, 0.12)
    hat_decay = rng.uniform(0.01, 0.04)
    eighths = int(frames / sample_rate / (beat / 2)) + 1
    for index in range(eighths):
        start = int(index * beat / 2 * sample_rate)
        if index % 4 == 0:
            add_at(out, start, kick)
        if index % 4 == 2:
            snare = filtered(rng.standard_normal(n), sample_rate, 300.0, 6000.0) * np.exp(-t / snare_decay)
            add_at(out, start, 0.6 * (snare / (np.max(np.abs(snare)) + 1e-12) + 0.5 * damped_sine(190.0, 0.05, n, sample_rate)))
        hat = filtered(rng.standard_normal(n), sample_rate, 6000.0, 0.49 * sample_rate) * np.exp(-t / hat_decay)
        add_at(out, start, 0.25 * hat / (np.max(np.abs(hat)) + 1e-12))
    return out / (np.max(np.abs(out)) + 1e-12)


def traffic(rng: np.random.Generator, seconds: float, sample_rate: int = 16000) -> np.ndarray:
    """Road traffic: a low-passed brown-noise rumble, and vehicles passing by (0.1-0.6 per second)
    whose tyre noise and Doppler-shifted engine tone swell and fade with distance (amplitude ∝ 1/r),
    with the odd horn."""
    frames = frame_count(seconds, sample_rate)
    t = np.arange(frames) / sample_rate
    rumble = coloured_noise(rng, frames, sample_rate, 2.0, band=(0.0, rng.uniform(200.0, 600.0)))
    rumble *= 10.0 ** (3.0 * slow_curve(rng, frames, sample_rate, 0.1) / 20.0)
    vehicles = np.zeros(frames)
    rate = rng.uniform(0.1, 0.6)
    time = rng.exponential(1.0 / rate) - 4.0  # a vehicle may already be passing at the start
    while time < seconds + 4.0:
        vehicles += passing_vehicle(rng, t, sample_rate, time)
        time += rng.exponential(1.0 / rate)
    vehicles *= rng.uniform(1.0, 3.0)
    return peak_normalised(rumble + vehicles)


def passing_vehicle(rng: np.random.Generator, t: np.ndarray, sample_rate: int, closest: float) -> np.ndarray:
    """One vehicle passing at `closest` seconds over times `t` [T]: distance 3-30 m, speed 8-30 m/s."""
    speed, distance = rng.uniform(8.0, 30.0), rng.uniform(3.0, 30.0)
    along = speed * (t - closest)
    r = np.sqrt(distance**2 + along**2)
    gain = distance / r * (3.0 / distance)  # 1/r, relative to a car 3 m away
    frames = len(t)
    tyres = coloured_noise(rng, frames, sample_rate, 1.0, band=(rng.uniform(100, 300), rng.uniform(1000, 3000)))
    radial_speed = speed * along / r
    engine_hz = rng.uniform(30.0, 120.0) * 343.0 / (343.0 + radial_speed)  # Doppler shift
    engine = harmonic_tone(2 * np.pi * np.cumsum(engine_hz) / sample_rate, 1.0 / np.arange(1, 6))
    sound = tyres + rng.uniform(0.2, 1.0) * engine
    if rng.random() < 0.05:
        honk = (t > closest - 1.0) & (t < closest - 1.0 + rng.uniform(0.2, 0.8))
        pitch = rng.uniform(350, 500)
        sound += 2.0 * honk * np.sign(np.sin(2 * np.pi * pitch * t) + np.sin(2 * np.pi * pitch * 1.26 * t))
    return gain * sound


# ---------------------------------------------------------------------------------------------
# Voices: babble and office


def babble(
    rng: np.random.Generator,
    seconds: float,
    sample_rate: int = 16000,
    utterances: Sequence[np.ndarray] = (),
    talkers: int | None = None,
) -> np.ndarray:
    """Several people talking at once: `talkers` (default 3-8) streams, each a random sequence of
    `utterances` ([T_i] arrays at `sample_rate`) with 0.1-0.8 s gaps, started at a random offset and
    given its own gain (±6 dB) and distance low-pass (2.5-7 kHz)."""
    if not utterances:
        raise ValueError("babble needs at least one utterance to build talkers from")
    frames = frame_count(seconds, sample_rate)
    talkers = int(rng.integers(3, 9)) if talkers is None else talkers
    out = np.zeros(frames)
    for _ in range(talkers):
        stream = talker_stream(rng, frames, sample_rate, utterances)
        stream = filtered(stream, sample_rate, 60.0, rng.uniform(2500.0, 7000.0))
        out += stream / (np.sqrt(np.mean(stream**2)) + 1e-12) * 10.0 ** (rng.uniform(-6, 6) / 20.0)
    return peak_normalised(out)


def talker_stream(rng: np.random.Generator, frames: int, sample_rate: int, utterances: Sequence[np.ndarray]) -> np.ndarray:
    """[frames]: one talker saying random `utterances` one after another, entering mid-sentence."""
    pieces, total = [], 0
    while total < 2 * frames:  # twice the length, so the random offset never runs out
        piece = np.array(utterances[int(rng.integers(len(utterances)))], dtype=np.float64)
        fade = min(len(piece) // 2, int(0.01 * sample_rate))  # no click where a piece starts or stops
        if fade:
            ramp = np.linspace(0.0, 1.0, fade)
            piece[:fade] *= ramp
            piece[-fade:] *= ramp[::-1]
        gap = np.zeros(int(rng.uniform(0.1, 0.8) * sample_rate))
        pieces += [piece, gap]
        total += len(piece) + len(gap)
    stream = np.concatenate(pieces)
    start = int(rng.integers(0, len(stream) - frames + 1))
    return stream[start : start + frames]


def office(
    rng: np.random.Generator,
    seconds: float,
    sample_rate: int = 16000,
    utterances: Sequence[np.ndarray] = (),
) -> np.ndarray:
    """An open-plan office: pink, low-passed HVAC noise, keyboard clicks nearby and, when
    `utterances` are given, distant babble (muffled to 1.5-3 kHz)."""
    frames = frame_count(seconds, sample_rate)
    hvac = coloured_noise(rng, frames, sample_rate, rng.uniform(0.8, 1.4), band=(40.0, rng.uniform(500.0, 2500.0)))
    sound = hvac * 0.15
    sound += keyboard_clicks(rng, seconds, sample_rate).astype(np.float64) * 10.0 ** (rng.uniform(-12, 0) / 20.0)
    if utterances:
        voices = babble(rng, seconds, sample_rate, utterances, talkers=int(rng.integers(2, 6)))
        voices = filtered(voices.astype(np.float64), sample_rate, 80.0, rng.uniform(1500.0, 3000.0))
        sound += voices / (np.sqrt(np.mean(voices**2)) + 1e-12) * 0.15 * 10.0 ** (rng.uniform(-6, 6) / 20.0)
    return peak_normalised(sound)


# ---------------------------------------------------------------------------------------------

Generator = Callable[[np.random.Generator, float, int], np.ndarray]

NOISE_GENERATORS: dict[str, Generator] = {  # the kinds that need nothing but `rng`
    "music": music,
    "hum": mains_hum,
    "clicks": keyboard_clicks,
    "traffic": traffic,
    "fan": fan_noise,
    "engine": engine_noise,
    "white": white_noise,
    "pink": pink_noise,
}
VOICE_NOISES = ("babble", "office")  # built from utterances of the corpus's own voices
NOISE_KINDS = ("babble", "office", *NOISE_GENERATORS)


def make_noise(
    kind: str,
    rng: np.random.Generator,
    seconds: float,
    sample_rate: int = 16000,
    utterances: Sequence[np.ndarray] = (),
) -> np.ndarray:
    """The noise of `kind` (one of NOISE_KINDS) as [T] float32 with peak 0.5; babble needs
    `utterances`, office uses them for its distant voices."""
    if kind == "babble":
        return babble(rng, seconds, sample_rate, utterances)
    if kind == "office":
        return office(rng, seconds, sample_rate, utterances)
    if kind not in NOISE_GENERATORS:
        raise ValueError(f"unknown noise kind {kind!r}; known: {NOISE_KINDS}")
    return NOISE_GENERATORS[kind](rng, seconds, sample_rate)
