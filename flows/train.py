"""`vaglio train` as a Prefect flow: JSON-able parameters, one task that trains (retried once:
a retry resumes from the last checkpoint) and returns the exported model's path.

More than one device trains under `torchrun` in a subprocess (`training.trainer.launch`), so
the ranks never re-run this flow.
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from flows.gpu import GPU_TAG


@task(
    retries=1,
    retry_delay_seconds=5,
    task_run_name="train:{out}",
    cache_policy=NO_CACHE,
    tags=[GPU_TAG],  # one model on a GPU at a time, with the curation's GPU stages too
)
def train_task(
    config: str, workdir: str, out: str, node_rank: int, master_addr: str, master_port: int
) -> str:
    from training.config import load_config
    from training.trainer import launch

    model = launch(
        load_config(config), Path(workdir), Path(out), node_rank, master_addr, master_port
    )
    return str(model)


@flow(name="train", validate_parameters=False)
def train_flow(
    config: str,
    workdir: str,
    out: str,
    node_rank: int = 0,
    master_addr: str = "127.0.0.1",
    master_port: int = 29500,
) -> str:
    """Train the model CONFIG describes on the curated `workdir`; the run folder is `out`."""
    return train_task(config, workdir, out, node_rank, master_addr, master_port)
