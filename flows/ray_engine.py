"""`--engine ray`: every (stage, shard) of a curation runs as a Ray task on a cluster.

Ray is used directly, not through prefect-ray's `RayTaskRunner`, because:
- with prefect-ray every Ray worker runs Prefect's task engine and must reach the Prefect API
  (the serialised context carries `PREFECT_API_URL`); a run without a server would point
  remote nodes at the driver's temporary 127.0.0.1 server, which they cannot reach;
- a bare Ray task costs a few milliseconds, a Prefect task run on Ray a round of API calls
  (`bench/engine_overhead.py`, 2 cores: 6.7 ms per (stage, shard) task against 274 ms);
- Ray itself re-runs a task whose node died (`max_retries`), and the library's markers make
  a re-run resume, so Prefect's retries add nothing here.
A scheduled `curate` flow with `engine="ray"` still shows up as one Prefect flow run.

Stage order, resume and cross-shard steps stay the library's (`pipeline.run.curate`); this
module is only a `ShardExecutor`. Each task reserves the stage's `resources` from the config
(`num_cpus`, `num_gpus`). Worker processes are reused (`max_calls=0`, also for GPU tasks, which
Ray would otherwise recycle after every task), and each keeps the first copy of a stage it
receives, so a model (VAD, Whisper, an LLM) loads once per worker process, not once per shard.
The workdir must be on storage that every node sees at the same path (NFS, a shared disk):
tasks read their inputs and write their shard and marker there.
"""

from __future__ import annotations

import json
import os
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from pipeline.extras import MissingExtraError

try:
    import ray
except ImportError:  # `vaglio curate --engine ray` says what to install, in one line
    raise MissingExtraError("--engine ray", "ray", "ray") from None

from pipeline.config import CurateConfig
from pipeline.run.curate import CurationResult, StageProgress, curate
from pipeline.run.runner import ShardOutcome, StageRunner
from pipeline.sources.catalog import Source
from pipeline.sources.survey import survey_source
from pipeline.stage import Stage

PLACEMENTS = "ray/placements.jsonl"
"""Under the workdir: where each shard task ran (node, host, process), one JSON per line."""

LOCAL_OBJECT_STORE_BYTES = 200_000_000
"""A local Ray started for one run needs little: only paths and counts cross the wire."""

_warm_stages: dict[str, Stage] = {}
_warm_lock = threading.Lock()


@dataclass(frozen=True)
class Placement:
    stage: str
    shard_id: str
    node_id: str
    host: str
    pid: int
    warm: bool  # the stage (and so its model) was already loaded in this worker process


def _stage_key(stage: Stage) -> str:
    identity = {"name": stage.name, "version": stage.version_tag, "config": stage.config_dict()}
    return json.dumps(identity, sort_keys=True, default=str)


def _warm(stage: Stage) -> tuple[Stage, bool]:
    """This process's copy of `stage`: the first one it received, with its models loaded."""
    key = _stage_key(stage)
    with _warm_lock:
        warm = key in _warm_stages
        return _warm_stages.setdefault(key, stage), warm


def _run_shard(workdir: str, stage: Stage, shard_id: str) -> tuple[ShardOutcome, Placement]:
    """The body of one Ray task; runs on whichever node Ray picks."""
    stage, warm = _warm(stage)
    outcome = StageRunner(Path(workdir)).run(stage, shard_id)
    node = ray.get_runtime_context().get_node_id()
    placement = Placement(stage.name, shard_id, node, socket.gethostname(), os.getpid(), warm)
    return outcome, placement


# Reuse worker processes for every task, GPU ones included (Ray's default for those is 1).
_remote_run_shard = ray.remote(max_calls=0)(_run_shard)


class RayExecutor:
    """Submits each shard of a stage as a Ray task and yields outcomes as they complete.

    Ray's resources decide how many run at once on each node, so the threads engine's
    `max_parallel_shards` does not apply; give model stages `num_cpus` (or `num_gpus`) to
    keep them from sharing a node's cores.
    """

    def __init__(self, workdir: Path, config: CurateConfig, retries: int = 3):
        self.workdir = Path(workdir)
        self.config = config
        self.retries = retries

    def map(
        self, stage: Stage, run: Callable[[str], ShardOutcome], shard_ids: list[str]
    ) -> Iterator[ShardOutcome]:
        # `run` closes over the driver's stage; the task gets the stage itself, so that each
        # worker process can keep it warm (see `_warm`).
        resources = self.config.resources_for(stage.name)
        task = _remote_run_shard.options(
            num_cpus=resources.num_cpus,
            num_gpus=resources.num_gpus,
            max_retries=self.retries,  # a dead worker or node: run the shard elsewhere
        )
        stage_ref = ray.put(stage)
        (self.workdir / PLACEMENTS).parent.mkdir(parents=True, exist_ok=True)
        pending = [task.remote(str(self.workdir), stage_ref, s) for s in shard_ids]
        with (self.workdir / PLACEMENTS).open("a") as log:
            while pending:
                (done,), pending = ray.wait(pending, num_returns=1)
                outcome, placement = ray.get(done)
                log.write(json.dumps(asdict(placement)) + "\n")
                log.flush()
                yield outcome


def survey_on_ray(sources: list[Source], policy: Path | None) -> list[dict]:
    """The survey rows of every source, each source surveyed as a Ray task, in catalog order."""
    task = ray.remote(max_retries=3)(survey_source)
    return [row for rows in ray.get([task.remote(s, policy) for s in sources]) for row in rows]


def read_placements(workdir: Path) -> list[Placement]:
    """Where every Ray shard task of `workdir` ran, oldest first."""
    path = Path(workdir) / PLACEMENTS
    if not path.exists():
        return []
    return [Placement(**json.loads(line)) for line in path.read_text().splitlines() if line]


@contextmanager
def ray_session(address: str | None) -> Iterator[None]:
    """Join the cluster at `address` (or `RAY_ADDRESS`), else start a local Ray for this run
    and stop it afterwards; a Ray this process had already joined is used as it is."""
    if ray.is_initialized():
        yield
        return
    address = address or os.environ.get("RAY_ADDRESS") or None
    options: dict = {"logging_level": "WARNING", "log_to_driver": False}
    if address is None:
        options |= {"object_store_memory": LOCAL_OBJECT_STORE_BYTES, "include_dashboard": False}
    ray.init(address=address, **options)
    try:
        yield
    finally:
        ray.shutdown()


def run_curate_on_ray(
    catalog: Path,
    workdir: Path,
    config: CurateConfig,
    progress: StageProgress | None = None,
) -> CurationResult:
    """Entry point that `vaglio curate --engine ray` finds through `vaglio.orchestrators`;
    the cluster is `RAY_ADDRESS` (`--ray-address`)."""
    with ray_session(None):
        return curate(catalog, workdir, config, RayExecutor(workdir, config), progress)
