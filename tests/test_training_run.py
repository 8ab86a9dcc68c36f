"""A user trains a tiny FAMA-style model on a curated workdir, and the loop closes.

One story, shared by the tests below to keep NeMo start-ups few: the demo curation's shards
(with a stand-in translation per row, and one source relicensed non-commercial after
curation) are trained on with the tiny preset. The job starts on two CPU processes (DDP over
gloo, under torchrun), is killed with SIGKILL after its first checkpoint, and is started
again on one process: it resumes, finishes stage 1 (ASR), runs stage 2 (ASR+ST) from the
average of the last stage-1 checkpoints, and exports `model.nemo` with its model card. The
exported model then pseudo-labels a new curation as the pipeline's `nemo` ASR backend.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from typer.testing import CliRunner

pytest.importorskip("nemo.collections.asr")

from pipeline.config import load_config as load_curate_config
from pipeline.run.curate import ThreadExecutor, curate
from training.config import build_config
from training.data import DataError, RowFilter, TrainStream, iter_rows, shard_paths
from training.tokenizer import Tokenizer
from training.trainer import launch

REPO = Path(__file__).resolve().parents[1]
RELICENSED = "read-aloud"  # its rows say CC-BY-NC-4.0 in the copy: the policy refuses them
SETTINGS = {
    "preset": "tiny",
    "data": {"split": {"train": 0.7, "dev": 0.2, "test": 0.1}},
    "schedule": {"warmup_steps": 4},  # eight updates: the preset's 200-step warmup would idle
    "stage1": {"max_steps": 8},
    "stage2": {"max_steps": 4, "p_asr": 0.5},
    "checkpoint": {"every_steps": 2, "keep_last": 3, "average_last": 2},
    "validation": {"every_steps": 8, "batches": 1},
}


def _stand_in_translation(text: str, lang: str) -> dict:
    """What the LLM translate stage would add (no LLM here): the words reversed, tagged with
    the other demo language. Enough to exercise ST batches, not to learn translation."""
    return {"lang": "it" if lang == "en" else "en", "text": " ".join(reversed(text.split()))}


@pytest.fixture(scope="module")
def workdir(curated, tmp_path_factory) -> Path:
    source, _ = curated
    target = tmp_path_factory.mktemp("train-workdir")
    (target / "dataset" / "data").mkdir(parents=True)
    for path in shard_paths(source):
        table = pq.read_table(path)
        rows = table.select(["text", "lang", "source"]).to_pylist()
        translations = pa.array(
            [[_stand_in_translation(r["text"], r["lang"])] for r in rows],
            type=table.schema.field("translations").type,
        )
        licences = pa.array(
            [
                "CC-BY-NC-4.0" if r["source"] == RELICENSED else lic
                for r, lic in zip(rows, table.column("license").to_pylist())
            ]
        )
        table = table.set_column(
            table.schema.get_field_index("translations"), "translations", translations
        )
        table = table.set_column(table.schema.get_field_index("license"), "license", licences)
        pq.write_table(table, target / "dataset" / "data" / path.name)
    return target


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _kill_job(pid: int) -> None:
    """SIGKILL the CLI process, its torchrun and every rank (ranks run in their own process
    groups, so killing the group would leave them training)."""
    processes = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    for process in processes:
        process.kill()  # SIGKILL
    psutil.wait_procs(processes, timeout=60)


def _write(path: Path, settings: dict) -> Path:
    path.write_text(yaml.safe_dump(settings))
    return path


@pytest.fixture(scope="module")
def run(workdir, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("runs")
    out = folder / "run"
    ddp = _write(folder / "ddp.yaml", {**SETTINGS, "trainer": {"devices": 2}})
    command = [
        sys.executable,
        "-m",
        "pipeline.cli",
        "train",
        str(ddp),
        "--workdir",
        str(workdir),
        "--out",
        str(out),
        "--master-port",
        str(_free_port()),
    ]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    log = (folder / "ddp.log").open("w")
    job = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    checkpoints = out / "stage1" / "checkpoints"
    deadline = time.monotonic() + 900
    while not (checkpoints / "step0000002.ckpt").exists():
        if job.poll() is not None or time.monotonic() > deadline:
            _kill_job(job.pid)
            pytest.fail(
                f"the DDP job stopped before its first checkpoint:\n"
                f"{(folder / 'ddp.log').read_text()[-3000:]}"
            )
        time.sleep(0.1)
    size = -1
    while size != (checkpoints / "step0000002.ckpt").stat().st_size:  # written in full
        size = (checkpoints / "step0000002.ckpt").stat().st_size
        time.sleep(0.3)
    _kill_job(job.pid)  # mid-training
    single = _write(folder / "single.yaml", SETTINGS)
    from training.config import load_config

    launch(load_config(single), workdir, out)
    return out


def _starts(run: Path, stage: str) -> list[dict]:
    path = run / stage / "starts.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_a_killed_two_process_job_resumes_at_its_step(run):
    import torch

    starts = _starts(run, "stage1")
    assert starts[0] == {"step": 0, "world_size": 2}  # DDP over gloo, two ranks
    assert starts[-1]["world_size"] == 1 and 2 <= starts[-1]["step"] < 8  # not from step 0
    assert _starts(run, "stage2") == [{"step": 0, "world_size": 1}]  # no rank outlived the kill
    checkpoints = run / "stage1" / "checkpoints"
    assert not list(checkpoints.glob("*-v*.ckpt"))  # nor wrote beside the resumed job
    last = torch.load(checkpoints / "last.ckpt", weights_only=False)
    assert last["global_step"] == 8
    adam = last["optimizer_states"][0]["state"]
    assert {int(state["step"]) for state in adam.values()} == {8}  # Adam's moments continued


def _scalars(run: Path, stage: str, tag: str) -> list[tuple[int, float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    points = []
    for events in sorted((run / "tb" / stage).glob("version_*")):
        accumulator = EventAccumulator(str(events))
        accumulator.Reload()
        if tag in accumulator.Tags()["scalars"]:
            points += [(e.step, e.value) for e in accumulator.Scalars(tag)]
    return sorted(points)


def test_the_loss_falls_and_a_model_with_its_card_is_exported(run):
    losses = _scalars(run, "stage1", "train_loss")
    assert losses[0][0] == 0 and losses[-1][0] >= 5
    assert losses[-1][1] < 0.8 * losses[0][1], losses
    assert (run / "model.nemo").stat().st_size > 100_000
    card = (run / "MODEL_CARD.md").read_text()
    for expected in (
        "CC-BY-4.0",
        "vaglio demo corpus (espeak-ng), CC BY 4.0",
        "attribution",
        "| en |",
        "| it |",
        "1.0 · CTC(layer 2, transcript)",
    ):
        assert expected in card
    assert "read-aloud" not in card  # its rows were refused: no hours, no source
    data = json.loads((run / "data.json").read_text())
    assert data["rows_refused_by_policy"] > 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert {"en", "overall"} <= set(metrics["full"]["wer"])
    assert metrics["full"]["st"]  # BLEU and chrF per direction after stage 2


def test_stage_two_starts_from_the_stage_one_average_and_mixes_whole_batches(run, workdir):
    assert _starts(run, "stage2")[0]["step"] == 0
    assert json.loads((run / "stage2" / "done.json").read_text())["steps"] == 4
    config = build_config(SETTINGS)
    tokenizer = Tokenizer(run / "tokenizer" / "tokenizer.model")
    keep = RowFilter("train", config.data.split)
    stream = iter(TrainStream(shard_paths(workdir), keep, tokenizer, config.data, p_asr=0.5))
    tasks = [{e.task for e in next(stream).examples} for _ in range(12)]
    assert all(len(t) == 1 for t in tasks)  # one coin per batch: all ASR or all ST
    assert {"asr"} in tasks and {"st"} in tasks


def test_rows_too_long_for_the_decoder_are_an_error_not_an_endless_loop(run, workdir):
    config = build_config(SETTINGS)
    tokenizer = Tokenizer(run / "tokenizer" / "tokenizer.model")
    keep = RowFilter("train", config.data.split)
    stream = TrainStream(shard_paths(workdir), keep, tokenizer, config.data, max_tokens=1)
    with pytest.raises(DataError, match=r"decoding\.max_tokens"):
        next(iter(stream))


def test_rows_whose_licence_the_policy_refuses_never_reach_a_batch(workdir):
    config = build_config(SETTINGS)
    for split in ("train", "dev", "test"):
        keep = RowFilter(split, config.data.split)
        sources = {
            row["recording_id"].split("/")[0]
            for row in iter_rows(shard_paths(workdir), keep, audio=False)
        }
        assert RELICENSED not in sources


def test_eval_reports_wer_per_language_and_the_early_exit(run, workdir):
    from pipeline.cli import app

    result = CliRunner().invoke(
        app,
        [
            *("train", "eval", str(run), "--workdir", str(workdir)),
            *("--exit-layer", "2", "--split", "train", "--heads"),
        ],
    )
    assert result.exit_code == 0, result.output
    for label in ("model (beam 1)", "top CTC greedy", "early exit (layer 2)"):
        assert f"{label}\ttrain\ten\tWER" in result.output
    saved = json.loads((run / "eval-train.json").read_text())
    assert saved["early_exit"]["rtfx"] and saved["top_ctc"]["rtfx"] and saved["full"]["rtfx"]


def test_the_early_exit_does_less_work_than_the_top_head(run, workdir):
    """The exit skips the layers above it: fewer operations for the same CTC decoding (a
    count, not a timing, so the test holds on a busy machine; eval reports the speeds)."""
    from torch.utils.flop_counter import FlopCounterMode

    from training.data import eval_batches
    from training.model import FamaModel

    model = FamaModel.restore_from(str(run / "model.nemo"), map_location="cpu").eval()
    keep = RowFilter("train", build_config(SETTINGS).data.split)
    batch = next(eval_batches(shard_paths(workdir), keep, model.tokenizer, ("asr",), 2))
    flops = {}
    for name, decode in (("exit", model.decode_early_exit), ("top", model.decode_ctc)):
        with FlopCounterMode(display=False) as counter:
            decode(batch)
        flops[name] = counter.get_total_flops()
    assert 0 < flops["exit"] < 0.9 * flops["top"], flops


def test_eval_all_scores_every_checkpoint_and_the_run_has_its_curves(run, workdir):
    from pipeline.cli import app

    result = CliRunner().invoke(
        app, ["train", "eval", str(run), "--workdir", str(workdir), "--split", "train", "--all"]
    )
    assert result.exit_code == 0, result.output
    saved = json.loads((run / "eval-train-checkpoints.json").read_text())
    stages = [(r["stage"], r["step"]) for r in saved]
    assert stages == sorted(stages) and {s for s, _ in stages} == {"stage1", "stage2"}
    for stage, step in stages:
        assert f"{stage}\tstep {step}\tmodel (beam 1)\ttrain\ten\tWER" in result.output
    assert any(r["full"]["st"] for r in saved if r["stage"] == "stage2")  # BLEU per checkpoint
    curves = run / "curves.png"
    assert curves.stat().st_size > 10_000 and curves.read_bytes()[:4] == b"\x89PNG"


def test_the_exported_model_pseudo_labels_a_new_curation(run, demo_catalog, tmp_path):
    corpus = tmp_path / "corpus" / "new-radio"
    corpus.mkdir(parents=True)
    for name in ("en-03.wav", "it-04.wav"):
        shutil.copy(demo_catalog.parent / "open-radio" / name, corpus / name)
    catalog = tmp_path / "corpus" / "catalog.yaml"
    catalog.write_text(
        yaml.safe_dump(
            {
                "sources": [
                    {
                        "name": "new-radio",
                        "kind": "local",
                        "path": "new-radio",
                        "license": "CC BY 4.0",
                        "attribution": "a new corpus",
                        "languages": ["en", "it"],
                    }
                ]
            }
        )
    )
    model = str(run / "model.nemo")
    settings = _write(
        tmp_path / "curate.yaml",
        {"pass2": {"asr": {"backend": "nemo", "model": model, "batch_size": 4}}},
    )
    curate(catalog, tmp_path / "work", load_curate_config(settings), ThreadExecutor(1))
    table = pa.concat_tables(
        pq.read_table(p) for p in (tmp_path / "work" / "pass2").glob("*.parquet")
    )
    versions = [dict(v) for v in table.column("versions").to_pylist()]
    assert table.num_rows and all(model in v["pass2"] for v in versions)
