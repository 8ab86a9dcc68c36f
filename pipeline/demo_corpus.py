"""A small synthetic speech corpus, voiced by espeak-ng, for `vaglio demo` and the tests.

It is deterministic (fixed sentences, one seeded RNG) and deliberately untidy in the ways real
collections are: mixed containers, sample rates and channel counts, a long recording with long
pauses, near-silence, a corrupt file, a truncated file, an exact duplicate, and a second source
whose non-commercial licence the pipeline must refuse.
"""

from __future__ import annotations

import io
import json
import math
import os
import random
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import soundfile
import yaml

SAMPLE_RATE = 16_000
SEED = 20_240_611
OPEN_SOURCE = "open-radio"
NC_SOURCE = "nc-lectures"
NEMO_SOURCE = "read-aloud"
CATALOG_NAME = "catalog.yaml"
REFERENCES_NAME = "references.tsv"
MARKER_NAME = ".complete"
CORPUS_VERSION = 3  # bump when the corpus changes, so cached builds are rebuilt

_SOURCES = (
    {
        "name": OPEN_SOURCE,
        "kind": "local",
        "path": OPEN_SOURCE,
        "license": "CC BY 4.0",
        "attribution": "vaglio demo corpus (espeak-ng), CC BY 4.0",
        "languages": ["en", "it"],
    },
    {
        "name": NC_SOURCE,
        "kind": "local",
        "path": NC_SOURCE,
        "license": "CC BY-NC 4.0",
        "attribution": "vaglio demo NC lectures",
        "languages": ["en"],
    },
    {
        "name": NEMO_SOURCE,
        "kind": "nemo",
        "path": f"{NEMO_SOURCE}/manifest.json",
        "license": "CC0 1.0 Universal",
        "attribution": "vaglio demo corpus (espeak-ng), read-aloud session, CC0",
        "languages": ["en"],
        "labelled": True,
    },
)

ENGLISH = (
    "The bakery on the corner opens at seven every morning.",
    "Could you remind me to call my sister after lunch?",
    "We missed the last bus and had to walk home in the rain.",
    "The library will be closed on Monday for repairs.",
    "My neighbour grows tomatoes and basil on her small balcony.",
    "Please leave your shoes by the door when you come in.",
    "The train to the city was twenty minutes late today.",
    "I usually drink a cup of tea before I start working.",
    "They are painting the kitchen a pale shade of green.",
    "Turn left at the church and the post office is on your right.",
    "Our team meeting has been moved to Thursday afternoon.",
    "The children built a sandcastle before the tide came in.",
    "He forgot his umbrella at the restaurant again.",
    "Fresh bread and a little butter make a perfect breakfast.",
    "The weather forecast says it will be sunny all weekend.",
    "She is learning to play the guitar in the evenings.",
    "Remember to water the plants while I am away.",
    "The museum has a new exhibition about ancient maps.",
    "We cooked pasta with garlic, lemon and a little chili.",
    "The doctor said I should walk for half an hour each day.",
    "Can you tell me where the nearest pharmacy is?",
    "My grandfather still writes letters by hand every week.",
    "The market sells cheap fruit just before it closes.",
    "I left the keys on the table next to the window.",
    "The concert in the park starts at eight this evening.",
    "Our cat sleeps on the warm laptop whenever she can.",
    "It took us three hours to assemble the new bookshelf.",
    "The river was so calm that it looked like glass.",
    "Please send me the photos from the wedding when you have time.",
    "The shop around the corner repairs bicycles and old radios.",
)

