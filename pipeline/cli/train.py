"""`vaglio train`: train a FAMA-style ASR+ST model on a curated workdir, evaluate it, or draw
its learning-rate schedules. `training/` (and NeMo) is imported only when a command runs,
so the curation CLI starts as fast without it."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from pipeline.cli.common import app, console

EXAMPLES = """
Examples:

    vaglio train my.yaml --workdir demo-workdir --out runs/tiny     # train (or resume)
    vaglio train eval runs/tiny --exit-layer 2                       # score, + early exit
    vaglio train eval runs/tiny --split train --heads --all          # each head, each checkpoint
    vaglio train --plot-lr my.yaml                                   # lr.png of the warmups

`my.yaml` names a preset (tiny, small, medium) and overrides, e.g.
`preset: tiny` / `stage1: {max_steps: 200}`.
"""


def _fail(message: str) -> typer.Exit:
    console.print(f"[red]error:[/red] {escape(message)}")
    return typer.Exit(2)


def _training():
    """The training modules; NeMo itself loads later, where a model is built."""
    from pipeline.extras import MissingExtraError

    if importlib.util.find_spec("nemo") is None or importlib.util.find_spec("lightning") is None:
        missing = MissingExtraError("`vaglio train`", "nemo_toolkit", extra="train")
        raise _fail(str(missing))
    from training import config, evaluate, trainer

    return config, evaluate, trainer


@app.command("train", epilog=EXAMPLES)
def train_command(
    target: Annotated[
        str, typer.Argument(metavar="CONFIG | eval", help="A training config YAML, or `eval`.")
    ],
    run: Annotated[
        Path | None, typer.Argument(metavar="[RUN]", help="With `eval`: the run folder.")
    ] = None,
    workdir: Annotated[
        Path | None,
        typer.Option("--workdir", "-w", help="The curated workdir to train on (or score)."),
    ] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="The run folder.")] = None,
    plot_lr: Annotated[
        bool, typer.Option("--plot-lr", help="Draw CONFIG's warmups (and the others) to a PNG.")
    ] = False,
    split: Annotated[str, typer.Option(help="With `eval`: train, dev or test.")] = "test",
    beam: Annotated[int | None, typer.Option(help="With `eval`: beam size (1 = greedy).")] = None,
    exit_layer: Annotated[
        int | None,
        typer.Option("--exit-layer", help="With `eval`: also decode from this layer's CTC head."),
    ] = None,
    heads: Annotated[
        bool,
        typer.Option(help="With `eval`: score each head apart (decoder, top CTC, early exit)."),
    ] = False,
    every_checkpoint: Annotated[
        bool,
        typer.Option(
            "--all", help="With `eval`: score every kept checkpoint instead of model.nemo."
        ),
    ] = False,
    node_rank: Annotated[int, typer.Option(help="Multi-node: this node's rank.")] = 0,
    master_addr: Annotated[str, typer.Option(help="Multi-node: rank 0's address.")] = "127.0.0.1",
    master_port: Annotated[int, typer.Option(help="Multi-node: rank 0's port.")] = 29500,
) -> None:
    """Train a FAMA-style model (Conformer + Transformer, CTC + CE) on curated shards.

    Stage 1 trains ASR; stage 2 (when `stage2.max_steps` > 0) ASR + ST from the average of
    the last stage-1 checkpoints. A killed run resumes from its last checkpoint when started
    again with the same `--out`. The run folder gets `model.nemo`, `MODEL_CARD.md`,
    `metrics.json` and TensorBoard logs under `tb/`. More than one device or node trains
    under `torchrun` (DDP).
    """
    from training.config import ConfigError, load_config  # light: no NeMo

    if target == "eval":
        if run is None:
            raise _fail("`vaglio train eval` needs the run folder: vaglio train eval RUN")
        options = {"beam": beam, "exit_layer": exit_layer, "heads": heads}
        if every_checkpoint:
            _evaluate_checkpoints(run, workdir, split, options)
        else:
            _evaluate(run, workdir, split, options)
        return
    try:
        config = load_config(target)
    except ConfigError as error:
        raise _fail(str(error)) from None
    if plot_lr:
        from training.schedules import plot_schedules

        path = (out or Path(target).with_suffix("")).with_suffix(".lr.png")
        steps = max(config.schedule.warmup_steps * 3, config.stage1.max_steps)
        plot_schedules(config.optim.lr, config.schedule, steps, path)
        console.print(f"learning-rate schedules: {path}")
        return
    if workdir is None or out is None:
        raise _fail("training needs --workdir (the curated workdir) and --out (the run folder)")
    _, _, trainer = _training()
    from training.data import DataError

    try:
        model = trainer.launch(config, workdir, out, node_rank, master_addr, master_port)
    except (ConfigError, DataError, ValueError) as error:
        raise _fail(str(error)) from None
    if node_rank:  # node 0 averages, exports and scores the model
        console.print(f"node {node_rank}: done; node 0 writes {model}")
        return
    console.print(f"model: {model}\nmodel card: {out / 'MODEL_CARD.md'}")
    _print_metrics(json.loads((out / "metrics.json").read_text(encoding="utf-8")))


def _scoring_workdir(run: Path, workdir: Path | None) -> Path:
    """The workdir to score on: the one given, else the one the run was trained on."""
    if workdir is not None:
        return workdir
    trained_on = json.loads((run / "data.json").read_text(encoding="utf-8")).get("workdir")
    if trained_on is None:
        raise _fail("give --workdir: the curated workdir to score on")
    return Path(trained_on)


def _evaluate(run: Path, workdir: Path | None, split: str, options: dict) -> None:
    config_module, evaluate, _ = _training()
    if not (run / "model.nemo").exists():
        raise _fail(f"{run}: no model.nemo; train it first (vaglio train CONFIG --out {run})")
    workdir = _scoring_workdir(run, workdir)
    from training.model import FamaModel

    config = config_module.load_config(run / "config.yaml")
    model = FamaModel.restore_from(str(run / "model.nemo"), map_location="cpu")
    try:
        result = evaluate.evaluate_model(model, config, workdir, split, **options)
    except ValueError as error:
        raise _fail(str(error)) from None
    path = evaluate.write_metrics(result, run / f"eval-{split}.json")
    _print_metrics(result)
    console.print(f"metrics: {path}")


def _evaluate_checkpoints(run: Path, workdir: Path | None, split: str, options: dict) -> None:
    config_module, evaluate, _ = _training()
    if not (run / "config.yaml").exists():
        raise _fail(f"{run}: not a run folder (no config.yaml)")
    workdir = _scoring_workdir(run, workdir)
    config = config_module.load_config(run / "config.yaml")
    try:
        results = evaluate.evaluate_checkpoints(run, config, workdir, split, **options)
    except ValueError as error:
        raise _fail(str(error)) from None
    if not results:
        raise _fail(f"{run}: no stepNNNNNNN.ckpt checkpoints to score")
    for result in results:
        _print_metrics(result, f"{result['stage']}\tstep {result['step']}\t")
    path = evaluate.write_metrics(results, run / f"eval-{split}-checkpoints.json")
    console.print(f"metrics: {path}")


DECODER_LABELS = {
    "full": "model",
    "decoder_greedy": "decoder greedy",
    "top_ctc": "top CTC greedy",
    "early_exit": "early exit",
}


def _print_metrics(result: dict, prefix: str = "") -> None:
    """WER per language (and BLEU/chrF per direction) of each decoder that was scored."""
    for name, label in DECODER_LABELS.items():
        if name not in result:
            continue
        part = result[name]
        if name == "full" and result.get("beam"):
            label = f"model (beam {result['beam']})"
        elif name == "early_exit":
            label = f"early exit (layer {part['layer']})"
        rtfx = f"{part['rtfx']:.1f}x real time" if part.get("rtfx") else ""
        for lang, score in part["wer"].items():
            wer = "-" if score["wer"] is None else f"{score['wer']:.3f}"
            sys.stdout.write(
                f"{prefix}{label}\t{result['split']}\t{lang}\tWER {wer}\t"
                f"{score['utterances']} utt\t{rtfx}\n"
            )
        for direction, score in part["st"].items():
            sys.stdout.write(
                f"{prefix}{label}\t{result['split']}\t{direction}\tBLEU {score['bleu']:.1f}"
                f"\tchrF {score['chrf']:.1f}\t{score['segments']} seg\n"
            )
