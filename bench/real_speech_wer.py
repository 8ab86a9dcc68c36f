"""Kept text on real human speech, long-form: vaglio's two passes against the one pass a user
would run instead, on the same recordings with the same model (Whisper base, int8).

The recordings join the seven real clips of `tests/data/real_speech` (CMU Sphinx test data,
BSD-2-Clause; one speaker) in six orders, with pauses of 0.4-1.5 s. Printed: the WER of the
kept rows, of pass 1's text in the same rows, of faster-whisper's `BatchedInferencePipeline`
(batch 8, beam 5, its own VAD) on each whole recording, of its sequential `transcribe` on
each whole recording (beam 5, each window prompted with the text before it), and of Whisper
base on each clip alone; rows dropped, and speech coverage. `--config` curates with a
pipeline config (e.g. `bench/configs/one_sentence_per_row.yaml`). Numbers are compared as
digits. Forty-two sentences of one voice: a difference of a word or two is noise.

    python bench/real_speech_wer.py [--config pipeline.yaml]
"""

from __future__ import annotations

import argparse
import csv
import random
import shutil
from pathlib import Path

import jiwer
import soundfile
import yaml

from bench.common import CACHE, CORES, emit
from manifests.views import connect
from pipeline.asr.offline_models import resolve_whisper_model
from pipeline.config import load_config
from pipeline.demo_corpus import compose, write_audio
from pipeline.run.curate import ThreadExecutor, curate
from pipeline.text.normalise import normalise_text
from pipeline.text.numbers import with_digits

CLIPS = Path(__file__).resolve().parent.parent / "tests" / "data" / "real_speech"
SOURCE = "cmu-sphinx"
ORDERS = 6


def words(text: str) -> str:
    """Normalised words, numbers as digits (the transcripts say "ten", Whisper writes "10")."""
    return normalise_text(with_digits(text, "en"))


def clips() -> dict[str, tuple]:
    """file -> (samples, transcript)."""
    with (CLIPS / "transcripts.tsv").open(encoding="utf-8") as table:
        rows = list(csv.DictReader(table, delimiter="\t"))
    return {
        r["file"]: (soundfile.read(CLIPS / r["file"], dtype="float32")[0], r["text"]) for r in rows
    }


def build_recordings(folder: Path) -> dict[str, str]:
    """Write the long-form recordings and a catalog; recording id -> what was said."""
    audio, rng = clips(), random.Random(11)
    (folder / SOURCE).mkdir(parents=True)
    said = {}
    for number in range(ORDERS):
        order = list(audio) if number == 0 else rng.sample(list(audio), len(audio))
        pauses = [rng.uniform(0.4, 1.5) for _ in order[1:]]
        path = folder / SOURCE / f"take-{number}.wav"
        write_audio(path, compose([audio[f][0] for f in order], pauses, edge_s=0.5))
        said[f"{SOURCE}/{path.name}"] = " ".join(audio[f][1] for f in order)
    source = {"name": SOURCE, "kind": "local", "path": SOURCE, "license": "BSD-2-Clause",
              "attribution": "CMU Sphinx test data", "languages": ["en"]}  # fmt: skip
    (folder / "catalog.yaml").write_text(yaml.safe_dump({"sources": [source]}), encoding="utf-8")
    return said


def wer(references: dict[str, str], texts: dict[str, str]) -> float:
    ids = sorted(references)
    return jiwer.wer([words(references[i]) for i in ids], [words(texts.get(i, "")) for i in ids])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, help="a pipeline config YAML (default: none)")
    args = parser.parse_args()
    folder = CACHE / "real-speech"
    shutil.rmtree(folder, ignore_errors=True)
    said = build_recordings(folder)
    config = load_config(args.config)
    curate(folder / "catalog.yaml", folder / "work", config, ThreadExecutor(config.workers))
    with connect(folder / "work") as con:
        rows = con.execute(
            "SELECT recording_id, string_agg(CASE WHEN drop_reason IS NULL THEN text END, ' ' "
            'ORDER BY "offset"), string_agg(text_pass1, \' \' ORDER BY "offset"), '
            "count(*), count(drop_reason) FROM segments_all GROUP BY recording_id"
        ).fetchall()
        (coverage,) = con.execute(
            "SELECT coverage FROM speech_coverage WHERE source = 'overall'"
        ).fetchone()
    from faster_whisper import BatchedInferencePipeline, WhisperModel

    model = WhisperModel(
        resolve_whisper_model("whisper-base"), compute_type="int8", cpu_threads=CORES
    )
    anchor = BatchedInferencePipeline(model)
    anchored, sequential = {}, {}
    for recording_id in said:
        audio = soundfile.read(folder / recording_id, dtype="float32")[0]
        segments, _ = anchor.transcribe(audio, batch_size=8, beam_size=5, language="en")
        anchored[recording_id] = " ".join(s.text for s in segments)
        segments, _ = model.transcribe(audio, beam_size=5, language="en")
        sequential[recording_id] = " ".join(s.text for s in segments)
    per_clip = {
        name: " ".join(s.text for s in model.transcribe(samples, language="en", beam_size=5)[0])
        for name, (samples, _) in clips().items()
    }
    emit(
        "real_speech_wer",
        config=str(args.config) if args.config else None,
        recordings=len(said),
        audio_s=sum(soundfile.info(folder / r).duration for r in said),
        kept_wer=wer(said, {r: kept or "" for r, kept, *_ in rows}),
        pass1_wer=wer(said, {r: first or "" for r, _, first, *_ in rows}),
        anchor_wer=wer(said, anchored),
        whisper_long_form_wer=wer(said, sequential),
        whisper_per_clip_wer=wer({n: t for n, (_, t) in clips().items()}, per_clip),
        rows=sum(r[3] for r in rows),
        dropped=sum(r[4] for r in rows),
        speech_coverage=coverage,
    )


if __name__ == "__main__":
    main()
