"""Word timings on real speech: each clip's first and last word against where its speech
starts and ends, and what the alignment costs pass 2.

The recordings join the seven real clips of `tests/data/real_speech` (CMU Sphinx test data,
BSD-2-Clause; one speaker) in six orders with pauses of 0.4-1.5 s and 0.5 s at each end. Where
each clip's speech lies in them is known (`demo_corpus.speech_span`: its energy above 150 Hz).
The corpus is curated with the default config; a clip's words are the words of the rows whose
middle lies nearest its speech. Printed per clip: the first word's start and the last word's
end minus the speech's (goal: within 0.2 s), for the words as stored (`segments_all.words`,
fitted to the VAD) and for Whisper's alignment alone (the same pass-2 rows transcribed again
with word timings, unfitted). Then a summary, and the cost: seconds spent aligning
(`_aligned_words`) and fitting (`fit_to_speech`) as a share of pass 2's wall time, on these
recordings and on the demo corpus.

    python -m bench.word_timings [--scale 1] [--clips-only]
"""

from __future__ import annotations

import argparse
import csv
import random
import shutil
from pathlib import Path

import numpy as np
import soundfile
import yaml

from bench.common import CACHE, emit
from bench.pipeline_profile import spent, wrap
from manifests.views import connect, current_shards
from pipeline.asr.faster_whisper_backend import FasterWhisperBackend
from pipeline.asr.shared import loaded_backend
from pipeline.audio.cut import segment_samples
from pipeline.config import CurateConfig
from pipeline.demo_corpus import build_demo_corpus, compose, placed_speech, write_audio
from pipeline.run.curate import ThreadExecutor, curate
from pipeline.stage import ShardContext
from pipeline.stages import pass2

CLIPS = Path(__file__).resolve().parent.parent / "tests" / "data" / "real_speech"
SOURCE = "cmu-sphinx"
ORDERS = 6
EDGE_S = 0.5
TOLERANCE_S = 0.2


def build_recordings(folder: Path) -> dict[str, list[tuple[str, float, float]]]:
    """Write the recordings and a catalog; recording id -> (clip, speech start, speech end)."""
    with (CLIPS / "transcripts.tsv").open(encoding="utf-8") as table:
        names = [row["file"] for row in csv.DictReader(table, delimiter="\t")]
    audio = {name: soundfile.read(CLIPS / name, dtype="float32")[0] for name in names}
    rng = random.Random(23)
    (folder / SOURCE).mkdir(parents=True)
    placed = {}
    for number in range(ORDERS):
        order = names if number == 0 else rng.sample(names, len(names))
        pauses = [rng.uniform(0.4, 1.5) for _ in order[1:]]
        pieces = [audio[name] for name in order]
        path = folder / SOURCE / f"take-{number}.wav"
        write_audio(path, compose(pieces, pauses, edge_s=EDGE_S))
        spans = placed_speech(pieces, pauses, edge_s=EDGE_S)
        placed[f"{SOURCE}/{path.name}"] = [(n, a, b) for n, (a, b) in zip(order, spans)]
    source = {"name": SOURCE, "kind": "local", "path": SOURCE, "license": "BSD-2-Clause",
              "attribution": "CMU Sphinx test data", "languages": ["en"]}  # fmt: skip
    (folder / "catalog.yaml").write_text(yaml.safe_dump({"sources": [source]}), encoding="utf-8")
    return placed


def edge_errors(
    words: list[tuple[float, float]], clips: list[tuple[str, float, float]]
) -> list[tuple[float | None, float | None]]:
    """Per clip, (first word's start - speech start, last word's end - speech end), the words
    going to the clip whose speech their middle is nearest; (None, None) for a clip without."""
    owner = [
        int(np.argmin([max(a - (s + e) / 2, (s + e) / 2 - b, 0.0) for _, a, b in clips]))
        for s, e in words
    ]
    errors = []
    for index, (_, a, b) in enumerate(clips):
        mine = [w for w, o in zip(words, owner) if o == index]
        errors.append((mine[0][0] - a, mine[-1][1] - b) if mine else (None, None))
    return errors


