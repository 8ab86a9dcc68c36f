"""Mark hallucinated or wrong-language transcripts with a `drop_reason`; never delete a row."""

from __future__ import annotations

from dataclasses import dataclass, field

import pyarrow as pa

from manifests.schemas import FILTERED, with_versions
from pipeline.stage import ShardContext, Stage
from pipeline.text_rules import HallucinationConfig, hallucination_reason, words
from pipeline.textlid import identify_language


@dataclass(frozen=True)
class FilterConfig:
    rules: HallucinationConfig = field(default_factory=HallucinationConfig)


class Filter(Stage):
    name = "filter"
    version = "1"
    inputs = ("transcribe",)

    def run(self, context: ShardContext) -> pa.Table:
        table = context.read("transcribe")
        rules = self.config.rules
        text_langs, text_probs, reasons = [], [], []
        for text, duration, lang in zip(
            table["text"].to_pylist(), table["duration"].to_pylist(), table["lang"].to_pylist()
        ):
            text_lang, text_prob = identify_language(text) if text.strip() else (None, None)
            reason = hallucination_reason(text, duration, rules)
            if (
                reason is None
                and len(words(text)) >= rules.min_words_for_lang
                and text_lang != lang
                and text_prob >= rules.min_lang_prob
            ):
                reason = "lang_mismatch"
            text_langs.append(text_lang)
            text_probs.append(text_prob)
            reasons.append(reason)
        added = [
            pa.array(text_langs, pa.string()),
            pa.array(text_probs, pa.float32()),
            pa.array(reasons, pa.string()),
        ]
        filtered = pa.table([*table.columns, *added], schema=FILTERED)
        return with_versions(filtered, self.name, self.version_tag)
