"""Translate kept rows into each source's target languages with an LLM, behind guards.

Off unless `translate.llm` names a model and `translate.targets` gives languages, per source
name or for every source (`"*"`). Each row gets `translations`: one entry per target (its own
language excepted) with the text, or the reason it was refused (`pipeline/text/translation.py`),
the model's cleaned answer, and the QE score where a QE model is configured.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import pyarrow as pa

from manifests.schemas import TRANSLATED, with_versions
from pipeline.llm import LlmConfig
from pipeline.stage import ShardContext, StageConfigError
from pipeline.stages.llm_stage import LlmStage
from pipeline.text.translation import (
    QualityEstimator,
    TranslationConfig,
    load_quality_estimator,
    translate,
)

EVERY_SOURCE = "*"


@dataclass(frozen=True)
class TranslateConfig:
    llm: LlmConfig | None = None  # None: no LLM configured, no translations
    targets: dict[str, list[str]] = field(default_factory=dict)  # source name or "*" -> languages
    guard: TranslationConfig = field(default_factory=TranslationConfig)

    def targets_for(self, source: str) -> list[str]:
        return self.targets.get(source, self.targets.get(EVERY_SOURCE, []))


class Translate(LlmStage):
    name = "translate"
    version = "1"
    inputs = ("punctuate",)
    prompt_file = "translation.yaml"

    def __init__(self, config: TranslateConfig):
        if config.targets and config.llm is None:
            raise StageConfigError("translate.targets are set, but translate.llm names no model")
        super().__init__(config)

    def run(self, context: ShardContext) -> pa.Table:
        table = context.read("punctuate")
        entries: list[list[dict]] = [[] for _ in range(table.num_rows)]
        rows = self._rows_to_translate(table)
        if rows:
            texts, langs, sources = (table[c].to_pylist() for c in ("text", "lang", "source"))
            by_targets: dict[tuple[str, ...], list[int]] = {}
            for i in rows:
                by_targets.setdefault(tuple(self.config.targets_for(sources[i])), []).append(i)
            for targets, group in by_targets.items():
                results = translate(
                    [texts[i] for i in group],
                    [langs[i] for i in group],
                    list(targets),
                    self.backend,
                    self.config.guard,
                    self._quality,
                )
                for i, per_target in zip(group, results):
                    entries[i] = [
                        {
                            "lang": lang,
                            "text": r.text,
                            "reason": r.reason,
                            "answer": r.answer,
                            "qe_score": r.qe_score,
                        }
                        for lang, r in per_target.items()
                    ]
        column = pa.array(entries, TRANSLATED.field("translations").type)
        translated = pa.table([*table.columns, column], schema=TRANSLATED)
        return with_versions(translated, self.name, self.version_tag)

    @cached_property
    def _quality(self) -> QualityEstimator | None:
        """The QE model, loaded once for every shard this stage object runs."""
        return load_quality_estimator(self.config.guard)

    def _rows_to_translate(self, table: pa.Table) -> list[int]:
        """Kept rows with text, of sources that have target languages."""
        if self.config.llm is None:
            return []
        columns = (table[c].to_pylist() for c in ("drop_reason", "text", "source"))
        return [
            i
            for i, (dropped, text, source) in enumerate(zip(*columns))
            if dropped is None and text and self.config.targets_for(source)
        ]
