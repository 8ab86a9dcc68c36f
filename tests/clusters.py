"""Helpers for the tests that start real servers and clusters: processes in their own process
group (ended by group id, never by name), free ports, a small corpus cut from the demo one, and
a comparison of every Parquet file two runs wrote."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import yaml

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

FAST_CONFIG = {
    "files_per_shard": 1,
    "pass1": {"asr": {"beam_size": 1}, "lid_windows": 1},
    "pass2": {"asr": {"beam_size": 1}},
}
"""One file per shard, greedy decoding: the stages all run, quickly."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def child_env(**extra: str) -> dict[str, str]:
    """The environment of a child process: this checkout first on the path, no telemetry."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env |= {
        "RAY_USAGE_STATS_ENABLED": "0",
        "DO_NOT_TRACK": "1",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_LOGGING_LEVEL": "WARNING",
    }
    return env | extra


def start(command: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen:
    """Start `command` as the leader of a new process group, output to `log`."""
    with log.open("ab") as out:
        return subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )


def stop(process: subprocess.Popen, grace_s: float = 10.0) -> None:
    """End a process started by `start` and everything in its group."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(grace_s)
    except ProcessLookupError:
        return
    except subprocess.TimeoutExpired:
        pass
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)  # whatever is left of its group
    process.wait()


def wait_for(check: Callable[[], object], timeout_s: float, what: str, log: Path | None = None):
    """Poll `check` until it returns something truthy; fail with the log's tail otherwise."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.5)
    tail = log.read_text()[-3000:] if log and log.exists() else ""
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}\n{tail}")


def small_catalog(demo_catalog: Path, folder: Path, files: list[str]) -> Path:
    """A one-source catalog of a few files of the demo corpus's open-radio source."""
    corpus = folder / "corpus"
    corpus.mkdir(parents=True, exist_ok=True)
    for name in files:
        shutil.copy(demo_catalog.parent / "open-radio" / name, corpus / name)
    source = {
        "name": "radio",
        "kind": "local",
        "path": "corpus",
        "license": "CC BY 4.0",
        "attribution": "vaglio demo corpus",
        "languages": ["en", "it"],
    }
    catalog = folder / "catalog.yaml"
    catalog.write_text(yaml.safe_dump({"sources": [source]}))
    return catalog


def write_config(path: Path, **extra: object) -> Path:
    path.write_text(yaml.safe_dump(FAST_CONFIG | extra))
    return path


def parquet_tables(workdir: Path) -> dict[str, pa.Table]:
    """Every Parquet file a run wrote, by path relative to the workdir."""
    return {
        str(path.relative_to(workdir)): pq.read_table(path)
        for path in sorted(Path(workdir).rglob("*.parquet"))
    }


def assert_same_outputs(expected: Path, actual: Path) -> None:
    """The two workdirs hold the same Parquet files with equal contents."""
    left, right = parquet_tables(expected), parquet_tables(actual)
    assert sorted(left) == sorted(right)
    different = [name for name in left if not left[name].equals(right[name])]
    assert not different, f"contents differ: {different}"


def vaglio(*args: str, env: dict[str, str], timeout_s: float = 300) -> subprocess.CompletedProcess:
    """Run the `vaglio` command line of this checkout."""
    return subprocess.run(
        [sys.executable, "-m", "pipeline.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )
