"""One rank of a test job under `torchrun`: the tiny model's losses on this rank's batch, in
training mode, and its gradients averaged over the ranks as DDP averages them.

    torchrun --nproc-per-node 2 tests/train_scale_losses.py FOLDER

FOLDER/setup.pt holds the config, the tokenizer's path, the weights and one batch per rank;
each rank writes FOLDER/rankN.pt.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.distributed as dist

from training.config import build_config
from training.model import FamaModel
from training.trainer import model_config


def main(folder: Path) -> None:
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    setup = torch.load(folder / "setup.pt", weights_only=False)
    model = FamaModel(model_config(build_config(setup["settings"]), Path(setup["tokenizer"])))
    model.load_state_dict(setup["state"])
    model.train()
    torch.manual_seed(rank)  # the preprocessor dithers in training
    losses = model.losses(setup["batches"][rank])
    losses["loss"].backward()
    grads = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
    for grad in grads.values():
        dist.all_reduce(grad)
        grad /= world
    values = {name: value.detach() for name, value in losses.items()}
    torch.save({"losses": values, "grads": grads}, folder / f"rank{rank}.pt")
    dist.destroy_process_group()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
