"""The pass-2 ASR stage's batched decoding against faster-whisper's plain `transcribe`, on the
same utterances with the same model (Whisper base, int8), beam size and threads.

The utterances come from a curation of the demo corpus (not timed). Plain `transcribe` is
called once per utterance, as a user of faster-whisper would call it per file; the stage's
backend decodes them all in batches. Also printed: each side's word error rate against what
espeak-ng was asked to say, per language (utterances joined per recording), and the stage's
speed with Whisper's full 30 s padding, to show what batching alone gives.

    python bench/asr_vs_plain.py [--scale 2]
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict
from dataclasses import replace

import jiwer
import pyarrow as pa
import pyarrow.compute as pc

from bench.common import CACHE, CORES, demo_references, emit
from pipeline.asr.offline_models import resolve_whisper_model
from pipeline.asr.shared import AsrModelConfig, loaded_backend
from pipeline.audio.cut import segment_samples
from pipeline.audio.decode import SAMPLE_RATE
from pipeline.config import CurateConfig
from pipeline.demo_corpus import build_demo_corpus
from pipeline.run.curate import ThreadExecutor, curate
from pipeline.stage import ShardContext
from pipeline.text.normalise import normalise_text


def utterances(scale: int):
    """The references, and the transcribed (not gated, not silent) pass-2 utterances with their
    audio, of a curated demo corpus."""
    catalog = build_demo_corpus(CACHE / f"demo-x{scale}", scale=scale)
    workdir = CACHE / f"asr-x{scale}"
    result = curate(catalog, workdir, CurateConfig(), ThreadExecutor(CORES))
    shard_ids = [s for plan in result.plans for s in plan.shard_ids]
    rows, audio = [], []
    for shard_id in shard_ids:
        context = ShardContext(shard_id, workdir)
        table = context.read("pass2")
        table = table.filter(pc.fill_null(pc.greater(pc.utf8_length(table["text"]), 0), False))
        rows.append(table.select(["recording_id", "offset", "lang"]))
        audio += segment_samples(context, table)
    references = demo_references(catalog, workdir)
    return references, pa.concat_tables(rows).to_pylist(), audio


def wer_per_language(rows, texts, references) -> dict[str, float]:
    joined: dict[str, list[str]] = defaultdict(list)
    for row, text in sorted(zip(rows, texts), key=lambda p: (p[0]["recording_id"], p[0]["offset"])):
        joined[row["recording_id"]].append(text)
    pairs: dict[str, tuple[list[str], list[str]]] = defaultdict(lambda: ([], []))
    for recording_id, parts in joined.items():
        lang, reference = references[recording_id]
        pairs[lang][0].append(normalise_text(reference))
        pairs[lang][1].append(normalise_text(" ".join(parts)))
    return {lang: float(jiwer.wer(refs, hyps)) for lang, (refs, hyps) in sorted(pairs.items())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=int, default=2, help="demo corpus size multiplier")
    args = parser.parse_args()
    from faster_whisper import WhisperModel

    references, rows, audio = utterances(args.scale)
    audio_s = sum(len(a) for a in audio) / SAMPLE_RATE
    config = AsrModelConfig(cpu_threads=CORES)
    languages = [r["lang"] for r in rows]

    plain_model = WhisperModel(
        resolve_whisper_model(config.model), compute_type=config.compute_type, cpu_threads=CORES
    )
    started = time.perf_counter()
    plain = [
        " ".join(s.text.strip() for s in plain_model.transcribe(a, language=lang, beam_size=5)[0])
        for a, lang in zip(audio, languages)
    ]
    plain_s = time.perf_counter() - started
    del plain_model

    backend = loaded_backend(config)
    started = time.perf_counter()
    ours = [h.text for h in backend.transcribe(audio, languages)]
    ours_s = time.perf_counter() - started

    padded = loaded_backend(replace(config, window_margin_s=30.0))
    started = time.perf_counter()
    padded.transcribe(audio, languages)
    padded_s = time.perf_counter() - started

    emit(
        "asr_vs_plain",
        utterances=len(audio),
        audio_s=audio_s,
        vaglio_rtfx=audio_s / ours_s,
        plain_rtfx=audio_s / plain_s,
        ratio=plain_s / ours_s,
        vaglio_full_window_rtfx=audio_s / padded_s,
        full_window_ratio=plain_s / padded_s,
        vaglio_wer=wer_per_language(rows, ours, references),
        plain_wer=wer_per_language(rows, plain, references),
        model=config.model,
        threads=CORES,
        batch_size=config.batch_size,
        beam_size=config.beam_size,
    )


if __name__ == "__main__":
    main()
