"""`vaglio curate --engine ray` on a real two-node Ray cluster: the same Parquet as threads,
shards on both nodes, per-stage resources honoured, and a node killed mid-run.

Ray advertises the machine's external address even when asked for 127.0.0.1, so the cluster
must live in a private network namespace that has only `lo`. The outer test re-runs the tests
marked `inner` in this file under `unshare --net`; there `ray start --head` and a second
`ray start --address …` are separate processes (1 CPU each, 100 MB object stores), ended by
process group at the end, never by Ray's stop-everything command.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml
from clusters import (
    BIN,
    assert_same_outputs,
    child_env,
    free_port,
    small_catalog,
    start,
    stop,
    vaglio,
    wait_for,
    write_config,
)

from pipeline.config import CurateConfig, load_config
from pipeline.run.curate import ThreadExecutor, build_stages, curate
from pipeline.sources.catalog import load_catalog
from pipeline.sources.survey import survey_sources, survey_table

# Outcome depends on model numerics: CI runs these again under the other CTranslate2 backends.
pytestmark = pytest.mark.numerics

ray = pytest.importorskip("ray")

STAGES = len(build_stages(CurateConfig()))  # each runs once per shard

INSIDE = os.environ.get("VAGLIO_RAY_NAMESPACE") == "1"
STAGES = len(build_stages(CurateConfig()))  # (stage, shard) tasks per shard
inner = pytest.mark.skipif(not INSIDE, reason="runs inside a loopback-only network namespace")
FILES = ["en-03.wav", "it-04.wav", "truncated.wav", "corrupt.mp3"]
OBJECT_STORE = str(100 * 1024 * 1024)


def _can_unshare() -> bool:
    if shutil.which("ip") is None:
        return False
    try:
        return subprocess.run(["unshare", "--net", "true"], capture_output=True).returncode == 0
    except FileNotFoundError:
        return False


@pytest.mark.skipif(INSIDE, reason="this is the test that enters the namespace")
def test_curation_on_a_two_node_ray_cluster_in_a_loopback_namespace(demo_catalog):
    if not _can_unshare():
        pytest.skip("needs `unshare --net` (root, or user namespaces) and `ip`")
    command = [
        "unshare", "--net", "sh", "-c", 'ip link set lo up && exec "$0" "$@"',
        sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "-m", "not slow",
        __file__,
    ]  # fmt: skip
    env = child_env(
        VAGLIO_RAY_NAMESPACE="1",
        VAGLIO_DEMO_CATALOG=str(demo_catalog),
        RAY_AUTH_MODE="token",  # every node and driver of the test cluster shares this token
        RAY_AUTH_TOKEN=secrets.token_hex(32),
    )
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    assert "3 passed" in result.stdout.splitlines()[-1]  # the three `inner` tests


@pytest.mark.skipif(INSIDE, reason="outside the namespace only")
def test_resources_name_known_stages_and_an_address_needs_the_ray_engine(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text("resources: {pass3: {num_gpus: 1}}\n")
    catalog = tmp_path / "catalog.yaml"
    source = {"name": "m", "kind": "metadata", "license": "CC0", "hours": 1.0,
              "attribution": "test", "languages": ["en"]}  # fmt: skip
    catalog.write_text(yaml.safe_dump({"sources": [source]}))
    args = ["curate", str(catalog), "-w", str(tmp_path / "w")]
    bad_stage = vaglio(*args, "-c", str(config), "--engine", "threads", env=child_env())
    assert bad_stage.returncode == 2
    assert "resources: unknown stage(s) ['pass3']" in bad_stage.stderr
    address = vaglio(
        *args, "--engine", "threads", "--ray-address", "10.0.0.1:6379", env=child_env()
    )
    assert address.returncode == 2 and "--ray-address needs --engine ray" in address.stderr


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """(catalog, config without GPUs) of a four-shard corpus, and its threads-engine output."""
    folder = tmp_path_factory.mktemp("corpus")
    catalog = small_catalog(Path(os.environ["VAGLIO_DEMO_CATALOG"]), folder, FILES)
    config = write_config(folder / "config.yaml")
    reference = folder / "threads"
    curate(catalog, reference, load_config(config), ThreadExecutor(2))
    return catalog, config, reference


@pytest.fixture(scope="module")
def cluster():
    """(address, node B's id, node B's process): a head and a second node with a logical GPU."""
    temp = Path(tempfile.mkdtemp(prefix="vr-"))  # short: Ray's socket paths have a length limit
    port = free_port()
    address = f"127.0.0.1:{port}"
    env = child_env(RAY_health_check_period_ms="1000", RAY_health_check_failure_threshold="3")
    common = ["--num-cpus=1", f"--object-store-memory={OBJECT_STORE}", "--block"]
    head = start(
        [str(BIN / "ray"), "start", "--head", f"--port={port}", "--include-dashboard=false",
         f"--temp-dir={temp}", "--disable-usage-stats", *common],
        temp.parent / f"{temp.name}-head.log",
        env,
    )  # fmt: skip
    node_b = None
    try:
        ray.init(address=address, logging_level="WARNING", log_to_driver=False)
        node_b = start(
            [str(BIN / "ray"), "start", f"--address={address}", "--num-gpus=1",
             '--resources={"node_b": 1}', *common],
            temp.parent / f"{temp.name}-b.log",
            env,
        )  # fmt: skip

        def node_b_id():
            alive = [n for n in ray.nodes() if n["Alive"] and "node_b" in n["Resources"]]
            return alive[0]["NodeID"] if alive else None

        found = wait_for(node_b_id, 60, "the second Ray node")
        ray.shutdown()
        yield address, found, node_b
    finally:
        ray.shutdown()
        for process in (node_b, head):
            if process is not None:
                stop(process)


def _placements(workdir: Path) -> list[dict]:
    path = workdir / "ray" / "placements.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@inner
def test_ray_engine_writes_what_threads_write_using_both_nodes(corpus, cluster, tmp_path):
    catalog, _, reference = corpus
    address, node_b, _ = cluster
    gpu_config = write_config(tmp_path / "gpu.yaml", resources={"pass2": {"num_gpus": 1}})
    workdir = tmp_path / "ray"
    env = child_env()
    args = ["curate", str(catalog), "-w", str(workdir), "-c", str(gpu_config), "--engine", "ray"]
    result = vaglio(*args, "--ray-address", address, env=env)
    assert result.returncode == 0, result.stderr

    assert_same_outputs(reference, workdir)
    placements = _placements(workdir)
    assert len(placements) == STAGES * len(FILES)
    assert any(p["node_id"] == node_b for p in placements if p["stage"] != "pass2")
    assert {p["node_id"] for p in placements if p["stage"] == "pass2"} == {node_b}  # its GPU
    for stage in ("segment", "pass1", "pass2", "quality"):  # model stages: one load per process
        ran = [p for p in placements if p["stage"] == stage]
        assert sum(not p["warm"] for p in ran) == len({(p["node_id"], p["pid"]) for p in ran})
        assert any(p["warm"] for p in ran)

    again = vaglio(*args, "--ray-address", address, env=env)
    assert again.returncode == 0, again.stderr
    assert f"skipped as already complete: {STAGES * len(FILES)}" in again.stderr


@inner
def test_the_survey_on_ray_gives_the_rows_of_the_plain_survey(corpus, cluster):
    from flows.ray_engine import ray_session, survey_on_ray

    catalog, _, _ = corpus
    sources = load_catalog(catalog)
    with ray_session(cluster[0]):
        rows = survey_on_ray(sources, None)
    surveyed = survey_table(rows).to_pylist()
    assert surveyed == survey_sources(sources).to_pylist()
    assert surveyed[0]["files"] == len(FILES) and surveyed[0]["unreadable_files"] >= 1


@inner
def test_a_node_killed_mid_run_and_the_run_still_completes_identically(corpus, cluster, tmp_path):
    catalog, config, reference = corpus
    address, node_b, node_b_process = cluster
    workdir = tmp_path / "ray"
    log = tmp_path / "curate.log"
    args = ["curate", str(catalog), "-w", str(workdir), "-c", str(config), "--engine", "ray"]
    run = start(
        [sys.executable, "-m", "pipeline.cli", *args, "--ray-address", address], log, child_env()
    )
    try:
        wait_for(
            lambda: any(p["node_id"] == node_b for p in _placements(workdir)),
            180,
            "a shard on node B",
            log,
        )
        os.killpg(node_b_process.pid, signal.SIGKILL)  # the node and its workers, at once
        assert run.wait(300) == 0, log.read_text()[-4000:]
    finally:
        stop(run)
    assert_same_outputs(reference, workdir)
    stages_done = [p["stage"] for p in _placements(workdir)]
    assert len(stages_done) == STAGES * len(FILES)
