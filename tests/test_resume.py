"""`kill -9` in the middle of `vaglio curate`, then run it again: only unfinished work is redone."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline.query.sql import run_query

# Outcome depends on model numerics: CI runs these again under the other CTranslate2 backends.
pytestmark = pytest.mark.numerics

MANIFEST = "SELECT * EXCLUDE (versions) FROM segments_all ORDER BY segment_id"


def vaglio(*args: str) -> list[str]:
    return [sys.executable, "-m", "pipeline.cli", *args]


def markers(workdir: Path, stage: str) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in (workdir / stage).glob("*.done.json")}


def test_sigkill_mid_run_then_rerun_equals_an_uninterrupted_run(curated, demo_catalog, tmp_path):
    reference_workdir, _ = curated
    workdir = tmp_path / "work"
    command = vaglio("curate", str(demo_catalog), "--workdir", str(workdir), "--engine", "threads")
    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    deadline = time.monotonic() + 300
    while not markers(workdir, "pass2") and time.monotonic() < deadline:
        assert process.poll() is None, "curate ended before it could be interrupted"
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    shards = json.loads((workdir / "shards.json").read_text())
    done_before = markers(workdir, "pass2")
    assert 0 < len(done_before) < len(shards), "the kill should land mid-stage"

    subprocess.run(command, check=True, capture_output=True, timeout=900)

    after = markers(workdir, "pass2")
    assert {k: after[k] for k in done_before} == done_before, "finished shards were redone"
    assert len(after) == len(shards)
    assert run_query(workdir, MANIFEST).equals(run_query(reference_workdir, MANIFEST))
    leftovers = [p for p in workdir.rglob("*.tmp")]
    assert leftovers == [] or all(p.name.startswith(".") for p in leftovers)
