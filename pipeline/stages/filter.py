"""Mark rows that should not be trained on with a `drop_reason`; never delete a row.

Reasons, in the order they are checked (the first that fires is recorded): the recording
failed the language gate; the utterance is too short or too long; a hallucination rule;
the text's language differs from the audio's; the two ASR passes disagree.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pyarrow as pa

from manifests.schemas import FILTERED, with_versions
from pipeline.stage import ShardContext, Stage
from pipeline.text_rules import HallucinationConfig, hallucination_reason, words
from pipeline.textlid import identify_language

DURATION = "duration_out_of_range"
LANG_MISMATCH = "lang_mismatch"
PASS_DISAGREEMENT = "pass_disagreement"


@dataclass(frozen=True)
class FilterConfig:
    rules: HallucinationConfig = field(default_factory=HallucinationConfig)
    min_duration_s: float = 0.1
    max_duration_s: float = 40.0
    max_pass_wer: float = 0.5  # drop when pass 1 and pass 2 differ in more than this share


class Filter(Stage):
    name = "filter"
    version = "2"
    inputs = ("pass2",)

    def run(self, context: ShardContext) -> pa.Table:
        table = context.read("pass2")
        columns = ("text", "duration", "lang", "gate_reason", "pass_wer")
        text_langs, text_probs, reasons = [], [], []
        for text, duration, lang, gate, pass_wer in zip(*(table[c].to_pylist() for c in columns)):
            heard = bool(text and text.strip())
            text_lang, text_prob = identify_language(text) if heard else (None, None)
            reasons.append(
                gate or self._reason(text or "", duration, lang, text_lang, text_prob, pass_wer)
            )
            text_langs.append(text_lang)
            text_probs.append(text_prob)
        added = [
            pa.array(text_langs, pa.string()),
            pa.array(text_probs, pa.float32()),
            pa.array(reasons, pa.string()),
        ]
        filtered = pa.table([*table.columns, *added], schema=FILTERED)
        return with_versions(filtered, self.name, self.version_tag)

    def _reason(self, text, duration, lang, text_lang, text_prob, pass_wer) -> str | None:
        config, rules = self.config, self.config.rules
        if not config.min_duration_s <= duration <= config.max_duration_s:
            return DURATION
        reason = hallucination_reason(text, duration, rules)
        if reason:
            return reason
        if (
            len(words(text)) >= rules.min_words_for_lang
            and text_lang != lang
            and text_prob >= rules.min_lang_prob
        ):
            return LANG_MISMATCH
        if pass_wer is not None and pass_wer > config.max_pass_wer:
            return PASS_DISAGREEMENT
        return None
