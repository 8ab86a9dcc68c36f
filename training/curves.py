"""Learning curves of a run folder, drawn from its TensorBoard logs into RUN/curves.png.

The logs are what Lightning already writes on rank 0 while training, so the picture costs
nothing during the run and can be redrawn for a run that was killed. Stage 2 continues the
step axis where stage 1 ended (a dotted line marks the start of stage 2), so one picture
shows the whole run: train loss, dev loss, dev WER per language and, in stage 2, dev BLEU
per direction.
"""

from __future__ import annotations

from pathlib import Path

STAGES = ("stage1", "stage2")
PANELS = (
    ("train loss", ("train_loss",)),
    ("dev loss", ("val_loss",)),
    ("dev WER", ("val_wer_",)),
    ("dev BLEU", ("val_bleu_",)),
)
"""(title, tag prefixes): a tag is drawn in the first panel whose prefix it starts with."""


def read_scalars(run: Path) -> dict[str, dict[str, list[tuple[int, float]]]]:
    """stage → tag → [(step, value)] from every TensorBoard event file of the run; a step
    logged twice (a resumed stage) keeps its last value."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    scalars: dict[str, dict[str, list[tuple[int, float]]]] = {}
    for stage in STAGES:
        by_tag: dict[str, dict[int, float]] = {}
        for version in sorted((run / "tb" / stage).glob("version_*")):
            accumulator = EventAccumulator(str(version), size_guidance={"scalars": 0})
            accumulator.Reload()
            for tag in accumulator.Tags()["scalars"]:
                for event in accumulator.Scalars(tag):
                    by_tag.setdefault(tag, {})[event.step] = event.value
        if by_tag:
            scalars[stage] = {tag: sorted(points.items()) for tag, points in by_tag.items()}
    return scalars


def _continued(scalars: dict) -> tuple[dict[str, list[tuple[int, float]]], int | None]:
    """One series per tag over both stages, stage 2's steps shifted past stage 1's last."""
    series: dict[str, list[tuple[int, float]]] = {}
    offset, boundary = 0, None
    for stage in STAGES:
        tags = scalars.get(stage)
        if not tags:
            continue
        if stage != STAGES[0] and offset:
            boundary = offset
        for tag, points in tags.items():
            series.setdefault(tag, []).extend((step + offset, value) for step, value in points)
        offset += max(step for points in tags.values() for step, _ in points)
    return series, boundary


def draw_curves(run: Path) -> Path | None:
    """Draw RUN/curves.png; None when the run has logged nothing yet."""
    scalars = read_scalars(run)
    if not scalars:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series, boundary = _continued(scalars)
    figure, axes = plt.subplots(2, 2, figsize=(11, 7), sharex=True)
    for axis, (title, prefixes) in zip(axes.flat, PANELS):
        tags = sorted(t for t in series if t.startswith(prefixes))
        for tag in tags:
            steps, values = zip(*series[tag])
            label = tag.removeprefix("val_").removeprefix("train_")
            axis.plot(steps, values, marker="." if len(steps) < 30 else None, label=label)
        if boundary is not None:
            axis.axvline(boundary, color="grey", linestyle=":", linewidth=1)
        axis.set_title(title if tags else f"{title} (not logged)")
        axis.grid(alpha=0.3)
        if tags:
            axis.legend(fontsize=8)
    for axis in axes[-1]:
        axis.set_xlabel("update" + (" (stage 2 after the dotted line)" if boundary else ""))
    figure.suptitle(f"{run.name}: learning curves")
    figure.tight_layout()
    path = run / "curves.png"
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
