"""Do the quality figures fall as a real clip gets worse? One real clip (`goforward.flac`, CMU
Sphinx test data) clean, then with each of three sounds added at 20, 10 and 0 dB: white noise,
a music-like tone bed (held chords of harmonic notes, a new chord every half second, no gaps),
and the demo corpus's melody (short notes that decay, with gaps between them): DNSMOS P.835 and
the SNR estimate of each, whether each ladder falls monotonically, and what one DNSMOS window
costs.

A level is the clip's speech power (its samples inside Silero VAD's speech regions) over the
added sound's power, so the SNR estimate can be read against it. The melody is there to show
the SNR estimate's blind spot: a sound with pauses of its own leaves quiet frames, which the
estimate takes for the floor; DNSMOS still hears it.

    python bench/quality_signals.py [--clip tests/data/real_speech/goforward.flac]
"""

from __future__ import annotations

import argparse
import random
import time
from itertools import pairwise
from pathlib import Path

import numpy as np
import soundfile

from bench.common import emit
from pipeline.audio.decode import SAMPLE_RATE
from pipeline.audio.vad import SileroVad, VadConfig, speech_regions
from pipeline.demo_corpus import melody
from pipeline.quality.dnsmos import RATINGS, WINDOW, Dnsmos
from pipeline.quality.snr import snr_db
from pipeline.speakers.encoder import VoiceEncoder
from pipeline.stages.speakers import SpeakersConfig

CLIP = Path(__file__).resolve().parent.parent / "tests" / "data" / "real_speech" / "goforward.flac"
LEVELS_DB = (20.0, 10.0, 0.0)
COST_WINDOWS = 8
SCALE = (0, 2, 4, 5, 7, 9, 11)  # semitones of a major scale


def chord_bed(seconds: float, rng: random.Random, chord_s: float = 0.5) -> np.ndarray:
    """Held major chords of harmonic notes (three partials each), one after another with no
    gap: a bed of music under the speech, never quiet."""
    t = np.arange(round(chord_s * SAMPLE_RATE)) / SAMPLE_RATE
    chords = []
    for _ in range(int(np.ceil(seconds / chord_s))):
        root = 110.0 * 2 ** (rng.choice(SCALE) / 12)
        notes = (root, root * 2 ** (4 / 12), root * 2 ** (7 / 12))
        chords.append(sum(np.sin(2 * np.pi * f * k * t) / k for f in notes for k in (1, 2, 3)))
    return np.concatenate(chords)


def speech_power(samples: np.ndarray) -> float:
    """Mean power of the samples inside the VAD's speech regions."""
    (probabilities,) = SileroVad().probabilities([samples])
    regions = speech_regions(probabilities, VadConfig(), len(samples))
    inside = np.concatenate(
        [samples[round(a * SAMPLE_RATE) : round(b * SAMPLE_RATE)] for a, b in regions]
    )
    return float(np.mean(inside.astype(np.float64) ** 2))


def added(samples: np.ndarray, sound: np.ndarray, level_db: float, power: float) -> np.ndarray:
    """`samples` with `sound` (cut or repeated to their length) `level_db` below `power`."""
    sound = np.resize(sound, len(samples)).astype(np.float64)
    gain = np.sqrt(power / 10 ** (level_db / 10) / np.mean(sound**2))
    return (samples + gain * sound).astype(np.float32)


def falls(values: list[float]) -> bool:
    return all(a > b for a, b in pairwise(values))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip", type=Path, default=CLIP)
    args = parser.parse_args()
    clean, rate = soundfile.read(args.clip, dtype="float32")
    if rate != SAMPLE_RATE:
        raise SystemExit(f"{args.clip}: {rate} Hz; the models hear {SAMPLE_RATE} Hz")
    power = speech_power(clean)
    beds = {
        "white": np.random.default_rng(0).standard_normal(len(clean)),
        "tone_bed": chord_bed(len(clean) / SAMPLE_RATE, random.Random(0)),
        "melody": melody(random.Random(0)),
    }
    conditions = [("clean", None, clean)] + [
        (bed, level, added(clean, sound, level, power))
        for bed, sound in beds.items()
        for level in LEVELS_DB
    ]
    model = Dnsmos()
    ladders: dict[str, dict[str, list[float]]] = {bed: {"ovrl": [], "snr": []} for bed in beds}
    for condition, level, samples in conditions:
        (ratings,) = model.rate([samples])
        estimate = snr_db(samples)
        for ladder in ladders.values() if condition == "clean" else [ladders[condition]]:
            ladder["ovrl"].append(ratings[-1])
            ladder["snr"].append(estimate)
        emit(
            "quality_signals",
            clip=args.clip.name,
            condition=condition,
            added_at_db=level,
            **{f"dnsmos_{name}": float(r) for name, r in zip(RATINGS, ratings)},
            snr_db=estimate,
        )
    for bed, ladder in ladders.items():
        emit(
            "quality_signals_order",
            condition=bed,
            levels_db=["clean", *LEVELS_DB],
            ovrl_falls=falls(ladder["ovrl"]),
            snr_falls=falls(ladder["snr"]),
        )
    voices = VoiceEncoder(threads=1).embed([samples for _, _, samples in conditions])
    for (condition, level, _), voice in zip(conditions[1:], voices[1:]):
        emit(
            "speaker_voice_under_noise",
            clip=args.clip.name,
            condition=condition,
            added_at_db=level,
            similarity_to_clean=float(voice @ voices[0]),
            same_speaker_across=SpeakersConfig().same_speaker_across,
        )
    window = np.resize(clean, WINDOW)
    list(model.rate([window]))  # warm
    wall, cpu = time.perf_counter(), time.process_time()
    list(model.rate([window] * COST_WINDOWS))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    emit(
        "dnsmos_window_cost",
        window_s=WINDOW / SAMPLE_RATE,
        threads=1,
        wall_s_per_window=wall / COST_WINDOWS,
        cpu_s_per_window=cpu / COST_WINDOWS,
    )


if __name__ == "__main__":
    main()