ITALIAN = (
    "Il panificio sotto casa apre alle sette ogni mattina.",
    "Domani pomeriggio andiamo al mare con i nostri amici.",
    "Ho dimenticato l'ombrello sul treno un'altra volta.",
    "La biblioteca resterà chiusa lunedì per lavori di manutenzione.",
    "Mia nonna prepara la pasta fatta in casa ogni domenica.",
    "Scusi, sa dirmi dove si trova la fermata dell'autobus?",
    "Il treno per Milano è partito con venti minuti di ritardo.",
    "Prima di uscire ricordati di chiudere bene la finestra.",
    "Al mercato la frutta costa meno verso l'ora di chiusura.",
    "Stasera guardiamo un film e ordiniamo una pizza.",
    "Il mio vicino suona il pianoforte fino a tarda sera.",
    "Abbiamo camminato lungo il fiume fino al vecchio ponte.",
    "La riunione è stata spostata a giovedì pomeriggio.",
    "Quest'estate vorrei imparare a nuotare meglio.",
    "I bambini giocano a pallone nel cortile della scuola.",
    "Il caffè di questo bar è il migliore del quartiere.",
    "Per favore, lascia le scarpe vicino alla porta d'ingresso.",
    "Le previsioni dicono che pioverà per tutto il fine settimana.",
    "Mio fratello lavora in un ospedale vicino alla stazione.",
    "Ho comprato pane fresco, formaggio e un po' di frutta.",
    "Il museo ha aperto una nuova mostra sulle antiche mappe.",
    "Ogni sera porto il cane a fare una lunga passeggiata.",
    "La farmacia più vicina si trova subito dopo la piazza.",
    "Abbiamo dipinto la cucina di un verde molto chiaro.",
    "Il concerto nel parco comincia alle otto e mezza.",
    "Non trovo più le chiavi, forse le ho lasciate in macchina.",
    "Mia sorella studia medicina all'università di Bologna.",
    "In autunno le foglie del giardino diventano rosse e gialle.",
    "Ci vediamo davanti al cinema tra dieci minuti.",
    "Il gatto dorme sempre sul divano vicino alla finestra.",
)

# Spoken in a source that declares only English and Italian: the language gate must drop it.
GERMAN = (
    "Der Zug nach Hamburg fährt heute von Gleis sieben ab.",
    "Am Wochenende besuchen wir meine Großeltern auf dem Land.",
    "Kannst du mir bitte das Salz und den Pfeffer geben?",
    "Im Sommer schwimmen die Kinder jeden Tag im See.",
)

_POOLS = {"en": ENGLISH, "it": ITALIAN, "de": GERMAN}
_RECORDINGS_PER_LANGUAGE = 4
_SPEEDS = (140, 155, 170)
_EDGE_S = 0.5
_NOISE_AMPLITUDE = 1e-4
_SPEECH_GAIN = 0.5  # espeak-ng peaks near full scale; leave headroom for resampling
_LECTURE_SPEED = 145
_LECTURE_S = 165.0
_LECTURE_LONG_PAUSES = {9: 3.0, 24: 3.0}
_WORKERS = 4
# Container cycle and the (sample rate, channels) each is stored at, so standardise has real
# work to do. FLAC stays 16 kHz mono: en-01 is FLAC and its WAV copy must decode identically.
_FORMATS = ("flac", "mp3", "wav", "m4a", "ogg")
_LAYOUTS = {
    "flac": (16_000, 1),
    "mp3": (22_050, 1),
    "wav": (44_100, 2),
    "m4a": (16_000, 1),
    "ogg": (48_000, 1),
}
_FFMPEG = ("ffmpeg", "-loglevel", "error", "-y")
_ENCODERS = {
    ".mp3": ("-c:a", "libmp3lame", "-b:a", "64k"),
    ".ogg": ("-c:a", "libvorbis", "-q:a", "4"),
    ".m4a": ("-c:a", "aac", "-b:a", "64k"),
}
# bitexact keeps encoder versions and random Ogg serials out of the files, so builds repeat.
_BITEXACT = ("-fflags", "+bitexact", "-flags:a", "+bitexact")


@dataclass(frozen=True)
class Utterance:
    """One sentence and the language it is spoken in."""

    lang: str  # ISO 639-1, e.g. "en", "it"
    text: str


@dataclass(frozen=True)
class _Recording:
    """One file to voice: what is said, how fast, and how it is stored."""

    source: str
    name: str
    utterances: tuple[Utterance, ...]
    gaps_s: tuple[float, ...]  # pauses between utterances, one fewer than utterances
    speed: int
    sample_rate: int = SAMPLE_RATE
    channels: int = 1
    max_s: float = math.inf  # stop after the sentence that reaches this length
    keep_fraction: float = 1.0  # below 1, cut the file's bytes but keep the full-length header

    @property
    def lang(self) -> str:
        return self.utterances[0].lang


