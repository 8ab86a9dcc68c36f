"""Training at scale, the parts that need no model: who reads which rows, the stream's position
and exact resume, bucketing, sharded validation, the average of checkpoints, and the one
preparation of a run that the other nodes wait for.

The shards are made up (`train_scale_data`): 4 files × 3 row groups, rows of every split.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
from collections import Counter
from itertools import islice
from pathlib import Path

import pytest
import torch
from train_scale_data import SPLIT, shards_tokenizer, write_shards

from training.averaging import average_checkpoints, average_last
from training.config import ConfigError, build_config
from training.data import EvalSet, RowFilter, TrainStream, iter_rows, shard_paths
from training.tokenizer import Tokenizer
from training.trainer import RunNotPrepared, prepare_run, wait_for_preparation

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return write_shards(tmp_path_factory.mktemp("scale-workdir"))


@pytest.fixture(scope="module")
def tokenizer(workdir, tmp_path_factory) -> Tokenizer:
    return shards_tokenizer(workdir, tmp_path_factory.mktemp("tok") / "tokenizer.model")


def _config(**data):
    return build_config({"preset": "tiny", "data": {"split": SPLIT, **data}})


def _rows(workdir: Path, split: str) -> list[str]:
    keep = RowFilter(split, SPLIT)
    return sorted(r["segment_id"] for r in iter_rows(shard_paths(workdir), keep, audio=False))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_ranks_of_two_spawned_workers_see_every_row_once_per_epoch(
    workdir, tokenizer, tmp_path
):
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent))
    command = [
        torchrun,
        "--nproc-per-node=2",
        "--master-addr=127.0.0.1",
        f"--master-port={_free_port()}",
        str(REPO / "tests" / "train_scale_readers.py"),
        str(workdir),
        str(tokenizer.path),
        str(tmp_path),
    ]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    batches = [
        b for rank in (0, 1) for b in json.loads((tmp_path / f"rank{rank}.json").read_text())
    ]
    assert {b["stream"]["reader"] for b in batches} == {0, 1, 2, 3}  # rank × worker
    assert {b["stream"]["readers"] for b in batches} == {4}
    first = Counter(row for b in batches if b["stream"]["epoch"] == 0 for row in b["rows"])
    assert sorted(first) == _rows(workdir, "train")  # every training row...
    assert set(first.values()) == {1}  # ... once
    units = {}  # each row group of epoch 0 was read by one reader
    for b in batches:
        if b["stream"]["epoch"] == 0:
            for unit in b["stream"]["window"]:
                units.setdefault(tuple(unit), set()).add(b["stream"]["reader"])
    assert units and all(len(readers) == 1 for readers in units.values())


def _resume_state(batches, consumed: int) -> dict:
    """What the trainer saves after `consumed` batches: each reader's last position."""
    states = {b.stream["reader"]: b.stream for b in batches[:consumed]}
    return {"readers": batches[0].stream["readers"], "consumed": consumed, "states": states}


def _ids(batch) -> list[str]:
    return [f"{e.segment_id}>{e.target_lang}" for e in batch.examples]


def _loader(stream, workers: int):
    return torch.utils.data.DataLoader(stream, batch_size=None, num_workers=workers)


def test_a_resumed_stream_serves_what_the_uninterrupted_one_would(workdir, tokenizer):
    config = _config(shuffle_buffer=6)
    keep = RowFilter("train", SPLIT)

    def stream(resume=None):
        paths = shard_paths(workdir)
        return TrainStream(paths, keep, tokenizer, config.data, p_asr=0.5, resume=resume)

    whole = list(islice(_loader(stream(), 2), 40))  # two epochs and more
    assert max(b.stream["epoch"] for b in whole) >= 1
    for stop in (7, 20):  # odd: the resumed loader's worker 0 plays worker 1's part
        resumed = list(islice(_loader(stream(_resume_state(whole, stop)), 2), 40 - stop))
        assert [_ids(b) for b in resumed] == [_ids(b) for b in whole[stop:]]


def test_a_stream_resumed_on_fewer_readers_skips_nothing(workdir, tokenizer):
    config = _config(shuffle_buffer=6)
    keep = RowFilter("train", SPLIT)
    paths = shard_paths(workdir)
    before = list(islice(_loader(TrainStream(paths, keep, tokenizer, config.data), 2), 5))
    resume = _resume_state(before, 5)
    after = TrainStream(paths, keep, tokenizer, config.data, resume=resume)
    rest = []
    for batch in after:  # one reader now
        if batch.stream["epoch"] > 0:
            break
        rest += [e.segment_id for e in batch.examples]
    seen = [e.segment_id for b in before for e in b.examples] + rest
    assert sorted(set(seen)) == _rows(workdir, "train")


