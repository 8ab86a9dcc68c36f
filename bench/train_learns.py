"""Does training learn? The tiny preset memorises a small curated set on this machine's CPU.

The set is the demo corpus curated with its LLM translations (English and Italian espeak-ng
speech, a few minutes). Stage 1 (ASR) and stage 2 (ASR + ST from the stage-1 average) train
on its training split, and the same split is scored before training, after stage 1 and after
stage 2, each head apart so that a broken decoder cannot hide behind a learning encoder:
the decoder (greedy and beam), the top CTC head and the early exit (interCTC). Stage 2 adds
BLEU and chrF per direction, and the beam's train WER under each of LENGTH_PENALTIES (the
preset's is one of them). It prints the loss curve, writes RUN/curves.png, and one JSON line
with every figure.

    python bench/train_learns.py [--workdir W] [--stage1-steps N] [--stage2-steps M]

Memorising its own training split says the model, losses and decoding work; it says nothing
about a model that generalises (that takes hours of speech and a GPU).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

if not __package__:  # run as `python bench/train_learns.py`: the repository is the root
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import CACHE, CORES, emit
from pipeline.config import load_config
from pipeline.demo_corpus import build_demo_corpus
from pipeline.run.curate import ThreadExecutor, curate

BEAM = 4
LENGTH_PENALTIES = (0.0, 0.3, 0.6, 1.0)


def curated_demo(folder: Path) -> Path:
    """The demo corpus curated with PnC and translation by the local CPU LLM (cached)."""
    if (folder / "dataset" / "data").is_dir():
        return folder
    from pipeline.llm.demo_config import local_llm_config

    catalog = build_demo_corpus(folder / "corpus")
    with local_llm_config(folder) as config_path:
        curate(catalog, folder, load_config(config_path), ThreadExecutor(CORES))
    return folder


def heads_wer(result: dict) -> dict:
    """Overall WER of each decoder in an `evaluate_model` result."""
    from training.evaluate import overall_wer

    return {
        name: overall_wer(part)
        for name, part in result.items()
        if isinstance(part, dict) and "wer" in part
    }


def translation(result: dict) -> dict:
    """BLEU and chrF per direction of the decoder (beam or greedy as scored)."""
    return {
        direction: {"bleu": s["bleu"], "chrf": s["chrf"]}
        for direction, s in result["full"]["st"].items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, help="a curated workdir with translations")
    parser.add_argument("--stage1-steps", type=int, default=2000, help="ASR updates")
    parser.add_argument("--stage2-steps", type=int, default=400, help="ASR + ST updates")
    parser.add_argument("--run", type=Path, default=CACHE / "train-learns-run")
    args = parser.parse_args()

    from omegaconf import open_dict

    from training.config import build_config
    from training.curves import draw_curves, read_scalars
    from training.evaluate import evaluate_model, overall_wer
    from training.model import FamaModel
    from training.trainer import fit_stage, model_config, prepare_run

    workdir = args.workdir or curated_demo(CACHE / "train-learns-workdir")
    settings = {
        "preset": "tiny",
        # a dev split for the curves (the demo corpus is small: a quarter of its recordings)
        "data": {"split": {"train": 0.75, "dev": 0.25, "test": 0.0}},
        "stage1": {"max_steps": args.stage1_steps},
        "stage2": {"max_steps": args.stage2_steps, "p_asr": 0.5},
        "checkpoint": {"every_steps": 100, "keep_last": 4, "average_last": 4},
        "validation": {"every_steps": 100, "batches": 4},
    }
    config = build_config(settings)
    steps1, steps2 = config.stage1.max_steps, config.stage2.max_steps
    shutil.rmtree(args.run, ignore_errors=True)
    prepare_run(config, workdir, args.run)

    def score(model, beam: int) -> dict:
        return evaluate_model(model, config, workdir, "train", beam=beam, heads=True)

    untrained = FamaModel(model_config(config, args.run / "tokenizer" / "tokenizer.model"))
    before = score(untrained, beam=1)  # an untrained decoder rambles to max_tokens: greedy
    started = time.perf_counter()
    model, _ = fit_stage(config, workdir, args.run, "stage1", steps1, p_asr=1.0)
    wall1 = time.perf_counter() - started
    after1 = score(model, BEAM)
    started = time.perf_counter()
    model, _ = fit_stage(
        config,
        workdir,
        args.run,
        "stage2",
        steps2,
        config.stage2.p_asr,
        init_from=args.run / "stage1" / "checkpoints",
    )
    wall2 = time.perf_counter() - started
    after2 = score(model, BEAM)
    by_penalty = {}
    for penalty in LENGTH_PENALTIES:
        with open_dict(model.cfg):
            model.cfg.decoding.length_penalty = penalty
        scored = evaluate_model(model, config, workdir, "train", beam=BEAM)
        by_penalty[penalty] = round(overall_wer(scored["full"]), 3)
    draw_curves(args.run)

    scalars = read_scalars(args.run)
    losses = [v for stage in ("stage1", "stage2") for _, v in scalars[stage]["train_loss"]]
    audio = sum(v for stage in scalars.values() for _, v in stage["train_audio_seconds"])
    every = max(1, len(losses) // 20)
    print("train loss by update:", " ".join(f"{v:.1f}" for v in losses[::every]))
    print(f"curves: {args.run / 'curves.png'}")
    emit(
        "train_learns",
        preset="tiny",
        stage1_steps=steps1,
        stage2_steps=steps2,
        train_audio_s=audio,
        wall_s={"stage1": wall1, "stage2": wall2},
        audio_s_per_wall_s=audio / (wall1 + wall2),
        loss_first=losses[0],
        loss_last_stage1=scalars["stage1"]["train_loss"][-1][1],
        loss_last=losses[-1],
        wer_train_before=heads_wer(before),
        wer_train_after_stage1=heads_wer(after1),
        wer_train_after_stage2=heads_wer(after2),
        st_train_before=translation(before),
        st_train_after_stage2=translation(after2),
        beam=BEAM,
        length_penalty=config.decoding.length_penalty,
        wer_train_after_stage2_by_length_penalty=by_penalty,
    )


if __name__ == "__main__":
    main()
