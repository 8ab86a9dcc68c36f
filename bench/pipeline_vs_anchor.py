"""vaglio's whole two-pass pipeline against the one pass a user would run instead: faster-whisper's
`BatchedInferencePipeline` (batch 8, beam 5, its own Silero VAD), and plain `transcribe` with
`vad_filter=True`; same model (offline Whisper base, int8), threads and audio.

The audio is what the pipeline transcribes of the demo corpus: every recording it did not
quarantine or find to be a duplicate (windows of the NeMo manifest included). Each side runs in
a fresh process of its own, timed from before its model loads to its last transcript, audio
decoding included; CPU seconds (all threads) are printed beside wall seconds because on a
shared machine they move less. WER is per language against what was said (kept segments for
vaglio), on recordings whose language their source declares (the pipeline drops the others
by design). Speech coverage is printed when the run summary has it.

    python bench/pipeline_vs_anchor.py [--scale 1]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import jiwer

from bench.common import CACHE, CORES, demo_references, emit
from manifests.views import connect
from pipeline.asr.offline_models import resolve_whisper_model
from pipeline.audio.decode import SAMPLE_RATE
from pipeline.demo_corpus import build_demo_corpus
from pipeline.text.normalise import normalise_text

SIDES = ("vaglio", "anchor", "plain")
BATCH_SIZE = 8
BEAM_SIZE = 5


def usable_recordings(workdir: Path) -> list[tuple[str, str, float | None, float | None]]:
    """(recording_id, path, offset, window) of every recording the pipeline transcribed."""
    with connect(workdir) as con:
        return con.execute(
            'SELECT recording_id, path, "offset", CASE WHEN "offset" IS NULL THEN NULL '
            "ELSE declared_duration END FROM recordings "
            "WHERE quarantine_reason IS NULL AND duplicate_of IS NULL ORDER BY recording_id"
        ).fetchall()


def run_vaglio(catalog: Path, workdir: Path) -> dict[str, str]:
    """`vaglio curate` in this process (threads engine, default config); kept text per recording."""
    from pipeline.config import CurateConfig
    from pipeline.run.curate import ThreadExecutor, curate

    config = CurateConfig()
    curate(catalog, workdir, config, ThreadExecutor(config.workers))
    with connect(workdir) as con:
        rows = con.execute(
            "SELECT recording_id, string_agg(text, ' ' ORDER BY \"offset\") FROM segments "
            "WHERE drop_reason IS NULL GROUP BY recording_id"
        ).fetchall()
    return dict(rows)


def run_faster_whisper(workdir: Path, batched: bool) -> dict[str, str]:
    """One pass of faster-whisper over each recording, decoding the file itself as a user would."""
    from faster_whisper import BatchedInferencePipeline, WhisperModel, decode_audio

    model = WhisperModel(
        resolve_whisper_model("whisper-base"), compute_type="int8", cpu_threads=CORES
    )
    pipeline = BatchedInferencePipeline(model) if batched else None
    texts = {}
    for recording_id, path, offset, window in usable_recordings(workdir):
        audio = decode_audio(path)
        if offset is not None:
            start = round(offset * SAMPLE_RATE)
            audio = audio[start : start + round(window * SAMPLE_RATE)]
        if pipeline is not None:
            segments, _ = pipeline.transcribe(audio, batch_size=BATCH_SIZE, beam_size=BEAM_SIZE)
        else:
            segments, _ = model.transcribe(audio, beam_size=BEAM_SIZE, vad_filter=True)
        texts[recording_id] = " ".join(s.text.strip() for s in segments)
    return texts


def run_side(side: str, catalog: Path, workdir: Path, output: Path) -> None:
    """Run one side and write its texts, wall and CPU seconds to `output` (JSON)."""
    wall, cpu = time.perf_counter(), time.process_time()
    if side == "vaglio":
        texts = run_vaglio(catalog, workdir)
    else:
        texts = run_faster_whisper(workdir, batched=side == "anchor")
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    output.write_text(json.dumps({"texts": texts, "wall_s": wall, "cpu_s": cpu}))


def in_fresh_process(side: str, scale: int, catalog: Path, workdir: Path) -> dict:
    """One side's result in a child process, with that process's peak resident memory."""
    output = CACHE / f"anchor-x{scale}-{side}.json"
    command = [sys.executable, "-m", "bench.pipeline_vs_anchor", "--side", side]
    command += ["--scale", str(scale), "--catalog", str(catalog), "--workdir", str(workdir)]
    process = subprocess.Popen(command, cwd=Path(__file__).resolve().parent.parent)
    _, status, usage = os.wait4(process.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(command)} failed")
    return json.loads(output.read_text()) | {"peak_rss_mib": usage.ru_maxrss / 1024}


def wer_per_language(texts: dict[str, str], workdir: Path, catalog: Path) -> dict[str, float]:
    references = demo_references(catalog, workdir)
    with connect(workdir) as con:
        declared = dict(
            con.execute("SELECT recording_id, declared_languages FROM recordings").fetchall()
        )
    pairs: dict[str, tuple[list[str], list[str]]] = defaultdict(lambda: ([], []))
    for recording_id, _, _, _ in usable_recordings(workdir):
        if recording_id not in references:
            continue
        lang, reference = references[recording_id]
        if lang in (declared[recording_id] or [lang]):
            pairs[lang][0].append(normalise_text(reference))
            pairs[lang][1].append(normalise_text(texts.get(recording_id) or ""))
    return {lang: round(jiwer.wer(refs, hyps), 3) for lang, (refs, hyps) in sorted(pairs.items())}


def coverage(workdir: Path) -> dict:
    """Speech coverage per source and overall, where the run summary has it: each source's
    (VAD speech hours, hours inside rows, their ratio)."""
    from pipeline.run.summary import summarize

    figures = getattr(summarize(workdir), "speech_coverage", None)
    if figures is None:
        return {}
    return {"speech_coverage": {source: ratio for source, (*_, ratio) in figures.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=int, default=1, help="demo corpus size multiplier")
    parser.add_argument("--side", choices=SIDES, help=argparse.SUPPRESS)
    parser.add_argument("--catalog", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:
        output = CACHE / f"anchor-x{args.scale}-{args.side}.json"
        run_side(args.side, args.catalog, args.workdir, output)
        return
    catalog = build_demo_corpus(CACHE / f"demo-x{args.scale}", scale=args.scale)
    workdir = CACHE / f"anchor-x{args.scale}-workdir"
    shutil.rmtree(workdir, ignore_errors=True)
    results = {side: in_fresh_process(side, args.scale, catalog, workdir) for side in SIDES}
    with connect(workdir) as con:
        (audio_s,) = con.execute(
            "SELECT sum(duration) FROM recordings "
            "WHERE quarantine_reason IS NULL AND duplicate_of IS NULL"
        ).fetchone()
    ours, anchor, plain = (results[side] for side in SIDES)
    emit(
        "pipeline_vs_anchor",
        scale=args.scale,
        audio_s=audio_s,
        recordings=len(usable_recordings(workdir)),
        vaglio_rtfx=audio_s / ours["wall_s"],
        anchor_rtfx=audio_s / anchor["wall_s"],
        plain_rtfx=audio_s / plain["wall_s"],
        ratio=anchor["wall_s"] / ours["wall_s"],
        plain_ratio=plain["wall_s"] / ours["wall_s"],
        cpu_ratio=anchor["cpu_s"] / ours["cpu_s"],
        vaglio_cpu_s=ours["cpu_s"],
        anchor_cpu_s=anchor["cpu_s"],
        plain_cpu_s=plain["cpu_s"],
        vaglio_wer=wer_per_language(ours["texts"], workdir, catalog),
        anchor_wer=wer_per_language(anchor["texts"], workdir, catalog),
        plain_wer=wer_per_language(plain["texts"], workdir, catalog),
        vaglio_peak_rss_mib=ours["peak_rss_mib"],
        anchor_peak_rss_mib=anchor["peak_rss_mib"],
        **coverage(workdir),
        model="whisper-base int8",
        threads=CORES,
    )


if __name__ == "__main__":
    main()
