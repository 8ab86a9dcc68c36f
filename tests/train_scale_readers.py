"""One rank of a test job under `torchrun`: read a training stream through a data loader whose
workers are *spawned* (they inherit the environment, not the process group) until each of
this rank's readers has begun its second epoch, and write what every batch held.

    torchrun --nproc-per-node 2 tests/train_scale_readers.py WORKDIR TOKENIZER OUT
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
import torch.distributed as dist
from train_scale_data import SPLIT  # this script's folder is first on the path

from training.config import build_config
from training.data import RowFilter, TrainStream, shard_paths
from training.tokenizer import Tokenizer

WORKERS = 2


def main(workdir: Path, tokenizer: Path, out: Path) -> None:
    dist.init_process_group("gloo")
    config = build_config({"preset": "tiny", "data": {"split": SPLIT, "shuffle_buffer": 6}})
    keep = RowFilter("train", config.data.split)
    stream = TrainStream(shard_paths(workdir), keep, Tokenizer(tokenizer), config.data, seed=5)
    loader = torch.utils.data.DataLoader(
        stream, batch_size=None, num_workers=WORKERS, multiprocessing_context="spawn"
    )
    batches, begun = [], set()
    for batch in loader:
        batches.append({"stream": batch.stream, "rows": [e.segment_id for e in batch.examples]})
        if batch.stream["epoch"] >= 1:
            begun.add(batch.stream["reader"])
        if len(begun) == WORKERS or len(batches) > 500:
            break
    (out / f"rank{dist.get_rank()}.json").write_text(json.dumps(batches))
    dist.destroy_process_group()


if __name__ == "__main__":
    main(*(Path(a) for a in sys.argv[1:4]))
