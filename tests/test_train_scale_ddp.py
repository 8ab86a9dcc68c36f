"""Training at scale with the model: its loss terms against PyTorch's own, losses normalised by
every rank's tokens, and a two-process job (gloo) that is prepared once, killed and resumed.

The story: a tiny model trains on made-up shards (`train_scale_data`) on two CPU processes
with two data-loader workers each and two batches per update, as two "nodes" of one process
each: node 1 is started first and waits, writing nothing, until node 0 has prepared the run.
Both are SIGKILLed after a checkpoint, and the job is started again as one node of two
processes. Each rank traces the rows of every batch and the weights it starts from, so the
test sees that before and after the kill each rank trained on exactly the rows its stream
serves when read without a stop, and that stage 2 starts, on both ranks, from the average of
stage 1's last checkpoints, the final step's among them.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from itertools import islice
from pathlib import Path

import psutil
import pytest
import torch
import torch.nn.functional as F
import yaml
from train_scale_data import SPLIT, shards_tokenizer, write_shards

pytest.importorskip("nemo.collections.asr")

from training.averaging import average_checkpoints, step_checkpoints, weights_digest
from training.config import build_config, load_config
from training.data import RowFilter, TrainStream, shard_paths
from training.model import FamaModel
from training.trainer import model_config, train_stream

REPO = Path(__file__).resolve().parents[1]
SETTINGS = {
    "preset": "tiny",
    "data": {"split": SPLIT, "shuffle_buffer": 6, "num_workers": 2},
    "stage1": {"max_steps": 5},  # checkpoints at 2, 4 and, the last step, 5
    "stage2": {"max_steps": 2, "p_asr": 0.5},
    "checkpoint": {"every_steps": 2, "keep_last": 3, "average_last": 2},
    "validation": {"every_steps": 4, "batches": 1},
    "decoding": {"max_tokens": 48},  # an untrained decoder runs to the limit
    "trainer": {"accumulate_grad_batches": 2, "trace": True},
}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return write_shards(tmp_path_factory.mktemp("ddp-workdir"))


@pytest.fixture(scope="module")
def tokenizer_path(workdir, tmp_path_factory) -> Path:
    return shards_tokenizer(workdir, tmp_path_factory.mktemp("tok") / "tokenizer.model").path


def _model(settings: dict, tokenizer: Path) -> FamaModel:
    torch.manual_seed(0)
    return FamaModel(model_config(build_config(settings), tokenizer))


def _batches(workdir: Path, tokenizer: Path, count: int) -> list:
    from training.tokenizer import Tokenizer

    config = build_config(SETTINGS)
    keep = RowFilter("train", SPLIT)
    stream = TrainStream(shard_paths(workdir), keep, Tokenizer(tokenizer), config.data, p_asr=0.5)
    return [batch for batch, _ in zip(stream, range(count))]


def _ctc(log_probs, lengths, targets, target_len) -> torch.Tensor:
    """PyTorch's CTC, summed over the batch and divided by the target tokens (blank: the last)."""
    blank = log_probs.shape[-1] - 1
    total = F.ctc_loss(
        log_probs.transpose(0, 1), targets, lengths, target_len, blank=blank, reduction="sum"
    )
    return total / target_len.sum()


def test_each_loss_term_is_pytorchs_own_summed_and_divided_by_its_tokens(workdir, tokenizer_path):
    model = _model(SETTINGS, tokenizer_path).eval()
    smoothing = build_config(SETTINGS).loss.label_smoothing
    assert smoothing > 0
    with torch.no_grad():
        for batch in _batches(workdir, tokenizer_path, 3):
            losses = model.losses(batch)
            encoded, lengths, inter = model.encode(batch.audio, batch.audio_len)

            inter_log_probs = model.inter_ctc(inter).log_softmax(-1)
            ctc_inter = _ctc(inter_log_probs, lengths, batch.transcript, batch.transcript_len)
            top_log_probs = model.top_ctc_log_probs(encoded, batch.tag)
            ctc_top = _ctc(top_log_probs, lengths, batch.target, batch.target_len)
            frames = torch.arange(encoded.shape[1])
            hidden = model.decoder(
                input_ids=batch.decoder_in,
                decoder_mask=(batch.decoder_in != model.tokenizer.pad_id).float(),
                encoder_embeddings=encoded,
                encoder_mask=(frames[None, :] < lengths[:, None]).float(),
            )
            logits = model.head(hidden_states=hidden)
            labels = batch.decoder_out
            ce = F.cross_entropy(
                logits.reshape(-1, logits.shape[-1]),
                labels.reshape(-1),
                ignore_index=model.tokenizer.pad_id,
                label_smoothing=smoothing,
                reduction="sum",
            )
            # the labels are the target and its end of sentence, never the language tag
            counted = int((labels != model.tokenizer.pad_id).sum())
            assert counted == int(batch.target_len.sum()) + len(batch.examples)
            assert float(losses["ctc_inter"]) == pytest.approx(float(ctc_inter), rel=1e-5)
            assert float(losses["ctc_top"]) == pytest.approx(float(ctc_top), rel=1e-5)
            assert float(losses["ce"]) == pytest.approx(float(ce) / counted, rel=1e-5)