def aligned_again(workdir: Path, config: CurateConfig) -> dict[str, list[tuple[float, float]]]:
    """Recording id -> every word of its pass-2 rows as Whisper's alignment alone times them."""
    backend = loaded_backend(config.pass2.asr)
    words: dict[str, list[tuple[float, float]]] = {}
    for shard_id in current_shards(workdir):
        context = ShardContext(shard_id, workdir)
        rows = context.read("pass2", ["recording_id", "offset", "duration", "lang", "text"])
        rows = rows.filter(rows["text"].is_valid())
        hypotheses = backend.transcribe(
            segment_samples(context, rows), rows["lang"].to_pylist(), word_timings=True
        )
        for row, hypothesis in zip(rows.to_pylist(), hypotheses):
            timed = [(row["offset"] + w.start, row["offset"] + w.end) for w in hypothesis.words]
            words.setdefault(row["recording_id"], []).extend(timed)
    return {rid: sorted(timed) for rid, timed in words.items()}


def timed_curation(catalog: Path, workdir: Path) -> dict[str, float]:
    """Curate with the default config; seconds of pass 2, of its alignment and its fitting."""
    spent.clear()
    shutil.rmtree(workdir, ignore_errors=True)
    config = CurateConfig()
    curate(catalog, workdir, config, ThreadExecutor(config.workers))
    return {part: spent[part][0] for part in ("pass2", "alignment", "fitting")}


def share(seconds: dict[str, float]) -> float:
    return (seconds["alignment"] + seconds["fitting"]) / seconds["pass2"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=int, default=1, help="demo corpus size multiplier")
    parser.add_argument("--clips-only", action="store_true", help="no cost on the demo corpus")
    args = parser.parse_args()
    wrap(pass2.Pass2, "run", "pass2")
    wrap(FasterWhisperBackend, "_aligned_words", "alignment")
    wrap(pass2, "fit_to_speech", "fitting")
    folder = CACHE / "word-timings"
    shutil.rmtree(folder, ignore_errors=True)
    placed = build_recordings(folder)
    seconds = timed_curation(folder / "catalog.yaml", folder / "work")
    with connect(folder / "work") as con:
        rows = con.execute(
            'SELECT recording_id, words FROM segments_all ORDER BY recording_id, "offset"'
        ).fetchall()
    stored: dict[str, list[tuple[float, float]]] = {}
    for recording_id, words in rows:
        stored.setdefault(recording_id, []).extend((w["start"], w["end"]) for w in words)
    raw = aligned_again(folder / "work", CurateConfig())
    found, alone = [], []
    for recording_id, clips in placed.items():
        errors = edge_errors(stored.get(recording_id, []), clips)
        raw_errors = edge_errors(raw.get(recording_id, []), clips)
        for (clip, a, b), (start, end), (raw_start, raw_end) in zip(clips, errors, raw_errors):
            emit("word_timings_clip", recording=recording_id, clip=clip,
                 speech=[round(a, 3), round(b, 3)], start_error_s=start, end_error_s=end,
                 alignment_alone_start_error_s=raw_start,
                 alignment_alone_end_error_s=raw_end)  # fmt: skip
            found += [start, end]
            alone += [raw_start, raw_end]
    demo = {}
    if not args.clips_only:
        catalog = build_demo_corpus(CACHE / f"demo-x{args.scale}", scale=args.scale)
        seconds_there = timed_curation(catalog, CACHE / f"word-timings-demo-x{args.scale}")
        demo = {
            "demo_scale": args.scale,
            "demo_pass2_s": seconds_there["pass2"],
            "demo_alignment_s": seconds_there["alignment"],
            "demo_fitting_s": seconds_there["fitting"],
            "demo_alignment_share": share(seconds_there),
        }
    emit(
        "word_timings",
        clips=len(found) // 2,
        within_tolerance=_within(found),
        max_abs_error_s=_worst(found),
        mean_abs_error_s=_mean(found),
        alignment_alone_within_tolerance=_within(alone),
        alignment_alone_max_abs_error_s=_worst(alone),
        alignment_alone_mean_abs_error_s=_mean(alone),
        tolerance_s=TOLERANCE_S,
        real_clips_pass2_s=seconds["pass2"],
        real_clips_alignment_share=share(seconds),
        **demo,
    )


def _within(errors: list[float | None]) -> float:
    """The share of clip edges within the tolerance; an edge without words is outside."""
    return sum(e is not None and abs(e) <= TOLERANCE_S for e in errors) / len(errors)


def _worst(errors: list[float | None]) -> float | None:
    known = [abs(e) for e in errors if e is not None]
    return max(known) if known else None


def _mean(errors: list[float | None]) -> float | None:
    known = [abs(e) for e in errors if e is not None]
    return sum(known) / len(known) if known else None


if __name__ == "__main__":
    main()
