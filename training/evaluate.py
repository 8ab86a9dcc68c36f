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


def _decoders(model, beam: int, exit_layer: int | None, heads: bool) -> dict:
    """name → (decode a batch into texts, ASR only?): the configured decoder always; with
    `heads`, each head apart (so a broken decoder cannot hide behind a learning encoder);
    with `exit_layer`, the early exit beside the top CTC head it is compared with."""
    chosen = {"full": (lambda batch: model.decode(batch, beam=beam), False)}
    if heads and beam > 1:
        chosen["decoder_greedy"] = (lambda batch: model.decode(batch, beam=1), False)
    if heads or exit_layer is not None:
        chosen["top_ctc"] = (lambda batch: model.decode_ctc(batch, "top"), False)
        chosen["early_exit"] = (model.decode_early_exit, True)
    return chosen


def evaluate_model(
    model,
    config: TrainConfig,
    workdir: Path,
    split: str = "test",
    beam: int | None = None,
    exit_layer: int | None = None,
    limit: int | None = None,
    heads: bool = False,
) -> dict:
    """Decode one split of the workdir's shards and score it, each decoder timed apart.

    `full` is the decoder at `beam`. With `exit_layer` (or `heads`), also `top_ctc` (CTC
    greedy on the whole encoder) and `early_exit` (CTC greedy on the intermediate head at
    layer `inter_ctc_layer`, without running the layers above it): the same decoding at the
    exit and at the top, so their speeds compare. With `heads`, also the greedy decoder."""
    if exit_layer is not None and exit_layer != config.model.inter_ctc_layer:
        raise ValueError(
            f"--exit-layer {exit_layer}: this model's CTC exit is at layer "
            f"{config.model.inter_ctc_layer}"
        )
    beam = beam or config.decoding.beam
    keep = RowFilter(split, config.data.split, config.data.policy, config.data.max_duration)
    tasks = ("asr", "st") if config.stage2.max_steps else ("asr",)
    decoders = _decoders(model, beam, exit_layer, heads)
    model.eval()
    pairs: dict[str, list[tuple[Example, object]]] = {name: [] for name in decoders}
    seconds = dict.fromkeys(decoders, 0.0)
    audio = 0.0
    batches = eval_batches(shard_paths(workdir), keep, model.tokenizer, tasks, batch_size=8)
    with torch.inference_mode():
        for number, batch in enumerate(batches):
            if limit is not None and number >= limit:
                break
            batch = batch.to(model.device)
            audio += batch.seconds
            for name, (decode, asr_only) in decoders.items():
                started = time.perf_counter()
                texts = decode(batch)
                seconds[name] += time.perf_counter() - started
                pairs[name].extend(
                    (e, t) for e, t in zip(batch.examples, texts) if e.task == "asr" or not asr_only
                )
    result = {"split": split, "beam": beam, "audio_seconds": audio}
    for name in decoders:
        result[name] = {
            **metrics_of(pairs[name]),
            "rtfx": audio / seconds[name] if seconds[name] else None,
        }
    if "early_exit" in result:
        result["early_exit"]["layer"] = config.model.inter_ctc_layer
    return result


def overall_wer(metrics: dict) -> float | None:
    return metrics.get("wer", {}).get(OVERALL, {}).get("wer")


def write_metrics(result: dict | list, path: Path) -> Path:
    path.write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def evaluate_checkpoints(
    run: Path, config: TrainConfig, workdir: Path, split: str, **options
) -> list[dict]:
    """`evaluate_model` on every kept checkpoint of every stage, in training order: how the
    scores moved while it trained. Each result carries its `stage` and `step`."""
    from training.averaging import step_checkpoints
    from training.model import FamaModel
    from training.trainer import RunPaths, model_config

    paths = RunPaths(run)
    model = FamaModel(model_config(config, paths.tokenizer))
    results = []
    for stage in ("stage1", "stage2"):
        for checkpoint in step_checkpoints(paths.checkpoints(stage)):
            state = torch.load(checkpoint, map_location="cpu", mmap=True, weights_only=False)
            model.load_state_dict(state["state_dict"])
            result = evaluate_model(model, config, workdir, split, **options)
            results.append({"stage": stage, "step": int(state["global_step"]), **result})
    return results
