"""The training job: prepare a run folder, train stage 1 (ASR), stage 2 (ASR+ST), export.

Layout of a run folder RUN:

    config.yaml            the resolved config (a second run in RUN must use the same)
    data.json              hours per split/language/licence of the rows training may use
    units.json             each split's row groups and their rows: what the readers share
    tokenizer/             the SentencePiece model (built once, reused)
    prepared.json          written last by `prepare_run`: the run is ready for every node
    stage1/checkpoints/    stepNNNNNNN.ckpt (the last `keep_last`, the final step always
                           among them) and last.ckpt
    stage2/checkpoints/    the same, for ASR+ST
    tb/                    TensorBoard logs
    model.nemo, MODEL_CARD.md, metrics.json   the averaged, exported model
    curves.png             train loss, dev loss, dev WER and BLEU by step (redrawn per stage)

Resume: a stage with checkpoints continues from the newest, on the same or other devices (step
count, optimizer and scheduler state, and the data stream's position: on as many readers the
same rows follow as if it had never stopped); a finished stage (`done.json`) is skipped;
stage 2 starts from the average of the last `average_last` stage-1 checkpoints (FAMA: 25) and
the exported model is the same average over the last stage. Only global rank 0 averages (the
checkpoints are memory-mapped, so only their weights are read); DDP hands its weights to the
other ranks when it wraps the model.

Processes: with more than one device or node, `launch` starts this module under `torchrun`
as a subprocess (never Lightning's in-process re-launch, which would re-run whatever called
it, e.g. a Prefect flow); every rank then runs `train`, which only reuses what
`prepare_run` built beforehand, in the parent, on node 0 alone: every file is written under a
temporary name and renamed, and `prepared.json` comes last; the other nodes wait for it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console

from pipeline.run.runner import atomic_write_text
from pipeline.strict_yaml import read_yaml
from training.config import ConfigError, TrainConfig, build_config, write_config
from training.curves import draw_curves
from training.data import (
    RowFilter,
    corpus_summary,
    shard_paths,
    split_counts,
    texts_for_tokenizer,
)
from training.distributed import global_rank
from training.tokenizer import Tokenizer, build_or_reuse

if TYPE_CHECKING:
    from lightning.pytorch.callbacks import Callback

console = Console(stderr=True)
HARDWARE = ("trainer",)
"""Config sections a resumed run may change: it may continue on other devices or nodes."""


class RunNotPrepared(ValueError):
    """Node 0 did not prepare the run folder in time; the message names the folder."""


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
    def units(self) -> Path:
        return self.root / "units.json"

    @property
    def tokenizer(self) -> Path:
        return self.root / "tokenizer" / "tokenizer.model"

    @property
    def prepared(self) -> Path:
        return self.root / "prepared.json"

    def checkpoints(self, stage: str) -> Path:
        return self.root / stage / "checkpoints"

    def done(self, stage: str) -> Path:
        return self.root / stage / "done.json"

    @property
    def model(self) -> Path:
        return self.root / "model.nemo"


def _world_size(config: TrainConfig) -> int:
    return config.trainer.devices * config.trainer.num_nodes


def _recipe_digest(config: TrainConfig) -> str:
    """What must be the same on every node: the config without its hardware sections."""
    recipe = {k: v for k, v in config.as_dict().items() if k not in HARDWARE}
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()


def _write_json(data: object, path: Path) -> None:
    atomic_write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", path)


def prepare_run(config: TrainConfig, workdir: Path, run: Path) -> Tokenizer:
    """Write the config, the data summary and the split plan, build (or reuse) the tokenizer,
    and mark the run prepared. Refuses a run folder that holds another config or was planned
    on other rows: resuming must not silently change the recipe or the data."""
    paths = RunPaths(run)
    run.mkdir(parents=True, exist_ok=True)
    paths.prepared.unlink(missing_ok=True)
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
    _write_json(summary, paths.data)
    if not summary["hours_per_split"].get("train"):
        raise ConfigError(
            f"{workdir}: no training rows (split {config.data.split}, licences "
            f"refused: {summary['rows_refused_by_policy']})"
        )
    keep = RowFilter("train", config.data.split, config.data.policy, config.data.max_duration)
    units = json.loads(json.dumps(split_counts(shards, keep)))  # as JSON reads it back
    if paths.units.exists() and json.loads(paths.units.read_text()) != units:
        raise ConfigError(
            f"{paths.units}: the rows this run trains on changed since it was prepared "
            "(shards or licence policy); use a new --out folder"
        )
    _write_json(units, paths.units)
    tokenizer = _tokenizer(config, lambda: texts_for_tokenizer(shards, keep), paths.tokenizer)
    marker = {"recipe": _recipe_digest(config), "host": socket.gethostname(), "pid": os.getpid()}
    _write_json(marker, paths.prepared)
    return tokenizer


def _tokenizer(config: TrainConfig, texts_and_langs, path: Path) -> Tokenizer:
    """The run's tokenizer, reused, or trained under a temporary name and then renamed, so
    that no reader ever loads half a model."""
    if path.exists():
        return build_or_reuse(texts_and_langs, config.tokenizer.vocab_size, path)
    temporary = path.with_name(f".{path.stem}.{os.getpid()}.model")
    build_or_reuse(texts_and_langs, config.tokenizer.vocab_size, temporary)
    temporary.with_suffix(".vocab").replace(path.with_suffix(".vocab"))
    temporary.replace(path)
    return Tokenizer(path)


def wait_for_preparation(config: TrainConfig, run: Path, poll: float = 2.0) -> None:
    """Wait (at most `trainer.prepare_timeout` seconds) until node 0 has prepared `run` for
    this config."""
    paths = RunPaths(run)
    deadline = time.monotonic() + config.trainer.prepare_timeout
    console.print(f"waiting for node 0 to prepare {run}")
    while True:
        if paths.prepared.exists():
            marker = json.loads(paths.prepared.read_text(encoding="utf-8"))
            if marker["recipe"] == _recipe_digest(config):
                return
        if time.monotonic() > deadline:
            raise RunNotPrepared(
                f"{run}: node 0 has not prepared this run for this config in "
                f"{config.trainer.prepare_timeout:g} s (no {paths.prepared.name}); start node 0 "
                "with the same config, or raise trainer.prepare_timeout"
            )
        time.sleep(poll)


def model_config(config: TrainConfig, tokenizer: Path):
    from omegaconf import OmegaConf

    settings = config.as_dict()
    settings["architecture"] = settings.pop("model")  # NeMo forbids a `model` key
    settings["tokenizer"] = {**settings["tokenizer"], "model_path": str(tokenizer)}
    settings["target"] = "training.model.FamaModel"
    return OmegaConf.create(settings)


def _trainer(config: TrainConfig, run: Path, stage: str, max_steps: int, stream: Callback):
    from lightning.pytorch import Trainer
    from lightning.pytorch.loggers import TensorBoardLogger
    from lightning.pytorch.strategies import DDPStrategy

    from training.callbacks import EveryAndLastCheckpoint, RecordStart

    t = config.trainer
    distributed = _world_size(config) > 1
    accelerator = t.accelerator
    strategy = "auto"
    if distributed:
        on_cpu = accelerator == "cpu"
        strategy = DDPStrategy(
            process_group_backend="gloo" if on_cpu else "nccl", gradient_as_bucket_view=True
        )
    checkpoints = EveryAndLastCheckpoint(
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
        accumulate_grad_batches=t.accumulate_grad_batches,
        gradient_clip_val=config.optim.clip,
        val_check_interval=config.validation.every_steps * t.accumulate_grad_batches,
        check_val_every_n_epoch=None,
        limit_val_batches=config.validation.batches,
        num_sanity_val_steps=0,
        callbacks=[checkpoints, RecordStart(run / stage / "starts.jsonl"), stream],
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


def train_stream(
    config: TrainConfig, workdir: Path, run: Path, p_asr: float, resume: dict | None = None
):
    """The training split of a prepared run as a stream of batches (from `resume`'s position)."""
    from training.data import TrainStream

    d = config.data
    return TrainStream(
        shard_paths(workdir),
        RowFilter("train", d.split, d.policy, d.max_duration),
        Tokenizer(RunPaths(run).tokenizer),
        d,
        p_asr=p_asr,
        seed=config.trainer.seed,
        max_tokens=config.decoding.max_tokens,
        counts=json.loads(RunPaths(run).units.read_text(encoding="utf-8"))["train"],
        resume=resume,
    )


def fit_stage(
    config: TrainConfig,
    workdir: Path,
    run: Path,
    stage: str,
    max_steps: int,
    p_asr: float,
    init_from: Path | None = None,
):
    """Train one stage to `max_steps` updates (resuming from its newest checkpoint, or else
    starting from the average of the last checkpoints in `init_from`) and return the model
    with its final weights."""
    import torch
    from lightning.pytorch import seed_everything

    from training.averaging import average_last
    from training.callbacks import StreamPosition
    from training.data import EvalSet
    from training.model import FamaModel

    paths = RunPaths(run)
    tokenizer = Tokenizer(paths.tokenizer)
    model = FamaModel(model_config(config, paths.tokenizer))
    paths.checkpoints(stage).mkdir(parents=True, exist_ok=True)
    last, start = latest_checkpoint(paths.checkpoints(stage))
    resume = None
    if start:
        console.print(f"{stage}: resuming at step {start} from {last}")
        resume = torch.load(last, map_location="cpu", weights_only=False, mmap=True).get("stream")
    elif init_from is not None and global_rank() == 0:
        # rank 0 alone reads and averages; DDP broadcasts rank 0's weights when it wraps
        # the model, so every rank starts from this average
        averaged, used = average_last(init_from, config.checkpoint.average_last)
        model.load_state_dict(averaged)
        console.print(f"{stage}: starting from the average of {len(used)} checkpoints")
    seed_everything(config.trainer.seed + start, workers=True)
    train = train_stream(config, workdir, run, p_asr, resume)
    d = config.data
    loader = torch.utils.data.DataLoader(train, batch_size=None, num_workers=d.num_workers)
    validation = None
    units = json.loads(paths.units.read_text(encoding="utf-8"))
    if units["dev"]:
        tasks = ("asr", "st") if p_asr < 1.0 else ("asr",)
        dev = EvalSet(
            shard_paths(workdir),
            RowFilter("dev", d.split, d.policy, d.max_duration),
            tokenizer,
            tasks,
            batch_size=d.max_batch_size,
            max_tokens=config.decoding.max_tokens,
            counts=units["dev"],
        )
        validation = torch.utils.data.DataLoader(dev, batch_size=None)
    trace = run / stage / "trace" if config.trainer.trace else None
    trainer = _trainer(config, run, stage, max_steps, StreamPosition(resume, trace))
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
        init_from = paths.checkpoints(stages[index - 1][0]) if index else None
        model, _ = fit_stage(config, workdir, run, stage, steps, p_asr, init_from)
    if global_rank():  # rank 0 exports
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
    """Prepare the run here (node 0; another node waits for it), then train: in this process
    for one device, else under torchrun."""
    if node_rank == 0:
        prepare_run(config, workdir, run)
    else:
        wait_for_preparation(config, run)
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