def test_bucketing_by_duration_wastes_less_on_padding(workdir, tokenizer):
    keep = RowFilter("train", SPLIT)

    def padding(bucket: bool) -> float:
        config = _config(shuffle_buffer=30, bucket=bucket)
        stream = TrainStream(shard_paths(workdir), keep, tokenizer, config.data)
        batches = [b for b in islice(stream, 60) if b.stream["epoch"] < 2]
        return sum(b.audio.numel() - int(b.audio_len.sum()) for b in batches) / sum(
            b.audio.numel() for b in batches
        )

    assert padding(bucket=True) < 0.6 * padding(bucket=False)


def test_validation_is_shared_out_between_ranks(workdir, tokenizer, monkeypatch):
    dev = RowFilter("dev", SPLIT)
    seen = []
    for rank in (0, 1):
        monkeypatch.setenv("RANK", str(rank))
        monkeypatch.setenv("WORLD_SIZE", "2")
        shard = EvalSet(shard_paths(workdir), dev, tokenizer, ("asr",), batch_size=4)
        seen.append([e.segment_id for b in shard for e in b.examples])
    assert seen[0] and seen[1] and not set(seen[0]) & set(seen[1])
    assert sorted(seen[0] + seen[1]) == _rows(workdir, "dev")


def test_average_checkpoints_is_the_mean_and_keeps_the_newest_count(tmp_path):
    for step, w in zip((10, 20, 30), ([1.0, 2.0, 4.0], [3.0, 2.0, 0.0], [8.0, 5.0, 2.0])):
        state = {"w": torch.tensor(w), "count": torch.tensor(step)}
        torch.save({"state_dict": state, "optimizer_states": []}, tmp_path / f"step{step:07d}.ckpt")
    averaged, used = average_last(tmp_path, 2)
    assert [p.name for p in used] == ["step0000020.ckpt", "step0000030.ckpt"]
    assert averaged["w"].tolist() == [5.5, 3.5, 1.0]  # (3+8)/2, (2+5)/2, (0+2)/2
    assert averaged["w"].dtype == torch.float32
    assert averaged["count"].item() == 30  # a count is not averaged: the newest
    three = average_checkpoints(sorted(tmp_path.glob("*.ckpt")))
    assert three["w"].tolist() == pytest.approx([4.0, 3.0, 2.0])


def test_average_last_above_keep_last_is_a_config_error():
    with pytest.raises(ConfigError, match=r"average_last \(5\) must not exceed keep_last \(3\)"):
        build_config({"preset": "tiny", "checkpoint": {"keep_last": 3, "average_last": 5}})


def test_a_prepared_run_is_marked_ready_and_refuses_changed_rows(workdir, tmp_path):
    data = tmp_path / "work"
    shutil.copytree(workdir, data)
    config = _config()
    run = tmp_path / "run"
    prepare_run(config, data, run)
    marker = json.loads((run / "prepared.json").read_text())
    assert marker["pid"] == os.getpid()
    units = json.loads((run / "units.json").read_text())
    assert sum(kept for _, _, kept in units["train"]) == len(_rows(data, "train"))
    assert not [p.name for p in run.rglob(".*")]  # no temporary left behind
    wait_for_preparation(config, run)  # ready: returns at once
    shutil.copy(shard_paths(data)[0], data / "dataset" / "data" / "more.parquet")
    with pytest.raises(ConfigError, match="rows this run trains on changed"):
        prepare_run(config, data, run)
    assert not (run / "prepared.json").exists()  # a failed preparation is not ready


def test_another_node_waits_for_the_ready_marker_then_gives_up_clearly(workdir, tmp_path):
    config = build_config(
        {"preset": "tiny", "data": {"split": SPLIT}, "trainer": {"prepare_timeout": 60.0}}
    )
    run = tmp_path / "run"
    writer = threading.Timer(1.0, prepare_run, (config, workdir, run))
    writer.start()
    wait_for_preparation(config, run, poll=0.2)  # returns once node 0 is done
    writer.join()
    assert (run / "prepared.json").exists()
    other = build_config(  # a node given another recipe: that run is never ready for it
        {
            "preset": "tiny",
            "data": {"split": SPLIT},
            "stage1": {"max_steps": 3},
            "trainer": {"prepare_timeout": 0.5},
        }
    )
    with pytest.raises(RunNotPrepared, match=r"node 0 has not prepared this run .* in 0.5 s"):
        wait_for_preparation(other, run, poll=0.1)
