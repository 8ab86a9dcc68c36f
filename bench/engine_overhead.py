"""What each engine costs per (stage, shard) task, and what a second Ray node buys.

The corpus: six spoken files of the demo corpus (1.8 min), one shard each.

1. Overhead: the corpus is curated once on threads; then each engine re-runs it on a copy
   of that workdir, where every shard is already complete, so each task only checks its
   fingerprint: the re-run's wall time over its task count is the engine's own cost per task.
   Engines (each already started): threads, Prefect tasks (temporary server), Ray tasks (this
   project's `--engine ray`) and, for comparison, Prefect tasks on Ray through prefect-ray's
   `RayTaskRunner`.
2. Scale-out: a fresh curation on a Ray cluster of 1 node × 1 CPU, then of 2 nodes × 1 CPU
   (a second `ray start` joins), each checked identical to the threads run.

Ray must stay on loopback, so the script re-runs itself in a private network namespace with
only `lo` (`unshare --net`, as root). Nodes are ended by process group id only.

    python bench/engine_overhead.py
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq
import yaml

from bench.common import CACHE, emit
from pipeline.config import CurateConfig
from pipeline.demo_corpus import build_demo_corpus
from pipeline.run.curate import CurationResult, ThreadExecutor, curate

INSIDE = "VAGLIO_BENCH_NAMESPACE"
SPOKEN = ["en-02.mp3", "en-03.wav", "en-04.m4a", "it-01.ogg", "it-03.mp3", "it-04.wav"]


def _same_outputs(left: Path, right: Path) -> bool:
    names = sorted(str(p.relative_to(left)) for p in left.rglob("*.parquet"))
    if names != sorted(str(p.relative_to(right)) for p in right.rglob("*.parquet")):
        return False
    return all(pq.read_table(left / n).equals(pq.read_table(right / n)) for n in names)


def _timed(run) -> tuple[float, CurationResult]:
    started = time.perf_counter()
    result = run()
    return time.perf_counter() - started, result


class Node:
    """One `ray start --block` process group: 1 CPU, a 100 MB object store."""

    def __init__(self, *args: str):
        command = [
            str(Path(sys.executable).with_name("ray")), "start", "--num-cpus=1",
            "--object-store-memory=100000000", "--block", *args,
        ]  # fmt: skip
        env = os.environ | {"RAY_USAGE_STATS_ENABLED": "0"}
        self.process = subprocess.Popen(
            command,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


def _alive_nodes(ray) -> int:
    return sum(n["Alive"] for n in ray.nodes())


def _wait_nodes(ray, count: int) -> None:
    deadline = time.monotonic() + 90
    while _alive_nodes(ray) < count:
        if time.monotonic() > deadline:
            raise SystemExit(f"the Ray cluster did not reach {count} nodes")
        time.sleep(0.5)


def overhead(workdir: Path, catalog: Path, config: CurateConfig, address: str) -> None:
    """Per-task cost of each engine on an already complete workdir."""
    import ray
    from prefect_ray import RayTaskRunner

    from flows.curate import curate_with_progress, run_curate_flow
    from flows.ray_engine import RayExecutor

    def rerun(name: str, run) -> None:
        """Time the second of two re-runs: the first starts the engine (a Prefect server,
        Ray worker processes)."""
        for _ in range(2):
            copy = workdir.with_name(f"rerun-{name}")
            shutil.rmtree(copy, ignore_errors=True)
            shutil.copytree(workdir, copy)
            seconds, result = _timed(lambda c=copy: run(c))
        assert all(o.skipped for o in result.outcomes), name
        tasks = len(result.outcomes)
        emit(
            "engine_overhead",
            engine=name,
            tasks=tasks,
            wall_s=seconds,
            ms_per_task=1000 * seconds / tasks,
        )

    rerun("threads", lambda w: curate(catalog, w, config, ThreadExecutor(config.workers)))
    rerun("prefect", lambda w: run_curate_flow(catalog, w, config))
    ray.init(address=address, logging_level="WARNING", log_to_driver=False)
    try:
        rerun("ray", lambda w: curate(catalog, w, config, RayExecutor(w, config)))
        runner = RayTaskRunner(address=address)
        on_ray = curate_with_progress.with_options(task_runner=runner)
        rerun("prefect_on_ray", lambda w: on_ray(catalog, w, config))
    finally:
        ray.shutdown()


def scale_out(reference: Path, catalog: Path, config: CurateConfig, address: str) -> None:
    """Fresh curations on 1 node, then on 2 nodes, each of one CPU."""
    import ray

    from flows.ray_engine import RayExecutor

    seconds = {}
    for nodes in (1, 2):
        second = Node(f"--address={address}") if nodes == 2 else None
        try:
            ray.init(address=address, logging_level="WARNING", log_to_driver=False)
            _wait_nodes(ray, nodes)
            workdir = reference.with_name(f"ray-{nodes}-nodes")
            shutil.rmtree(workdir, ignore_errors=True)
            seconds[nodes], _ = _timed(
                lambda w=workdir: curate(catalog, w, config, RayExecutor(w, config))
            )
            same = _same_outputs(reference, workdir)
            ray.shutdown()
        finally:
            ray.shutdown()
            if second:
                second.stop()
        emit("ray_scale_out", nodes=nodes, cpus_per_node=1, wall_s=seconds[nodes], same=same)
    emit("ray_scale_out_speedup", speedup=seconds[1] / seconds[2])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def small_catalog(root: Path) -> Path:
    """The spoken files of the demo corpus's open source, one shard each."""
    demo = build_demo_corpus(CACHE / "demo-x1").parent
    corpus = root / "corpus"
    corpus.mkdir(parents=True)
    for name in SPOKEN:
        shutil.copy(demo / "open-radio" / name, corpus / name)
    source = {"name": "radio", "kind": "local", "path": "corpus", "license": "CC BY 4.0",
              "attribution": "vaglio demo corpus", "languages": ["en", "it"]}  # fmt: skip
    catalog = root / "catalog.yaml"
    catalog.write_text(yaml.safe_dump({"sources": [source]}))
    return catalog


def run() -> None:
    root = CACHE / "engine-overhead"
    shutil.rmtree(root, ignore_errors=True)
    catalog = small_catalog(root)
    config = CurateConfig(files_per_shard=1)
    reference = root / "threads"
    seconds, result = _timed(lambda: curate(catalog, reference, config, ThreadExecutor(2)))
    emit("engine_full_run", engine="threads", tasks=len(result.outcomes), wall_s=seconds)

    port = _free_port()
    address = f"127.0.0.1:{port}"
    temp = tempfile.mkdtemp(prefix="vb-")
    head = Node("--head", f"--port={port}", "--include-dashboard=false", f"--temp-dir={temp}")
    try:
        overhead(reference, catalog, config, address)
        scale_out(reference, catalog, config, address)
    finally:
        head.stop()


def main() -> None:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()
    if os.environ.get(INSIDE) == "1":
        run()
        return
    env = os.environ | {
        INSIDE: "1",
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": os.urandom(32).hex(),
        "PREFECT_LOGGING_LEVEL": "WARNING",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    inner = [sys.executable, "-m", "bench.engine_overhead", *sys.argv[1:]]
    command = ["unshare", "--net", "sh", "-c", 'ip link set lo up && exec "$0" "$@"', *inner]
    sys.exit(subprocess.run(command, env=env).returncode)


if __name__ == "__main__":
    main()
