"""The segment stage against `silero_vad.get_speech_timestamps` (ONNX), on the same audio.

Both run on one core. Silero's function gets the audio already decoded (its decoding is not
timed); the segment stage is timed as it runs in a curation: FLAC decoding, batched VAD,
hysteresis and cut-and-merge, shard by shard. Also printed: how well the two agree on where
speech is (intersection over union of speech time).

    python bench/segment_vs_silero.py [--scale 10] [--files-per-shard 4]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pyarrow.compute as pc

from bench.common import CACHE, emit
from pipeline.audio.decode import SAMPLE_RATE, from_flac
from pipeline.audio.duplicates import mark_duplicates
from pipeline.audio.vad import speech_regions
from pipeline.demo_corpus import build_demo_corpus
from pipeline.run.plan import plan_sources
from pipeline.run.runner import StageRunner
from pipeline.sources.catalog import load_catalog
from pipeline.stage import ShardContext
from pipeline.stages.segment import Segment, SegmentConfig
from pipeline.stages.standardise import Standardise, StandardiseConfig


def standardised_workdir(scale: int, files_per_shard: int) -> tuple[Path, list[str]]:
    """A workdir whose standardise stage is complete (not timed), and its shard ids."""
    corpus = build_demo_corpus(CACHE / f"demo-x{scale}", scale=scale)
    workdir = CACHE / f"segment-x{scale}-f{files_per_shard}"
    plans = plan_sources(load_catalog(corpus), workdir, files_per_shard)
    shard_ids = [s for plan in plans for s in plan.shard_ids]
    runner = StageRunner(workdir)
    standardise = Standardise(StandardiseConfig())
    for shard_id in shard_ids:
        runner.run(standardise, shard_id)
    mark_duplicates(workdir, [workdir / "standardise" / f"{s}.parquet" for s in shard_ids])
    return workdir, shard_ids


def speech_seconds(regions: list[tuple[float, float]]) -> np.ndarray:
    """A 10 ms grid marking speech, for comparing two segmentations."""
    if not regions:
        return np.zeros(0, dtype=bool)
    grid = np.zeros(int(regions[-1][1] * 100) + 1, dtype=bool)
    for start, end in regions:
        grid[int(start * 100) : int(end * 100)] = True
    return grid


def agreement(ours: list[list[tuple[float, float]]], theirs: list[list[tuple[float, float]]]):
    inter = union = 0
    for a, b in zip(ours, theirs):
        ga, gb = speech_seconds(a), speech_seconds(b)
        n = max(len(ga), len(gb))
        ga, gb = np.pad(ga, (0, n - len(ga))), np.pad(gb, (0, n - len(gb)))
        inter += int(np.count_nonzero(ga & gb))
        union += int(np.count_nonzero(ga | gb))
    return inter / union if union else 1.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=int, default=10, help="demo corpus size multiplier")
    parser.add_argument("--files-per-shard", type=int, default=4)
    args = parser.parse_args()

    import torch
    from silero_vad import get_speech_timestamps, load_silero_vad

    torch.set_num_threads(1)
    workdir, shard_ids = standardised_workdir(args.scale, args.files_per_shard)
    config = SegmentConfig()
    stage = Segment(config)  # one ONNX thread
    stage.vad.probabilities([])  # load the model before timing

    started = time.perf_counter()
    for shard_id in shard_ids:
        stage.run(ShardContext(shard_id, workdir))
    ours_s = time.perf_counter() - started

    audios = []
    for shard_id in shard_ids:
        table = ShardContext(shard_id, workdir).read("standardise")
        usable = table.filter(pc.is_null(table["quarantine_reason"]))
        audios += [from_flac(b) for b in usable["audio"].to_pylist()]
    audio_s = sum(len(a) for a in audios) / SAMPLE_RATE

    model = load_silero_vad(onnx=True)
    vad = config.vad
    theirs, started = [], time.perf_counter()
    for audio in audios:
        stamps = get_speech_timestamps(
            torch.from_numpy(audio),
            model,
            threshold=vad.threshold,
            min_speech_duration_ms=int(vad.min_speech_s * 1000),
            min_silence_duration_ms=int(vad.min_silence_s * 1000),
            speech_pad_ms=int(vad.speech_pad_s * 1000),
            return_seconds=True,
        )
        theirs.append([(s["start"], s["end"]) for s in stamps])
    silero_s = time.perf_counter() - started

    probabilities = stage.vad.probabilities(audios)
    ours = [speech_regions(p, vad, len(a)) for p, a in zip(probabilities, audios)]
    emit(
        "segment_vs_silero",
        audio_s=audio_s,
        recordings=len(audios),
        shards=len(shard_ids),
        vaglio_rtfx_per_core=audio_s / ours_s,
        silero_rtfx_per_core=audio_s / silero_s,
        ratio=silero_s / ours_s,
        speech_iou=agreement(ours, theirs),
    )


if __name__ == "__main__":
    main()
