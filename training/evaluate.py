"""Scores of a trained model: WER per language (ASR) and BLEU + chrF per direction (ST).

WER uses exactly `vaglio eval`'s scoring (`pipeline.query.evaluation.score`, with its
normaliser), so a trained model's figure and a curation's figure mean the same thing.
BLEU and chrF are sacrebleu's corpus scores on the raw (cased, punctuated) text.
`evaluate_run(..., exit_layer=L)` also decodes from the intermediate CTC head without the
layers above it, and reports its WER and speed beside the full model's.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from pathlib import Path

import sacrebleu
import torch

from pipeline.query.evaluation import OVERALL, Pair, score
from training.config import TrainConfig
from training.data import Example, RowFilter, eval_batches, shard_paths


def metrics_of(pairs: list[tuple[Example, object]]) -> dict:
    """{'wer': per language, 'st': per direction, 'flat': name → number for loggers}."""
    asr: list[Pair] = []
    st: dict[str, tuple[list[str], list[str]]] = defaultdict(lambda: ([], []))
    for example, hypothesis in pairs:
        text = hypothesis if isinstance(hypothesis, str) else hypothesis.text
        if example.task == "asr":
            asr.append(Pair(example.source_lang, example.target, text))
        else:
            refs, hyps = st[f"{example.source_lang}-{example.target_lang}"]
            refs.append(example.target)
            hyps.append(text)
    wer = {s.lang: s.as_dict() for s in score(asr)} if asr else {}
    translation = {
        direction: {
            "segments": len(refs),
            "bleu": sacrebleu.corpus_bleu(hyps, [refs]).score,
            "chrf": sacrebleu.corpus_chrf(hyps, [refs]).score,
        }
        for direction, (refs, hyps) in sorted(st.items())
    }
    flat = {f"wer_{lang}": s["wer"] for lang, s in wer.items() if s["wer"] is not None}
    for direction, s in translation.items():
        flat[f"bleu_{direction}"] = s["bleu"]
        flat[f"chrf_{direction}"] = s["chrf"]
    return {"wer": wer, "st": translation, "flat": flat}


def evaluate_model(
    model,
    config: TrainConfig,
    workdir: Path,
    split: str = "test",
    beam: int | None = None,
    exit_layer: int | None = None,
    limit: int | None = None,
) -> dict:
    """Decode one split of the workdir's shards and score it; with `exit_layer`, also the
    early exit (the intermediate CTC head, which sits on layer `model.inter_ctc_layer`)."""
    if exit_layer is not None and exit_layer != config.model.inter_ctc_layer:
        raise ValueError(
            f"--exit-layer {exit_layer}: this model's CTC exit is at layer "
            f"{config.model.inter_ctc_layer}"
        )
    beam = beam or config.decoding.beam
    keep = RowFilter(split, config.data.split, config.data.policy, config.data.max_duration)
    tasks = ("asr", "st") if config.stage2.max_steps else ("asr",)
    model.eval()
    full: list[tuple[Example, object]] = []
    early: list[tuple[Example, str]] = []
    seconds = {"audio": 0.0, "full": 0.0, "early_exit": 0.0}
    batches = eval_batches(shard_paths(workdir), keep, model.tokenizer, tasks, batch_size=8)
    with torch.inference_mode():
        for number, batch in enumerate(batches):
            if limit is not None and number >= limit:
                break
            batch = batch.to(model.device)
            seconds["audio"] += batch.seconds
            started = time.perf_counter()
            full.extend(zip(batch.examples, model.decode(batch, beam=beam)))
            seconds["full"] += time.perf_counter() - started
            if exit_layer is not None:
                asr = [i for i, e in enumerate(batch.examples) if e.task == "asr"]
                started = time.perf_counter()
                texts = model.decode_early_exit(batch)
                seconds["early_exit"] += time.perf_counter() - started
                early.extend((batch.examples[i], texts[i]) for i in asr)
    result = {
        "split": split,
        "beam": beam,
        "audio_seconds": seconds["audio"],
        "full": {**metrics_of(full), "rtfx": _rtfx(seconds, "full")},
    }
    if exit_layer is not None:
        result["early_exit"] = {
            "layer": exit_layer,
            **metrics_of(early),
            "rtfx": _rtfx(seconds, "early_exit"),
        }
    return result


def _rtfx(seconds: dict, key: str) -> float | None:
    return seconds["audio"] / seconds[key] if seconds[key] else None


def overall_wer(metrics: dict) -> float | None:
    return metrics.get("wer", {}).get(OVERALL, {}).get("wer")


def write_metrics(result: dict, path: Path) -> Path:
    path.write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return path
