"""The exported model: `RUN/model.nemo`, its scores, and a model card that carries the
training data's obligations.

The card is generated from the rows training could use (`RUN/data.json`, read from the
shards' own `license`, `attribution` and `obligations` columns), so a model trained on
CC-BY speech names its sources and attributions the way the curated dataset's card does.
"""

from __future__ import annotations

import json
from pathlib import Path

from training.config import TrainConfig
from training.evaluate import evaluate_model, write_metrics


def _hours(value: float) -> str:
    return f"{value:.3f}"


def _table(rows: list[tuple], header: tuple) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return lines


def model_card(config: TrainConfig, data: dict, metrics: dict, parameters: int) -> str:
    m = config.model
    lines = [
        "# FAMA-style ASR + ST model trained with vaglio",
        "",
        f"Preset `{config.preset}`: Conformer encoder ({m.encoder_layers} layers) and "
        f"Transformer decoder ({m.decoder_layers} layers), d_model {m.d_model}, FFN {m.ffn_dim}, "
        f"{m.heads} heads; {parameters:,} parameters. Load it with "
        "`nemo.collections.asr.models.ASRModel.restore_from('model.nemo')` (with `training` "
        "importable), or use it as vaglio's ASR backend: `asr: {backend: nemo, model: "
        "RUN/model.nemo}`.",
        "",
        "## Training data",
        "",
        "Only rows that the curation kept and whose licence the policy in force allowed "
        f"({data['rows_refused_by_policy']} rows refused at training time).",
        "",
        *_table(
            [(lang, _hours(h)) for lang, h in data["hours_per_language"].items()],
            ("language", "hours"),
        ),
        "",
        *_table(
            [(split, _hours(h)) for split, h in data["hours_per_split"].items()],
            ("split (by recording)", "hours"),
        ),
        "",
        *_table(
            [(lic, _hours(h)) for lic, h in data["hours_per_licence"].items()], ("licence", "hours")
        ),
        "",
        *_table(
            [(src, ", ".join(lic)) for src, lic in data["sources"].items()], ("source", "licences")
        ),
        "",
        "Translation pairs: "
        + (", ".join(f"{k}: {v}" for k, v in data["translation_pairs"].items()) or "none"),
        "",
        "### Obligations the training data carries",
        "",
        *[f"- {o}" for o in data["obligations"]],
        "",
        "### Attributions",
        "",
        *[f"- {a}" for a in data["attributions"]],
        "",
        "## Recipe",
        "",
        f"- Loss: {config.loss.ctc_inter} · CTC(layer {m.inter_ctc_layer}, transcript) + "
        f"{config.loss.ce} · label-smoothed ({config.loss.label_smoothing}) CE + "
        f"{config.loss.ctc_top} · CTC(top + target-language tag, target); each term summed "
        "and divided by its target tokens.",
        f"- Adam {tuple(config.optim.betas)}, weight decay {config.optim.weight_decay}, "
        f"clip {config.optim.clip}; peak lr {config.optim.lr}, `{config.schedule.name}` warmup "
        f"over {config.schedule.warmup_steps} steps, then inverse square root.",
        f"- Stage 1 (ASR): {config.stage1.max_steps} steps. Stage 2 (ASR+ST, p_asr "
        f"{config.stage2.p_asr}): {config.stage2.max_steps} steps. Final weights: the average "
        f"of the last {config.checkpoint.average_last} checkpoints.",
        "",
        "## Metrics",
        "",
        f"Split `{metrics['split']}`, beam {metrics['beam']}:",
        "",
        *_table(
            [
                (lang, s["utterances"], "-" if s["wer"] is None else f"{s['wer']:.3f}")
                for lang, s in metrics["full"]["wer"].items()
            ],
            ("language", "utterances", "WER"),
        ),
        "",
        *(
            _table(
                [
                    (d, s["segments"], f"{s['bleu']:.1f}", f"{s['chrf']:.1f}")
                    for d, s in metrics["full"]["st"].items()
                ],
                ("direction", "segments", "BLEU", "chrF"),
            )
            if metrics["full"]["st"]
            else []
        ),
        "",
    ]
    return "\n".join(lines)


def evaluation_split(data: dict) -> str:
    """The held-out split to score on: test, else dev, else (a smoke run) train."""
    hours = data["hours_per_split"]
    return next((s for s in ("test", "dev") if hours.get(s)), "train")


def export_run(model, config: TrainConfig, workdir: Path, run: Path) -> Path:
    """Save `model` as RUN/model.nemo, score it, and write RUN/metrics.json and MODEL_CARD.md."""
    from training.model import parameter_count

    target = run / "model.nemo"
    model.save_to(str(target))
    data = json.loads((run / "data.json").read_text(encoding="utf-8"))
    metrics = evaluate_model(model, config, workdir, split=evaluation_split(data))
    write_metrics(metrics, run / "metrics.json")
    card = model_card(config, data, metrics, parameter_count(model))
    (run / "MODEL_CARD.md").write_text(card, encoding="utf-8")
    return target
