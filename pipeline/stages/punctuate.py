"""Restore punctuation and capitals of kept rows with an LLM, guarded so no word changes.

Off unless `punctuate.llm` names a model: Whisper already writes punctuation, so the stage
matters for backends that do not (CTC models such as Parakeet). `text` becomes the accepted
answer; `text_asr` keeps what the ASR pass wrote; `pnc_status` says what happened: null
(not attempted: the stage is off or the row dropped), `accepted`, or the reason the row kept
its input (`pipeline/text/pnc.py`: skipped, or the answer refused). Where the backend can
constrain its decoder, each row's answer is held to the row's own words (`pnc_grammar.py`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from manifests.schemas import PUNCTUATED, with_versions
from pipeline.llm import LlmConfig
from pipeline.stage import ShardContext
from pipeline.stages.llm_stage import LlmStage
from pipeline.text.pnc import PncConfig, restore_punctuation

ACCEPTED = "accepted"


@dataclass(frozen=True)
class PunctuateConfig:
    llm: LlmConfig | None = None  # None: no LLM configured, rows pass through unchanged
    guard: PncConfig = field(default_factory=PncConfig)


class Punctuate(LlmStage):
    name = "punctuate"
    # 2: answers held to the row's words where the backend constrains; 3: no mark after a
    # word that leans on the next (pipeline/data/punctuation.yaml)
    version = "3"
    inputs = ("filter",)
    prompt_file = "pnc.yaml"

    def run(self, context: ShardContext) -> pa.Table:
        table = context.read("filter")
        texts = table["text"].to_pylist()
        status: list[str | None] = [None] * len(texts)
        cer: list[float | None] = [None] * len(texts)
        if self.config.llm is not None:
            mask = pc.and_(pc.is_null(table["drop_reason"]), pc.is_valid(table["text"]))
            rows = [i for i, keep in enumerate(mask.to_pylist()) if keep]
            languages = table["lang"].to_pylist()
            results = restore_punctuation(
                [texts[i] for i in rows],
                [languages[i] for i in rows],
                self.backend,
                self.config.guard,
            )
            for i, result in zip(rows, results):
                texts[i], status[i], cer[i] = result.text, result.reason or ACCEPTED, result.cer
        added = {
            "text": pa.array(texts, pa.string()),
            "text_asr": table["text"],
            "pnc_status": pa.array(status, pa.string()),
            "pnc_cer": pa.array(cer, pa.float32()),
        }
        columns = [added[n] if n in added else table[n] for n in PUNCTUATED.names]
        return with_versions(pa.table(columns, schema=PUNCTUATED), self.name, self.version_tag)
