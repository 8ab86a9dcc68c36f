"""The tiny training preset on the demo corpus, on this machine's CPU cores: how fast it
trains (audio seconds per wall second), how far the loss falls in N updates, and the WER on
the training split before and after (a smoke figure: a model this small on 4 minutes of
speech memorises a little and transcribes nothing useful).

    python bench/train_tiny.py [--steps 60] [--workdir demo-workdir]
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

from bench.common import CACHE, CORES, emit
from pipeline.config import CurateConfig
from pipeline.demo_corpus import build_demo_corpus
from pipeline.run.curate import ThreadExecutor, curate


def _scalars(run, stage: str, tag: str) -> list[float]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(next((run / "tb" / stage).glob("version_*"))))
    accumulator.Reload()
    return [e.value for e in sorted(accumulator.Scalars(tag), key=lambda e: e.step)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--workdir", type=Path, help="an already curated demo workdir")
    args = parser.parse_args()

    from training.config import build_config
    from training.evaluate import evaluate_model, overall_wer
    from training.model import FamaModel
    from training.trainer import fit_stage, model_config, prepare_run

    workdir = args.workdir
    if workdir is None:
        workdir = CACHE / "train-workdir-x1"
        curate(build_demo_corpus(CACHE / "demo-x1"), workdir, CurateConfig(), ThreadExecutor(CORES))
    run = CACHE / "train-tiny-run"
    shutil.rmtree(run, ignore_errors=True)
    steps = args.steps
    config = build_config(
        {
            "preset": "tiny",
            "stage1": {"max_steps": steps},
            "checkpoint": {"every_steps": steps},
            "validation": {"every_steps": steps + 1},
        }
    )
    prepare_run(config, workdir, run)
    before = evaluate_model(
        FamaModel(model_config(config, run / "tokenizer" / "tokenizer.model")),
        config,
        workdir,
        split="train",
    )
    started = time.perf_counter()
    model, _ = fit_stage(config, workdir, run, "stage1", steps, p_asr=1.0)
    wall = time.perf_counter() - started
    after = evaluate_model(model, config, workdir, split="train")
    losses = _scalars(run, "stage1", "train_loss")
    audio = sum(_scalars(run, "stage1", "train_audio_seconds"))
    emit(
        "train_tiny",
        steps=steps,
        audio_s=audio,
        wall_s=wall,
        audio_s_per_wall_s=audio / wall,
        loss_step0=losses[0],
        loss_last=losses[-1],
        loss_ratio=losses[-1] / losses[0],
        wer_train_before=overall_wer(before["full"]),
        wer_train_after=overall_wer(after["full"]),
    )


if __name__ == "__main__":
    main()
