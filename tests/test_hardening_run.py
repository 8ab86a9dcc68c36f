"""A workdir under stress: damaged outputs, two runs at once, Ctrl-C, a read-only or full disk.

Every story runs the real `vaglio curate` on a small corpus of long tones and one spoken
sentence (files_per_shard 1, so there are several shards to interrupt), and checks what a
user would see: the message, the exit code, the files left, and that the final result equals
an uninterrupted run's.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from pipeline.audio.decode import SAMPLE_RATE
from pipeline.config import CurateConfig
from pipeline.demo_corpus import compose, speak, write_audio
from pipeline.query.sql import run_query
from pipeline.run.curate import ThreadExecutor, curate
from pipeline.run.runner import check_marker

# Outcome depends on model numerics: CI runs these again under the other CTranslate2 backends.
pytestmark = pytest.mark.numerics

TONES = 5
SEGMENTS = "SELECT * EXCLUDE (versions) FROM segments_all ORDER BY segment_id"
RECORDINGS = "SELECT * EXCLUDE (versions) FROM recordings ORDER BY recording_id"


def vaglio(*args: str) -> list[str]:
    return [sys.executable, "-m", "pipeline.cli", *args]


def markers(workdir: Path, stage: str) -> list[Path]:
    return sorted((workdir / stage).glob("*.done.json"))


def fingerprints(workdir: Path) -> dict[str, str]:
    """Every completed (stage, shard) with the fingerprint its marker proves."""
    found = {}
    for marker in workdir.glob("*/*.done.json"):
        shard = marker.name.removesuffix(".done.json")
        found[f"{marker.parent.name}/{shard}"] = check_marker(workdir, marker.parent.name, shard)[0]
    return found


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """Five 40 s tones (VAD takes a moment on each) and one spoken sentence, one per shard."""
    root = tmp_path_factory.mktemp("tones")
    (root / "audio").mkdir()
    t = np.arange(40 * SAMPLE_RATE) / SAMPLE_RATE
    for number in range(TONES):
        tone = 0.2 * np.sin(2 * np.pi * (220 + 55 * number) * t)
        write_audio(root / "audio" / f"tone{number}.wav", tone.astype(np.float32))
    speech = compose([speak("the weather is fine today", "en")], [], edge_s=0.3)
    write_audio(root / "audio" / "speech.wav", speech)
    source = {"name": "tones", "kind": "local", "path": "audio", "license": "CC0-1.0",
              "attribution": "test", "languages": ["en"], "files_per_shard": 1}  # fmt: skip
    (root / "catalog.yaml").write_text(yaml.safe_dump({"sources": [source]}))
    return root / "catalog.yaml"


@pytest.fixture(scope="module")
def reference(corpus, tmp_path_factory) -> Path:
    """The workdir of one uninterrupted run."""
    workdir = tmp_path_factory.mktemp("reference")
    curate(corpus, workdir, CurateConfig(), ThreadExecutor(2))
    return workdir


def test_damaged_outputs_are_redone_and_the_rest_kept(corpus, reference, tmp_path):
    workdir = tmp_path / "work"
    shutil.copytree(reference, workdir)
    truncated = sorted((workdir / "segment").glob("*.parquet"))[0]
    truncated.write_bytes(truncated.read_bytes()[:100])
    dataset_file = sorted((workdir / "dataset" / "data").glob("*.parquet"))[0]
    dataset_file.write_bytes(dataset_file.read_bytes()[:-50])
    garbage_marker = sorted((workdir / "pass1").glob("*.done.json"))[-1]
    garbage_marker.write_text("{not json")
    replaced = sorted((workdir / "shard").glob("*.parquet"))[-1]  # as a stray COPY … TO would
    pq.write_table(pa.table({"x": ["x"]}), replaced)
    untouched = {m: m.stat().st_mtime_ns for m in markers(workdir, "standardise")}

    result = curate(corpus, workdir, CurateConfig(), ThreadExecutor(2))

    redone = {(o.stage, o.shard_id): o.redone_because for o in result.outcomes if not o.skipped}
    segment_shard = truncated.name.removesuffix(".parquet")
    pass1_shard = garbage_marker.name.removesuffix(".done.json")
    dataset_shard = dataset_file.name.rsplit("-", 1)[0]
    replaced_shard = replaced.name.removesuffix(".parquet")
    assert "no Parquet footer" in redone[("segment", segment_shard)]
    assert "unreadable completion marker" in redone[("pass1", pass1_shard)]
    assert "no Parquet footer" in redone[("shard", dataset_shard)]
    assert "changed since it was written" in redone[("shard", replaced_shard)]
    assert len(redone) == 4, f"only the damaged shards run again: {sorted(redone)}"
    assert {m: m.stat().st_mtime_ns for m in markers(workdir, "standardise")} == untouched
    assert run_query(workdir, SEGMENTS).equals(run_query(reference, SEGMENTS))
    assert fingerprints(workdir) == fingerprints(reference)
    assert all(fingerprints(workdir).values()), "every marker proves its files again"


def test_a_second_run_is_refused_while_another_holds_the_workdir(corpus, tmp_path):
    workdir = tmp_path / "work"
    workdir.mkdir()
    hold = (
        "import sys, time\nfrom pipeline.run.lock import workdir_lock\n"
        "with workdir_lock(sys.argv[1]):\n    print('held', flush=True)\n    time.sleep(60)"
    )
    holder = subprocess.Popen([sys.executable, "-c", hold, str(workdir)], stdout=subprocess.PIPE)
    try:
        assert holder.stdout.readline().strip() == b"held"
        command = vaglio("curate", str(corpus), "-w", str(workdir), "--engine", "threads")
        refused = subprocess.run(command, capture_output=True, text=True, timeout=60)
        assert refused.returncode == 3, refused.stderr
        assert f"another run (pid {holder.pid}) is curating {workdir}" in refused.stderr
        assert "Traceback" not in refused.stderr
        assert not (workdir / "plan").exists(), "the refused run wrote nothing"
    finally:
        holder.kill()  # SIGKILL: the lock file stays behind, naming a dead pid
        holder.wait()
    assert (workdir / ".vaglio.lock").read_text().strip() == str(holder.pid)
    (workdir / "standardise").mkdir()
    stale = workdir / "standardise" / f".x.parquet.{holder.pid}.tmp"
    stale.write_bytes(b"half a file")

    one_tone = tmp_path / "one-tone.yaml"  # a short run: only the takeover matters here
    (tmp_path / "one").mkdir()
    shutil.copy(corpus.parent / "audio" / "tone0.wav", tmp_path / "one")
    catalog = yaml.safe_load(corpus.read_text())
    catalog["sources"][0]["path"] = str(tmp_path / "one")
    one_tone.write_text(yaml.safe_dump(catalog))

    curate(one_tone, workdir, CurateConfig(), ThreadExecutor(2))  # takes the dead run's lock

    assert not stale.exists(), "a dead run's temporary file is cleaned up"
    assert len(markers(workdir, "shard")) == 1


def test_ctrl_c_stops_at_once_and_a_rerun_finishes_the_same(corpus, reference, tmp_path):
    workdir = tmp_path / "work"
    command = vaglio("curate", str(corpus), "-w", str(workdir), "--engine", "threads")
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not markers(workdir, "segment") and time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()[1]
        time.sleep(0.02)
    process.send_signal(signal.SIGINT)
    interrupted_at = time.monotonic()
    _, stderr = process.communicate(timeout=30)
    stopped_after = time.monotonic() - interrupted_at

    assert process.returncode == 130, stderr
    assert stopped_after < 10, f"took {stopped_after:.1f} s to stop"
    assert "interrupted" in stderr and "run the same command again" in stderr
    assert "segment " in stderr, "says how far each stage got"
    assert "Traceback" not in stderr
    assert list(workdir.rglob("*.tmp")) == []
    finished = markers(workdir, "segment")
    assert 0 < len(finished) < TONES + 1, "queued shards were not started"
    assert not (workdir / "pass1").exists()
    done_before = {m: m.stat().st_mtime_ns for m in finished}

    rerun = subprocess.run(command, capture_output=True, text=True, timeout=600)

    assert rerun.returncode == 0, rerun.stderr
    assert {m: m.stat().st_mtime_ns for m in finished} == done_before, "finished work redone"
    assert run_query(workdir, SEGMENTS).equals(run_query(reference, SEGMENTS))
    assert run_query(workdir, RECORDINGS).equals(run_query(reference, RECORDINGS))
    assert fingerprints(workdir) == fingerprints(reference)


def _in_own_mount_namespace(script: str) -> subprocess.CompletedProcess:
    """Run `script` with sh as root of a private user and mount namespace, where it may mount
    a small tmpfs or a read-only bind without touching the machine's mounts."""
    if shutil.which("unshare") is None:
        pytest.skip("needs unshare(1) to mount a read-only or full file system")
    probe = subprocess.run(["unshare", "-Urm", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"no private mount namespace here: {probe.stderr.decode().strip()}")
    environment = os.environ | {"PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.run(
        ["unshare", "-Urm", "sh", "-c", script],
        capture_output=True, text=True, timeout=300, env=environment,
    )  # fmt: skip


def test_a_read_only_workdir_gets_one_line_naming_the_path(corpus, reference, tmp_path):
    workdir = tmp_path / "work"
    shutil.copytree(reference, workdir)
    before = fingerprints(workdir)
    python = sys.executable
    commands = [
        f"{python} -m pipeline.cli curate {corpus} -w {workdir} --engine threads",
        f"{python} -m pipeline.cli report -w {workdir}",
        f"{python} -m pipeline.cli survey {corpus} -w {workdir}",
    ]
    script = f"mount --bind {workdir} {workdir} && mount -o remount,bind,ro {workdir} && " + (
        " ; ".join(f"{c}; echo rc=$?" for c in commands)
    )

    ran = _in_own_mount_namespace(script)

    codes = [line for line in ran.stdout.splitlines() if line.startswith("rc=")]
    assert len(codes) == 3 and "rc=0" not in codes, ran.stdout + ran.stderr
    errors = [line for line in ran.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 3, ran.stderr
    assert all(str(workdir) in line and "Read-only file system" in line for line in errors)
    assert "Traceback" not in ran.stderr
    assert fingerprints(workdir) == before


def test_a_full_disk_is_one_line_naming_the_file_and_keeps_finished_shards(corpus, tmp_path):
    workdir, kept = tmp_path / "work", tmp_path / "kept"
    workdir.mkdir()
    script = (
        f"mount -t tmpfs -o size=140k none {workdir} && "
        f"{sys.executable} -m pipeline.cli curate {corpus} -w {workdir} --engine threads; "
        f"echo rc=$?; cp -a {workdir} {kept}"
    )

    ran = _in_own_mount_namespace(script)

    assert "rc=1" in ran.stdout, ran.stdout + ran.stderr
    error = next(line for line in ran.stderr.splitlines() if line.startswith("error:"))
    assert error.endswith(": No space left on device"), error
    assert error.startswith(f"error: cannot write {workdir}/"), error
    assert "Traceback" not in ran.stderr
    assert list(kept.rglob("*.tmp")) == []
    done = {k: v for k, v in fingerprints(kept).items() if k.startswith("standardise/")}
    assert 0 < len(done) < TONES + 1, done
    assert all(done.values()), "every shard marked done before the disk filled is intact"
