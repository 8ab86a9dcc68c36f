"""The training job: prepare a run folder, train stage 1 (ASR), stage 2 (ASR+ST), export.

Layout of a run folder RUN:

    config.yaml            the resolved config (a second run in RUN must use the same)
    data.json              hours per split/language/licence of the rows training may use
    tokenizer/             the SentencePiece model (built once, reused)
    stage1/checkpoints/    stepNNNNNNN.ckpt (the last `keep_last`) and last.ckpt
    stage2/checkpoints/    the same, for ASR+ST
    tb/                    TensorBoard logs
    model.nemo, MODEL_CARD.md, metrics.json   the averaged, exported model
    curves.png             train loss, dev loss, dev WER and BLEU by step (redrawn per stage)

Resume: a stage with checkpoints continues from the newest, on the same or other devices (step
count, optimizer and scheduler state); a finished stage (`done.json`) is skipped; stage 2
starts from the average of the last `average_last` stage-1 checkpoints (FAMA: 25) and the
exported model is the same average over the last stage. The data stream is not positioned
where it stopped: a resumed stage reseeds its shuffle with the step it resumes at, so it does
not replay its first batches.

Processes: with more than one device or node, `launch` starts this module under `torchrun`
as a subprocess (never Lightning's in-process re-launch, which would re-run whatever called
it, e.g. a Prefect flow); every rank then runs `train`, which only reuses what
`prepare_run` built beforehand, in the parent.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from pipeline.strict_yaml import read_yaml
from training.config import ConfigError, TrainConfig, build_config, write_config
from training.curves import draw_curves
from training.data import RowFilter, corpus_summary, shard_paths, texts_for_tokenizer
from training.tokenizer import Tokenizer, build_or_reuse

console = Console(stderr=True)
HARDWARE = ("trainer",)
"""Config sections a resumed run may change: it may continue on other devices or nodes."""


@dataclass(frozen=True)
class RunPaths:
    root: Path

    @property
    def config(self) -> Path:
        return self.root / "config.yaml"

    @property
    def data(self) -> Path:
        return self.root / "data.json"

    @property
    def tokenizer(self) -> Path:
        return self.root / "tokenizer" / "tokenizer.model"

    def checkpoints(self, stage: str) -> Path:
        return self.root / stage / "checkpoints"

    def done(self, stage: str) -> Path:
        return self.root / stage / "done.json"

    @property
    def model(self) -> Path:
        return self.root / "model.nemo"


def _world_size(config: TrainConfig) -> int:
    return config.trainer.devices * config.trainer.num_nodes


def prepare_run(config: TrainConfig, workdir: Path, run: Path) -> Tokenizer:
    """Write the config and data summary, and build (or reuse) the tokenizer. Refuses a run
    folder that holds another config: resuming must not silently change the recipe."""
    paths = RunPaths(run)
    run.mkdir(parents=True, exist_ok=True)
    if paths.config.exists():
        previous = read_yaml(paths.config)
        current = config.as_dict()
        changed = sorted(k for k in current if k not in HARDWARE and previous.get(k) != current[k])
        if changed:
            raise ConfigError(
                f"{paths.config}: this run was started with other settings "
                f"({', '.join(changed)}); use a new --out folder"
            )
    write_config(config, paths.config)
    shards = shard_paths(workdir)
    summary = corpus_summary(shards, config.data.split, config.data.policy)
    summary["workdir"] = str(Path(workdir).resolve())  # `vaglio train eval`'s default
    paths.data.write_text(json.dumps(summary, indent=1, ensure_ascii=False) + "\n")
    if not summary["hours_per_split"].get("train"):
        raise ConfigError(
            f"{workdir}: no training rows (split {config.data.split}, licences "
            f"refused: {summary['rows_refused_by_policy']})"
        )
    keep = RowFilter("train", config.data.split, config.data.policy, config.data.max_duration)
    return build_or_reuse(
        lambda: texts_for_tokenizer(shards, keep), config.tokenizer.vocab_size, paths.tokenizer
    )


def model_config(config: TrainConfig, tokenizer: Path):
    from omegaconf import OmegaConf

    settings = config.as_dict()
    settings["architecture"] = settings.pop("model")  # NeMo forbids a `model` key
    settings["tokenizer"] = {**settings["tokenizer"], "model_path": str(tokenizer)}
    settings["target"] = "training.model.FamaModel"
    return OmegaConf.create(settings)


def _record_start(run: Path, stage: str):
    """A callback that appends {step, world_size} to RUN/<stage>/starts.jsonl when training
    (re)starts: the run's own account of where each attempt began and on how many processes."""
    from lightning.pytorch.callbacks import Callback

    class RecordStart(Callback):
        def on_train_start(self, trainer, pl_module) -> None:
            if trainer.is_global_zero:
                line = {"step": trainer.global_step, "world_size": trainer.world_size}
                with (run / stage / "starts.jsonl").open("a", encoding="utf-8") as out:
                    out.write(json.dumps(line) + "\n")

    return RecordStart()