def _torchrun(*args: str, nproc: int = 2) -> list[str]:
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent))
    return [
        torchrun,
        f"--nproc-per-node={nproc}",
        "--master-addr=127.0.0.1",
        f"--master-port={_free_port()}",
        *args,
    ]


def _env() -> dict:
    path = os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])
    return {**os.environ, "PYTHONPATH": path}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_losses_are_normalised_by_every_ranks_tokens(workdir, tokenizer_path, tmp_path):
    model = _model(SETTINGS, tokenizer_path).train()
    first, *others = _batches(workdir, tokenizer_path, 6)
    # batches of unequal token counts, else per-rank and all-rank counts would agree
    second = next(b for b in others if len(b.examples) != len(first.examples))
    batches = [first, second]
    tokens = [model.loss_tokens(b).double() for b in batches]
    setup = {
        "settings": SETTINGS,
        "tokenizer": str(tokenizer_path),
        "state": model.state_dict(),
        "batches": batches,
    }
    torch.save(setup, tmp_path / "setup.pt")
    script = str(REPO / "tests" / "train_scale_losses.py")
    done = subprocess.run(
        _torchrun(script, str(tmp_path)), env=_env(), capture_output=True, text=True, timeout=900
    )
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in (0, 1)]
    # one process, no process group: each batch's sums, and the loss DDP should follow
    weights = build_config(SETTINGS).loss
    total_tokens = tokens[0] + tokens[1]
    model.zero_grad()
    total = 0.0
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as torchrun's ranks: the sums' order is the same
    for rank, (batch, count) in enumerate(zip(batches, tokens)):
        torch.manual_seed(rank)  # the same dither as that rank's
        alone = model.losses(batch)
        for index, term in enumerate(("ctc_inter", "ce", "ctc_top")):
            term_sum = alone[term].double() * count[index]
            expected = term_sum * 2 / total_tokens[index]
            obtained = float(ranks[rank]["losses"][term])
            assert obtained == pytest.approx(float(expected.detach()), rel=1e-5)
            total = total + getattr(weights, term) * term_sum / total_tokens[index]
    total.backward()
    torch.set_num_threads(threads)
    for name, parameter in model.named_parameters():
        if parameter.grad is not None:
            torch.testing.assert_close(
                ranks[0]["grads"][name], parameter.grad, rtol=1e-4, atol=1e-6
            )


def _trace(run: Path, stage: str, rank: int) -> list[dict]:
    path = run / stage / "trace" / f"rank{rank}.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def _legs(run: Path, stage: str, rank: int) -> list[tuple[int, str, list]]:
    """(start step, start weights' digest, batch rows in order) of each attempt."""
    legs: list = []
    for line in _trace(run, stage, rank):
        if "weights" in line:
            legs.append((line["start"], line["weights"], []))
        else:
            legs[-1][2].append(line["rows"])
    return legs


def _cli(config: Path, workdir: Path, out: Path, log: Path, *options: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "pipeline.cli", "train", str(config)]
    command += ["--workdir", str(workdir), "--out", str(out), *options]
    return subprocess.Popen(command, env=_env(), stdout=log.open("w"), stderr=subprocess.STDOUT)


def _wait(job: subprocess.Popen, log: Path, until, seconds: float = 900) -> None:
    deadline = time.monotonic() + seconds
    while not until():
        if job.poll() is not None or time.monotonic() > deadline:
            _kill_jobs(job)
            pytest.fail(f"the job stopped or stalled:\n{log.read_text()[-3000:]}")
        time.sleep(0.1)


def _kill_jobs(*jobs: subprocess.Popen) -> None:
    """SIGKILL each CLI, its torchrun and every rank (they run in process groups of their own)."""
    processes = []
    for job in jobs:
        with contextlib.suppress(psutil.NoSuchProcess):
            parent = psutil.Process(job.pid)
            processes += [parent, *parent.children(recursive=True)]
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.send_signal(signal.SIGKILL)
    psutil.wait_procs(processes, timeout=60)


