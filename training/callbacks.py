"""What the trainer adds to Lightning's loop: where each attempt started, the data stream's
position in every checkpoint, the last step always checkpointed, and an optional trace.

Imported only where a trainer is built (it needs Lightning).
"""

from __future__ import annotations

import json
from pathlib import Path

from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import Callback, ModelCheckpoint

from training.averaging import weights_digest
from training.data import Batch
from training.distributed import gather_objects


class RecordStart(Callback):
    """Appends {step, world_size} to `starts.jsonl` when training (re)starts: the run's own
    account of where each attempt began and on how many processes."""

    def __init__(self, path: Path):
        self.path = path

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.is_global_zero:
            line = {"step": trainer.global_step, "world_size": trainer.world_size}
            with self.path.open("a", encoding="utf-8") as out:
                out.write(json.dumps(line) + "\n")


class EveryAndLastCheckpoint(ModelCheckpoint):
    """`every_n_train_steps` checkpoints, plus one at the last step whatever its number: the
    final weights are among those averaged into the next stage and the exported model.

    It saves in `on_train_batch_end`, after the update, but before Lightning 2.4 counts the
    batch as completed and as one that stepped: a run resumed from such a checkpoint would take
    that batch for unfinished, so its first update would be made of one batch fewer than
    `accumulate_grad_batches` (and its logged steps would lag by one). The checkpoint records
    the batch as done, as it is.
    """

    def on_save_checkpoint(self, trainer: Trainer, pl_module, checkpoint: dict) -> None:
        loop = checkpoint["loops"]["fit_loop"]
        progress = loop["epoch_loop.batch_progress"]
        if progress["total"]["completed"] < progress["total"]["processed"]:
            for count in (progress["total"], progress["current"]):
                count["completed"] = count["processed"]
            loop["epoch_loop.state_dict"]["_batches_that_stepped"] += 1

    def on_train_batch_end(self, trainer: Trainer, pl_module, outputs, batch, batch_idx) -> None:
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        if trainer.global_step >= trainer.max_steps and not self._should_skip_saving_checkpoint(
            trainer
        ):
            candidates = self._monitor_candidates(trainer)
            self._save_topk_checkpoint(trainer, candidates)
            self._save_last_checkpoint(trainer, candidates)


class StreamPosition(Callback):
    """Keeps the position of this rank's readers after each batch trained on, and saves every
    rank's in each checkpoint (`checkpoint["stream"]`, what `TrainStream(resume=...)` takes).
    Also logs each batch's padding share, and, with `trace`, writes per rank the digest of the
    weights each attempt starts from and the rows of every batch (`trace/rankN.jsonl`)."""

    def __init__(self, resume: dict | None, trace: Path | None):
        self.readers = resume["readers"] if resume else 0
        self.consumed = resume["consumed"] if resume else 0
        self.states: dict[int, dict] = dict(resume["states"]) if resume else {}
        self.trace = trace
        self.start = 0

    def _write_trace(self, trainer: Trainer, line: dict) -> None:
        assert self.trace is not None
        self.trace.mkdir(parents=True, exist_ok=True)
        with (self.trace / f"rank{trainer.global_rank}.jsonl").open("a", encoding="utf-8") as out:
            out.write(json.dumps(line) + "\n")

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.start = trainer.global_step
        if self.trace is not None:
            weights = weights_digest(pl_module.state_dict())
            self._write_trace(trainer, {"start": self.start, "weights": weights})

    def on_train_batch_start(
        self, trainer: Trainer, pl_module: LightningModule, batch: Batch, batch_idx: int
    ) -> None:
        if self.readers != batch.stream["readers"]:  # another layout: the old states are void
            self.readers, self.states = batch.stream["readers"], {}
        self.states[batch.stream["reader"]] = batch.stream
        self.consumed += 1
        pl_module.log("train_padding", batch.padding, batch_size=len(batch.examples))
        if self.trace is not None:
            rows = [[e.segment_id, e.target_lang] for e in batch.examples]
            self._write_trace(
                trainer, {"start": self.start, "step": trainer.global_step, "rows": rows}
            )

    def on_save_checkpoint(self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict):
        """Every rank runs this (Lightning builds the checkpoint on all of them, rank 0 writes
        it): each contributes the readers it owns."""
        if not self.readers:  # no batch trained on yet: the stream starts afresh
            return
        per_rank = max(self.readers // trainer.world_size, 1)
        states = {}
        for rank, shard in enumerate(gather_objects(self.states)):
            states |= {r: s for r, s in shard.items() if r // per_rank == rank}
        checkpoint["stream"] = {
            "readers": self.readers,
            "consumed": self.consumed,
            "states": states,
        }