def _trainer(config: TrainConfig, run: Path, stage: str, max_steps: int):
    from lightning.pytorch import Trainer
    from lightning.pytorch.callbacks import ModelCheckpoint
    from lightning.pytorch.loggers import TensorBoardLogger
    from lightning.pytorch.strategies import DDPStrategy

    t = config.trainer
    distributed = _world_size(config) > 1
    accelerator = t.accelerator
    strategy = "auto"
    if distributed:
        on_cpu = accelerator == "cpu"
        strategy = DDPStrategy(
            process_group_backend="gloo" if on_cpu else "nccl", gradient_as_bucket_view=True
        )
    checkpoints = ModelCheckpoint(
        dirpath=RunPaths(run).checkpoints(stage),
        filename="step{step:07d}",
        auto_insert_metric_name=False,
        every_n_train_steps=config.checkpoint.every_steps,
        save_top_k=config.checkpoint.keep_last,
        monitor="step",
        mode="max",
        save_last=True,
        enable_version_counter=False,  # a resumed stage overwrites what the killed one left
    )
    return Trainer(
        accelerator=accelerator,
        devices=t.devices,
        num_nodes=t.num_nodes,
        strategy=strategy,
        precision=t.precision,
        max_steps=max_steps,
        gradient_clip_val=config.optim.clip,
        val_check_interval=config.validation.every_steps,
        check_val_every_n_epoch=None,
        limit_val_batches=config.validation.batches,
        num_sanity_val_steps=0,
        callbacks=[checkpoints, _record_start(run, stage)],
        logger=TensorBoardLogger(run / "tb", name=stage),
        use_distributed_sampler=False,
        enable_model_summary=False,
        log_every_n_steps=1,
        default_root_dir=run,
    )


def latest_checkpoint(folder: Path) -> tuple[Path | None, int]:
    """The stage's newest readable checkpoint and its step: `last.ckpt` or the highest
    `stepNNNNNNN.ckpt`, whichever is further on (a kill may land between the two writes);
    one that cannot be read (killed while written) is passed over for the next."""
    import torch

    from training.averaging import step_checkpoints

    candidates = [*step_checkpoints(folder), folder / "last.ckpt"]
    found: list[tuple[int, Path]] = []
    for path in candidates:
        if not path.exists():
            continue
        try:
            state = torch.load(path, map_location="cpu", weights_only=False, mmap=True)
        except Exception:  # a torn file: torch raises several kinds
            console.print(f"skipping an unreadable checkpoint: {path}")
            continue
        found.append((int(state["global_step"]), path))
    if not found:
        return None, 0
    step, path = max(found)
    return path, step


def fit_stage(
    config: TrainConfig,
    workdir: Path,
    run: Path,
    stage: str,
    max_steps: int,
    p_asr: float,
    init: dict | None = None,
):
    """Train one stage to `max_steps` updates (resuming from its newest checkpoint) and
    return the model with its final weights."""
    import torch
    from lightning.pytorch import seed_everything

    from training.data import EvalSet, TrainStream
    from training.model import FamaModel

    paths = RunPaths(run)
    tokenizer = Tokenizer(paths.tokenizer)
    model = FamaModel(model_config(config, paths.tokenizer))
    paths.checkpoints(stage).mkdir(parents=True, exist_ok=True)
    last, start = latest_checkpoint(paths.checkpoints(stage))
    if start:
        console.print(f"{stage}: resuming at step {start} from {last}")
    elif init is not None:
        model.load_state_dict(init)
    seed_everything(config.trainer.seed + start, workers=True)
    shards = shard_paths(workdir)
    d = config.data
    train = TrainStream(
        shards,
        RowFilter("train", d.split, d.policy, d.max_duration),
        tokenizer,
        d,
        p_asr=p_asr,
        seed=config.trainer.seed + start,
        max_tokens=config.decoding.max_tokens,
    )
    loader = torch.utils.data.DataLoader(train, batch_size=None, num_workers=d.num_workers)
    summary = json.loads(paths.data.read_text())
    validation = None
    if summary["hours_per_split"].get("dev"):
        tasks = ("asr", "st") if p_asr < 1.0 else ("asr",)
        dev = EvalSet(
            shards,
            RowFilter("dev", d.split, d.policy, d.max_duration),
            tokenizer,
            tasks,
            batch_size=d.max_batch_size,
            max_tokens=config.decoding.max_tokens,
        )
        validation = torch.utils.data.DataLoader(dev, batch_size=None)
    trainer = _trainer(config, run, stage, max_steps)
    trainer.fit(model, loader, validation, ckpt_path=str(last) if start else None)
    trainer.strategy.barrier()
    if trainer.is_global_zero:
        paths.done(stage).write_text(json.dumps({"steps": trainer.global_step}) + "\n")
        draw_curves(run)
    trainer.strategy.barrier()
    return model, trainer