@pytest.fixture(scope="module")
def run(workdir, tmp_path_factory) -> Path:
    """Two "nodes" of one process each, node 1 started first; killed after the step-2
    checkpoint; then resumed as one node of two processes, to the end."""
    folder = tmp_path_factory.mktemp("ddp-runs")
    nodes, one_node = folder / "nodes.yaml", folder / "one-node.yaml"
    trainer = SETTINGS["trainer"]
    nodes.write_text(yaml.safe_dump({**SETTINGS, "trainer": {**trainer, "num_nodes": 2}}))
    one_node.write_text(yaml.safe_dump({**SETTINGS, "trainer": {**trainer, "devices": 2}}))
    out = folder / "run"
    port = str(_free_port())
    logs = [folder / "node0.log", folder / "node1.log"]
    node1 = _cli(nodes, workdir, out, logs[1], "--node-rank", "1", "--master-port", port)
    _wait(node1, logs[1], lambda: "waiting for node 0" in logs[1].read_text())
    time.sleep(2)
    assert not out.exists()  # node 1 writes nothing: it waits for node 0
    node0 = _cli(nodes, workdir, out, logs[0], "--node-rank", "0", "--master-port", port)
    checkpoint = out / "stage1" / "checkpoints" / "step0000002.ckpt"
    _wait(node0, logs[0], checkpoint.exists)
    size = -1
    while size != checkpoint.stat().st_size:  # written in full
        size = checkpoint.stat().st_size
        time.sleep(0.3)
    _kill_jobs(node0, node1)  # mid-stage
    assert json.loads((out / "prepared.json").read_text())["pid"] == node0.pid  # node 0 alone
    log = folder / "again.log"
    again = _cli(one_node, workdir, out, log, "--master-port", str(_free_port()))
    assert again.wait(timeout=3600) == 0, log.read_text()[-3000:]
    return out


def _stream(run: Path, workdir: Path, p_asr: float, rank: int, count: int, monkeypatch) -> list:
    """The rows of the first `count` batches rank `rank` of two reads, as if never stopped."""
    monkeypatch.setenv("RANK", str(rank))
    monkeypatch.setenv("WORLD_SIZE", "2")
    config = load_config(run / "config.yaml")
    stream = train_stream(config, workdir, run, p_asr)
    workers = config.data.num_workers
    loader = torch.utils.data.DataLoader(stream, batch_size=None, num_workers=workers)
    return [[[e.segment_id, e.target_lang] for e in b.examples] for b in islice(loader, count)]


def test_a_killed_job_resumes_on_the_rows_it_would_have_trained_on(run, workdir, monkeypatch):
    accumulate = SETTINGS["trainer"]["accumulate_grad_batches"]
    resumed_mid_stage = False
    for stage, p_asr in (("stage1", 1.0), ("stage2", SETTINGS["stage2"]["p_asr"])):
        batches = SETTINGS[stage]["max_steps"] * accumulate
        for rank in (0, 1):
            uninterrupted = _stream(run, workdir, p_asr, rank, batches, monkeypatch)
            legs = _legs(run, stage, rank)
            for start, _, rows in legs:
                resumed_mid_stage |= start > 0
                first = start * accumulate  # the batches before the update it resumed at
                assert rows == uninterrupted[first : first + len(rows)], (stage, rank, start)
            start, _, rows = legs[-1]
            assert start * accumulate + len(rows) == batches  # and it went on to the end
    assert resumed_mid_stage
    starts = [json.loads(line) for line in (run / "stage1" / "starts.jsonl").open()]
    assert [s["world_size"] for s in starts] == [2, 2] and starts[1]["step"] >= 2


def test_stage_two_starts_on_every_rank_from_the_average_ending_at_the_last_step(run):
    stage1 = step_checkpoints(run / "stage1" / "checkpoints")
    assert [p.name for p in stage1] == [f"step{s:07d}.ckpt" for s in (2, 4, 5)]
    average = weights_digest(average_checkpoints(stage1[-2:]))
    for rank in (0, 1):
        [(start, weights, _)] = _legs(run, "stage2", rank)
        assert (start, weights) == (0, average)
    assert (run / "model.nemo").exists()  # rank 0 exported alone, the other rank gone


def test_the_logs_show_padding_and_sharded_validation(run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tags: set[str] = set()
    for events in (run / "tb" / "stage1").glob("version_*"):
        accumulator = EventAccumulator(str(events))
        accumulator.Reload()
        tags |= set(accumulator.Tags()["scalars"])
    assert {"train_padding", "val_loss"} <= tags
    assert {"val_wer_en", "val_wer_it"} & tags