def _require(*programs: str) -> None:
    """Fail early, naming what to install, instead of a bare FileNotFoundError mid-build."""
    missing = [program for program in programs if shutil.which(program) is None]
    if missing:
        raise RuntimeError(
            f"the demo corpus needs {', '.join(missing)} on PATH; "
            f"install it (e.g. apt-get install {' '.join(missing)})"
        )


def _run(command: list[str], data: bytes = b"") -> bytes:
    """Run a program as a bytes filter; a failure carries its stderr so the cause is visible."""
    _require(command[0])
    done = subprocess.run(command, input=data, capture_output=True, check=False)
    if done.returncode != 0:
        error = done.stderr.decode(errors="replace").strip()
        raise RuntimeError(f"{command[0]} failed with exit code {done.returncode}: {error}")
    return done.stdout


def _resample(audio: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """Mono float32 resampling by ffmpeg, which is already required and band-limits properly."""
    pcm = _run(
        [
            *_FFMPEG,
            *("-f", "f32le", "-ar", str(rate_in), "-ac", "1", "-i", "pipe:0"),
            *("-f", "f32le", "-ar", str(rate_out), "pipe:1"),
        ],
        audio.astype("<f4").tobytes(),
    )
    return np.frombuffer(pcm, dtype="<f4").astype(np.float32)


def speak(text: str, lang: str, *, speed: int = 150) -> np.ndarray:
    """Voice one sentence as float32 mono at 16 kHz, the rate the pipeline works at."""
    # Text goes in on stdin as UTF-8 so accents survive any locale and a leading '-' is not
    # taken for an option; espeak-ng's 22.05 kHz WAV is resampled by ffmpeg.
    wav = _run(
        ["espeak-ng", "-b", "1", "-v", lang, "-s", str(speed), "--stdin", "--stdout"],
        text.encode(),
    )
    pcm = _run(
        [*_FFMPEG, "-i", "pipe:0", "-f", "f32le", "-ac", "1", "-ar", str(SAMPLE_RATE), "pipe:1"],
        wav,
    )
    return np.frombuffer(pcm, dtype="<f4").astype(np.float32)


def compose(pieces: list[np.ndarray], pauses_s: list[float], *, edge_s: float = 0.0) -> np.ndarray:
    """Join 16 kHz pieces with the given pauses between them and `edge_s` before and after.

    Faint fixed noise covers the whole result, so pauses look like a quiet room rather than
    digital zeros, and equal inputs still give equal samples.
    """
    if not pieces or len(pauses_s) != len(pieces) - 1:
        raise ValueError(
            f"compose needs one pause fewer than pieces, got {len(pieces)} pieces "
            f"and {len(pauses_s)} pauses"
        )
    edge = np.zeros(round(edge_s * SAMPLE_RATE), dtype=np.float32)
    parts = [edge]
    for index, piece in enumerate(pieces):
        if index:
            parts.append(np.zeros(round(pauses_s[index - 1] * SAMPLE_RATE), dtype=np.float32))
        parts.append(np.asarray(piece, dtype=np.float32))
    parts.append(edge)
    audio = np.concatenate(parts)
    noise = np.random.default_rng(SEED).uniform(-_NOISE_AMPLITUDE, _NOISE_AMPLITUDE, len(audio))
    return audio + noise.astype(np.float32)


def speech_span(samples: np.ndarray) -> tuple[float, float]:
    """Where the speech of a clean clip starts and ends (seconds): the first and last 30 ms
    whose energy above 150 Hz stays 15 dB over the clip's quiet floor.

    Above 150 Hz, because recorded clips carry rumble and thumps below it that are not speech
    (the CMU clips: up to 0.3 s of it); 30 ms running, so a lone click is not an onset.
    """
    spectrum = np.fft.rfft(np.asarray(samples, dtype=np.float64))
    spectrum[np.fft.rfftfreq(len(samples), 1 / SAMPLE_RATE) < 150] = 0
    filtered = np.fft.irfft(spectrum, len(samples))
    step = SAMPLE_RATE // 100
    frames = filtered[: len(filtered) // step * step].reshape(-1, step)
    level = 10 * np.log10(np.mean(frames**2, axis=1) + 1e-12)
    loud = level > np.percentile(level, 10) + 15
    held = np.flatnonzero(np.convolve(loud, np.ones(3), "valid") == 3)
    if not len(held):
        raise ValueError("no speech in the clip: nothing rises 15 dB over its floor for 30 ms")
    return float(held[0]) / 100, float(held[-1] + 3) / 100


def placed_speech(
    pieces: list[np.ndarray], pauses_s: list[float], *, edge_s: float = 0.0
) -> list[tuple[float, float]]:
    """Where each piece's speech (`speech_span`) lies in `compose(pieces, pauses_s, edge_s=…)`."""
    spans, start = [], round(edge_s * SAMPLE_RATE)
    for index, piece in enumerate(pieces):
        first, last = speech_span(piece)
        spans.append((start / SAMPLE_RATE + first, start / SAMPLE_RATE + last))
        start += len(piece) + (round(pauses_s[index] * SAMPLE_RATE) if index < len(pauses_s) else 0)
    return spans


def write_audio(path: Path, audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> None:
    """Store samples (frames, or frames x channels) in the container the extension names."""
    path = Path(path)
    # Quantise here rather than in libsndfile, whose float scaling differs between WAV and FLAC:
    # equal samples must give equal files in both. Clipping stops overshoot wrapping around.
    pcm = np.round(np.clip(audio, -1.0, 1.0) * 32767).astype(np.int16)
    suffix = path.suffix.lower()
    if suffix in (".wav", ".flac"):
        soundfile.write(path, pcm, sample_rate, subtype="PCM_16")
        return
    if suffix not in _ENCODERS:
        raise ValueError(
            f"{path}: cannot write {suffix!r} audio; use one of wav, flac, "
            f"{', '.join(s.lstrip('.') for s in _ENCODERS)}"
        )
    wav = io.BytesIO()
    soundfile.write(wav, pcm, sample_rate, format="WAV", subtype="PCM_16")
    _run([*_FFMPEG, "-i", "pipe:0", *_ENCODERS[suffix], *_BITEXACT, str(path)], wav.getvalue())


def _script(
    rng: random.Random, lang: str, count: int, gap_range: tuple[float, float] = (0.4, 1.5)
) -> tuple[tuple[Utterance, ...], tuple[float, ...]]:
    """Distinct sentences of one language and the pauses between them."""
    texts = rng.sample(_POOLS[lang], count)
    gaps = tuple(rng.uniform(*gap_range) for _ in range(count - 1))
    return tuple(Utterance(lang, text) for text in texts), gaps


def _plan(scale: int) -> list[_Recording]:
    """Decide every file's content and form up front, in one seeded order, so builds repeat."""
    rng = random.Random(SEED)
    recordings: list[_Recording] = []
    for lang in ("en", "it"):
        for number in range(1, _RECORDINGS_PER_LANGUAGE * scale + 1):
            extension = _FORMATS[len(recordings) % len(_FORMATS)]
            rate, channels = _LAYOUTS[extension]
            utterances, gaps = _script(rng, lang, rng.randint(3, 5))
            recordings.append(
                _Recording(
                    OPEN_SOURCE,
                    f"{lang}-{number:02d}.{extension}",
                    utterances,
                    gaps,
                    rng.choice(_SPEEDS),
                    sample_rate=rate,
                    channels=channels,
                )
            )
    # Same plan, different file: decodes to the same samples as en-01.flac.
    recordings.append(replace(recordings[0], name="en-01-copy.wav"))

    # Two shuffled passes over the English sentences: more than the lecture needs; it stops
    # once it is _LECTURE_S long, whatever the voice's exact pace.
    texts = rng.sample(ENGLISH, len(ENGLISH)) + rng.sample(ENGLISH, len(ENGLISH))
    gaps = [rng.uniform(0.5, 1.5) for _ in texts[1:]]
    for index, pause in _LECTURE_LONG_PAUSES.items():
        gaps[index] = pause
    recordings.append(
        _Recording(
            OPEN_SOURCE,
            "long-lecture.flac",
            tuple(Utterance("en", text) for text in texts),
            tuple(gaps),
            _LECTURE_SPEED,
            max_s=_LECTURE_S,
        )
    )
    utterances, gaps = _script(rng, "en", 4)
    recordings.append(
        _Recording(OPEN_SOURCE, "truncated.wav", utterances, gaps, 155, keep_fraction=0.4)
    )
    utterances, gaps = _script(rng, "de", len(GERMAN))
    recordings.append(_Recording(OPEN_SOURCE, "de-01.wav", utterances, gaps, 150))
    for number in (1, 2):
        utterances, gaps = _script(rng, "en", rng.randint(2, 3))
        recordings.append(
            _Recording(
                NC_SOURCE, f"lecture-{number:02d}.wav", utterances, gaps, rng.choice(_SPEEDS)
            )
        )
    return recordings


def _render(
    recording: _Recording, voices: dict[tuple[Utterance, int], np.ndarray]
) -> tuple[np.ndarray, str]:
    """The recording's 16 kHz audio and the text actually spoken in it."""
    pieces: list[np.ndarray] = []
    elapsed = _EDGE_S
    for utterance, gap in zip(recording.utterances, (*recording.gaps_s, 0.0)):
        pieces.append(_SPEECH_GAIN * voices[(utterance, recording.speed)])
        elapsed += len(pieces[-1]) / SAMPLE_RATE + gap
        if elapsed >= recording.max_s:
            break
    audio = compose(pieces, list(recording.gaps_s[: len(pieces) - 1]), edge_s=_EDGE_S)
    return audio, " ".join(u.text for u in recording.utterances[: len(pieces)])


def melody(rng: random.Random, notes: int = 24, note_s: float = 0.4) -> np.ndarray:
    """Music-like tones: a random tune of harmonic notes with soft attacks, no speech."""
    t = np.arange(int(note_s * SAMPLE_RATE)) / SAMPLE_RATE
    envelope = np.minimum(1.0, t / 0.02) * np.exp(-3.0 * t)
    pieces = []
    for _ in range(notes):
        pitch = 220.0 * 2 ** (rng.choice((0, 2, 4, 5, 7, 9, 11, 12)) / 12)
        tone = sum(np.sin(2 * np.pi * pitch * k * t) / k for k in (1, 2, 3))
        pieces.append((0.2 * envelope * tone).astype(np.float32))
    return compose(pieces, [0.05] * (notes - 1), edge_s=_EDGE_S)


def _cut(path: Path, fraction: float) -> None:
    """Drop the tail of a 16-bit WAV's data while its header still declares the full length."""
    info = soundfile.info(str(path))
    frame_bytes = 2 * info.channels
    data_bytes = info.frames * frame_bytes
    header_bytes = path.stat().st_size - data_bytes
    os.truncate(path, header_bytes + int(info.frames * fraction) * frame_bytes)


def _store(
    root: Path, recording: _Recording, voices: dict[tuple[Utterance, int], np.ndarray]
) -> tuple[str, str, str, str]:
    """Write one recording in its planned form; return its references.tsv row."""
    audio, text = _render(recording, voices)
    if recording.sample_rate != SAMPLE_RATE:
        audio = _resample(audio, SAMPLE_RATE, recording.sample_rate)
    path = root / recording.source / recording.name
    write_audio(path, np.repeat(audio[:, None], recording.channels, axis=1), recording.sample_rate)
    if recording.keep_fraction < 1.0:
        _cut(path, recording.keep_fraction)
    return recording.source, recording.name, recording.lang, text


def _populate(root: Path, scale: int) -> None:
    """Write every source folder, references.tsv and catalog.yaml into an empty folder."""
    recordings = _plan(scale)
    for source in _SOURCES:
        (root / source["name"]).mkdir()
    with ThreadPoolExecutor(max_workers=_WORKERS) as pool:
        keys = sorted(
            {(u, r.speed) for r in recordings for u in r.utterances},
            key=lambda key: (key[0].lang, key[0].text, key[1]),
        )
        voiced = pool.map(lambda key: speak(key[0].text, key[0].lang, speed=key[1]), keys)
        voices = dict(zip(keys, voiced))
        rows = sorted(pool.map(lambda recording: _store(root, recording, voices), recordings))

    open_radio = root / OPEN_SOURCE
    write_audio(open_radio / "silence.wav", compose([np.zeros(10 * SAMPLE_RATE, np.float32)], []))
    write_audio(open_radio / "tones.wav", melody(random.Random(SEED)))
    (open_radio / "corrupt.mp3").write_bytes(random.Random(SEED).randbytes(4096))
    _read_aloud(root / NEMO_SOURCE, random.Random(SEED + 1))
    lines = ["source\tfile\tlang\ttext", *("\t".join(row) for row in rows)]
    (root / REFERENCES_NAME).write_text("\n".join(lines) + "\n", encoding="utf-8")
    catalog = yaml.safe_dump(
        {"sources": list(_SOURCES)}, sort_keys=False, default_flow_style=None, allow_unicode=True
    )
    (root / CATALOG_NAME).write_text(catalog, encoding="utf-8")


def _read_aloud(folder: Path, rng: random.Random) -> None:
    """A NeMo-manifest source: one session file, listed as two windows with transcripts."""
    texts = rng.sample(ENGLISH, 4)
    pieces = [_SPEECH_GAIN * speak(text, "en") for text in texts]
    pause_s = 0.8
    write_audio(folder / "session.wav", compose(pieces, [pause_s] * 3, edge_s=_EDGE_S))
    starts = [_EDGE_S]
    for piece in pieces[:-1]:
        starts.append(starts[-1] + len(piece) / SAMPLE_RATE + pause_s)
    rows = []
    for first in (0, 2):
        start = starts[first] - 0.3
        end = starts[first + 1] + len(pieces[first + 1]) / SAMPLE_RATE + 0.3
        rows.append(
            {
                "audio_filepath": "session.wav",
                "offset": round(start, 3),
                "duration": round(end - start, 3),
                "text": " ".join(texts[first : first + 2]),
                "lang": "en",
            }
        )
    (folder / "manifest.json").write_text("".join(json.dumps(r) + "\n" for r in rows))


def _marker_text(scale: int) -> str:
    return f"scale {scale}, version {CORPUS_VERSION}"


def _is_complete(root: Path, scale: int) -> bool:
    marker = root / MARKER_NAME
    return (
        (root / CATALOG_NAME).is_file()
        and marker.is_file()
        and marker.read_text().strip() == _marker_text(scale)
    )


def _swap_in(staging: Path, root: Path) -> None:
    """Put the finished build at root, replacing an earlier one; renames keep it all-or-nothing."""
    if not root.exists():
        staging.rename(root)
        return
    previous = staging.with_name(f"{staging.name}-previous")
    root.rename(previous)
    staging.rename(root)
    shutil.rmtree(previous)


def build_demo_corpus(root: Path, *, scale: int = 1) -> Path:
    """Create the demo corpus under root (reusing a finished one) and return its catalog path.

    `scale` multiplies the number of short English and Italian recordings, for benchmarks.
    The build happens in a hidden sibling folder and is renamed into place with its
    completion marker already inside, so an interrupted build never looks finished.
    """
    root = Path(root)
    if scale < 1:
        raise ValueError(f"scale must be a positive integer, got {scale}")
    if _is_complete(root, scale):
        return root / CATALOG_NAME
    _require("espeak-ng", "ffmpeg")
    if root.exists() and any(root.iterdir()) and not (root / MARKER_NAME).exists():
        raise FileExistsError(f"{root} holds other files; refusing to replace it with the demo")
    root.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{root.name}-building-", dir=root.parent))
    try:
        staging.chmod(0o755)  # mkdtemp makes it private; the corpus is meant to be read by all
        _populate(staging, scale)
        (staging / MARKER_NAME).write_text(_marker_text(scale) + "\n")
        if not _is_complete(root, scale):  # a concurrent build may have finished first
            _swap_in(staging, root)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return root / CATALOG_NAME