def train(config: TrainConfig, workdir: Path, run: Path) -> Path | None:
    """Both stages and the export, in this process (one rank of many, or the only one).
    Returns the exported model on the process that wrote it."""
    from training.averaging import average_last
    from training.export import export_run

    paths = RunPaths(run)
    stages = [("stage1", config.stage1.max_steps, 1.0)]
    if config.stage2.max_steps:
        stages.append(("stage2", config.stage2.max_steps, config.stage2.p_asr))
    model = None
    for index, (stage, steps, p_asr) in enumerate(stages):
        if paths.done(stage).exists():
            continue
        init = None
        if index:
            init, used = average_last(
                paths.checkpoints(stages[index - 1][0]), config.checkpoint.average_last
            )
            console.print(f"{stage}: starting from the average of {len(used)} checkpoints")
        model, _ = fit_stage(config, workdir, run, stage, steps, p_asr, init)
    if int(os.environ.get("RANK", "0")):  # under torchrun, rank 0 exports
        return None
    final_stage = stages[-1][0]
    averaged, used = average_last(paths.checkpoints(final_stage), config.checkpoint.average_last)
    if model is None:
        from training.model import FamaModel

        model = FamaModel(model_config(config, paths.tokenizer))
    model.load_state_dict(averaged)
    console.print(f"export: the average of {len(used)} {final_stage} checkpoints")
    return export_run(model, config, workdir, run)


def torchrun_command(
    config: TrainConfig,
    workdir: Path,
    run: Path,
    node_rank: int = 0,
    master_addr: str = "127.0.0.1",
    master_port: int = 29500,
) -> list[str]:
    """The command every node runs: one process per device, all of them running `train`."""
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or "torchrun"
    return [
        torchrun,
        f"--nnodes={config.trainer.num_nodes}",
        f"--nproc-per-node={config.trainer.devices}",
        f"--node-rank={node_rank}",
        f"--master-addr={master_addr}",
        f"--master-port={master_port}",
        "-m",
        "training.trainer",
        str(run),
        "--workdir",
        str(workdir),
    ]


def launch(
    config: TrainConfig,
    workdir: Path,
    run: Path,
    node_rank: int = 0,
    master_addr: str = "127.0.0.1",
    master_port: int = 29500,
) -> Path:
    """Prepare the run here, then train: in this process for one device, else under torchrun."""
    prepare_run(config, workdir, run)
    if _world_size(config) == 1:
        train(config, workdir, run)
    else:
        command = torchrun_command(config, workdir, run, node_rank, master_addr, master_port)
        console.print("launching: " + " ".join(command))
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(
                [str(Path(__file__).resolve().parents[1]), os.environ.get("PYTHONPATH", "")]
            ),
        }
        completed = subprocess.run(command, env=env, check=False)
        if completed.returncode:
            raise RuntimeError(f"torchrun exited with status {completed.returncode}")
    return RunPaths(run).model


def main(argv: list[str] | None = None) -> None:
    """The per-rank entry point torchrun starts: `python -m training.trainer RUN --workdir W`."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("run", type=Path)
    parser.add_argument("--workdir", type=Path, required=True)
    args = parser.parse_args(argv)
    settings = read_yaml(args.run / "config.yaml")
    train(build_config(settings, str(args.run / "config.yaml")), args.workdir, args.run)


if __name__ == "__main__":
    main()
