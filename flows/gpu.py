"""One model per GPU across flow runs: the Prefect tag `gpu`.

Every task run that loads a model onto a GPU carries the tag: a curation stage whose
`resources` ask for `num_gpus > 0` (the ASR passes, the LLM stages), and training. With
`prefect concurrency-limit create gpu 1` on the server, such task runs wait for each other
across every flow run, so two scheduled runs on one machine never hold two models on its GPU;
give the limit as many slots as the machine has GPUs. Without the limit the tag changes
nothing. Under `--engine ray`, Ray's `num_gpus` does this job instead (see `ray_engine`).
"""

from __future__ import annotations

GPU_TAG = "gpu"


def gpu_tags(num_gpus: float) -> list[str]:
    """The tags of a task run that reserves `num_gpus` GPUs."""
    return [GPU_TAG] if num_gpus > 0 else []
