"""Scheduled curation on a real Prefect server: `vaglio schedule add`, a `prefect worker` on the
process pool picks the runs up, and GPU stages of two runs never overlap under a `gpu` limit.

The server is a real `prefect server start` on 127.0.0.1 (temporary PREFECT_HOME, SQLite, UI
off), started once for this module; the worker and the runs are real processes.
"""

from __future__ import annotations

import itertools
import subprocess

import httpx
import pytest
from clusters import (
    BIN,
    REPO,
    child_env,
    free_port,
    small_catalog,
    start,
    stop,
    vaglio,
    wait_for,
    write_config,
)
from prefect.client.schemas.filters import (
    FlowRunFilter,
    FlowRunFilterState,
    FlowRunFilterStateType,
    TaskRunFilter,
    TaskRunFilterTags,
)
from prefect.client.schemas.objects import TERMINAL_STATES
from prefect.client.schemas.sorting import FlowRunSort

from pipeline.query.sql import run_query


@pytest.fixture(scope="module")
def prefect_server(tmp_path_factory):
    """(api_url, env for clients) of a real Prefect server, stopped after the module."""
    home = tmp_path_factory.mktemp("prefect-home")
    port = free_port()
    url = f"http://127.0.0.1:{port}/api"
    env = child_env(PREFECT_HOME=str(home), PREFECT_SERVER_UI_ENABLED="false")
    env.pop("PREFECT_API_URL", None)  # the server is not a client of another one
    log = home / "server.log"
    server = start(
        [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        log,
        env,
    )

    def healthy() -> bool:
        try:
            return httpx.get(f"{url}/health", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_for(healthy, 90, "the Prefect server", log)
        yield url, child_env(PREFECT_HOME=str(home), PREFECT_API_URL=url)
    finally:
        stop(server)


def _client(url: str):
    from prefect.client.orchestration import SyncPrefectClient

    return SyncPrefectClient(api=url)


def test_schedule_needs_a_server(tmp_path):
    env = child_env(PREFECT_HOME=str(tmp_path))
    env.pop("PREFECT_API_URL", None)
    result = vaglio("schedule", "list", env=env)
    assert result.returncode == 2
    assert "PREFECT_API_URL is not set" in result.stderr
    assert "Traceback" not in result.stderr


def test_schedule_add_names_the_bad_option(tmp_path):
    env = child_env(PREFECT_HOME=str(tmp_path))
    common = ["schedule", "add", "x", "--catalog", "c.yaml", "--workdir", str(tmp_path)]
    unknown = vaglio(*common, "--every", "60", "--param", "speed=3", env=env)
    assert unknown.returncode == 2
    assert "flow 'curate' takes no parameter ['speed']" in unknown.stderr
    cron = vaglio(*common, "--cron", "every night", env=env)
    assert cron.returncode == 2 and "--cron 'every night'" in cron.stderr
    assert "Traceback" not in unknown.stderr + cron.stderr


def test_two_scheduled_curations_complete_and_take_turns_on_the_gpu(
    prefect_server, demo_catalog, tmp_path
):
    url, env = prefect_server
    catalog = small_catalog(demo_catalog, tmp_path, ["en-03.wav", "corrupt.mp3"])
    gpu_stages = {"pass1": {"num_gpus": 1}, "pass2": {"num_gpus": 1}}
    config = write_config(tmp_path / "config.yaml", resources=gpu_stages)
    with _client(url) as client:
        client.create_concurrency_limit(tag="gpu", concurrency_limit=1)

    for name in ("radio-a", "radio-b"):
        added = vaglio(
            "schedule", "add", name, "--catalog", str(catalog), "--workdir",
            str(tmp_path / name), "--config", str(config), "--every", "15", env=env,
        )  # fmt: skip
        assert added.returncode == 0, added.stderr
    listed = vaglio("schedule", "list", env=env)
    assert "curate/radio-a" in listed.stderr and "every 15s" in listed.stderr

    log = tmp_path / "worker.log"
    worker_env = env | {"PREFECT_WORKER_QUERY_SECONDS": "2", "PREFECT_WORKER_PREFETCH_SECONDS": "5"}
    worker = start(
        [str(BIN / "prefect"), "worker", "start", "--pool", "vaglio", "--limit", "2"],
        log,
        worker_env,
    )
    finished = FlowRunFilter(
        state=FlowRunFilterState(type=FlowRunFilterStateType(any_=list(TERMINAL_STATES)))
    )
    by_start = FlowRunSort.START_TIME_ASC
    try:
        with _client(url) as client:

            def first_finished_runs():
                first = {}
                for run in client.read_flow_runs(flow_run_filter=finished, sort=by_start):
                    first.setdefault(run.deployment_id, run)
                return list(first.values()) if len(first) == 2 else None

            runs = wait_for(first_finished_runs, 240, "a finished run of each deployment", log)
            assert [r.state_name for r in runs] == ["Completed", "Completed"], log.read_text()
            tagged = TaskRunFilter(tags=TaskRunFilterTags(all_=["gpu"]))
            gpu_runs = client.read_task_runs(task_run_filter=tagged)
    finally:
        stop(worker)

    finished_ids = {r.id for r in runs}
    assert finished_ids <= {r.flow_run_id for r in gpu_runs}
    # A task run of a later scheduled run that has not started yet still has Prefect's
    # default name: only the finished runs' task names are final.
    finished_names = {r.name.split(":")[0] for r in gpu_runs if r.flow_run_id in finished_ids}
    assert sorted(finished_names) == ["pass1", "pass2"]
    first, second = sorted(runs, key=lambda r: r.start_time)
    assert second.start_time < first.end_time, "the two runs did not overlap: nothing to test"
    spans = sorted((r.start_time, r.end_time) for r in gpu_runs if r.start_time)
    for (_, end), (start_next, _) in itertools.pairwise(spans):
        assert end <= start_next, "two GPU stages ran at once"

    for name in ("radio-a", "radio-b"):
        rows = run_query(
            tmp_path / name,
            "SELECT recording_id, count(*) FILTER (WHERE drop_reason IS NULL) AS kept "
            "FROM segments GROUP BY recording_id",
        ).to_pylist()
        assert rows == [{"recording_id": "radio/en-03.wav", "kept": rows[0]["kept"]}]
        assert rows[0]["kept"] >= 1
        quarantined = run_query(
            tmp_path / name, "SELECT quarantine_reason FROM recordings WHERE path LIKE '%corrupt%'"
        ).to_pylist()
        assert quarantined[0]["quarantine_reason"] is not None

    removed = vaglio("schedule", "rm", "radio-a", env=env)
    assert removed.returncode == 0, removed.stderr
    with _client(url) as client:
        assert [d.name for d in client.read_deployments()] == ["radio-b"]


def test_prefect_deploy_registers_the_deployments_of_prefect_yaml(prefect_server, tmp_path):
    url, env = prefect_server
    variables = {"VAGLIO_CATALOG": "/data/catalog.yaml", "VAGLIO_WORKDIR": "/data/run"}
    deployed = subprocess.run(
        [str(BIN / "prefect"), "--no-prompt", "deploy", "--all"],
        cwd=REPO,
        env=env | variables | {"VAGLIO_CONFIG": "/data/pipeline.yaml"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    with _client(url) as client:
        by_name = {d.name: d for d in client.read_deployments()}
        nightly, weekly = by_name["nightly-curation"], by_name["weekly-survey"]
        assert nightly.parameters["catalog"] == "/data/catalog.yaml"
        assert weekly.parameters["workdir"] == "/data/run/survey"
        assert nightly.schedules[0].schedule.cron == "0 2 * * *"
        for deployment in (nightly, weekly):
            client.delete_deployment(deployment.id)
