"""PnC and English <-> Italian translation by a real model on the CPU, behind vaglio's guards:
an offline GGUF model (`--model`, default Qwen2.5-Coder-1.5B-Instruct) served by
llama-cpp-python on 2 threads, reached through the `openai` backend, for the prompt in use
and each variant in bench/prompt_variants/.

Rows are the demo corpus's 60 sentences. PnC gets each one lower-cased without sentence
punctuation (what a CTC model writes); translation gets it as written, into the other
language. Per stage and variant: rows/s; the share the guards accepted and the refusals by
reason; for PnC, the share whose words came back exactly (normalised) and the share identical
to the sentence as written; for translation, the pass rate of each reference-free check on
its own. The last line names the better variant of each stage (most rows accepted).

    python -m bench.llm_cpu [--rows 20] [--model smollm2-135m]
"""

from __future__ import annotations

import argparse
import re
import time
from collections import Counter
from importlib import resources
from pathlib import Path

import yaml

from bench.common import emit
from pipeline.demo_corpus import ENGLISH, ITALIAN
from pipeline.llm.answers import clean_answer
from pipeline.llm.conversations import language_name, pnc_conversation, translation_conversation
from pipeline.llm.local_server import local_server
from pipeline.llm.offline_model import DEFAULT_OFFLINE_LLM, OFFLINE_LLMS
from pipeline.llm.openai_backend import OpenAiBackend
from pipeline.text.lid import identify_language
from pipeline.text.normalise import normalise_text
from pipeline.text.pnc import check_pnc
from pipeline.text.translation import (
    TranslationConfig,
    charset_purity,
    translation_reason,
    word_count,
)

VARIANTS = Path(__file__).resolve().parent / "prompt_variants"
OTHER = {"en": "it", "it": "en"}
_SENTENCE_MARKS = re.compile(r"[.,;:?!¿¡…]")


def prompt_variants(stage: str) -> dict[str, dict]:
    """The prompt file in use ("kept") and the variants of it, by name."""
    kept = (resources.files("pipeline.llm") / "prompts" / f"{stage}.yaml").read_text()
    variants = {"kept": yaml.safe_load(kept)}
    for path in sorted(VARIANTS.glob(f"{stage}-*.yaml")):
        variants[path.stem.removeprefix(f"{stage}-")] = yaml.safe_load(path.read_text())
    return variants


def unpunctuated(sentence: str) -> str:
    """A sentence as a CTC model writes it: lower case, no sentence punctuation."""
    return " ".join(_SENTENCE_MARKS.sub(" ", sentence.lower()).split())


def timed_answers(backend: OpenAiBackend, conversations: list) -> tuple[list[str], float]:
    start = time.perf_counter()
    answers = backend.complete(conversations)
    return answers, time.perf_counter() - start


def bench_pnc(backend: OpenAiBackend, rows: list[tuple[str, str]], name: str, prompts: dict):
    inputs = [unpunctuated(sentence) for sentence, _ in rows]
    conversations = [pnc_conversation(t, lang, prompts) for t, (_, lang) in zip(inputs, rows)]
    answers, seconds = timed_answers(backend, conversations)
    results = [check_pnc(t, a, lang) for t, a, (_, lang) in zip(inputs, answers, rows)]
    same_words = [
        normalise_text(clean_answer(a)) == normalise_text(t) for t, a in zip(inputs, answers)
    ]
    as_written = [r.text == sentence for r, (sentence, _) in zip(results, rows)]
    accepted = sum(r.reason is None for r in results) / len(rows)
    emit(
        "llm_cpu_pnc",
        model=backend.config.model,
        variant=name,
        rows=len(rows),
        rows_per_s=len(rows) / seconds,
        accepted=accepted,
        words_preserved=sum(same_words) / len(rows),
        same_as_written=sum(as_written) / len(rows),
        refused=dict(Counter(r.reason for r in results if r.reason)),
    )
    return accepted


def reference_free_checks(
    source: str, translation: str, source_lang: str, target_lang: str, config: TranslationConfig
) -> dict[str, bool]:
    """Each of the translation guard's checks on its own (the guard stops at the first)."""
    counts = sorted((word_count(source, source_lang), word_count(translation, target_lang)))
    return {
        "long_enough": word_count(translation, target_lang) >= config.min_words,
        "word_ratio": counts[0] > 0 and counts[1] < config.max_word_ratio * counts[0],
        "alphabet": charset_purity(translation, target_lang) >= config.min_purity,
        "language": identify_language(translation, config.text_lid)[0] == target_lang,
    }


def bench_translation(backend: OpenAiBackend, rows: list[tuple[str, str]], name: str, prompts):
    config = TranslationConfig()
    conversations = [translation_conversation(s, lang, OTHER[lang], prompts) for s, lang in rows]
    answers, seconds = timed_answers(backend, conversations)
    reasons: Counter[str] = Counter()
    passed: Counter[str] = Counter()
    for (source, lang), answer in zip(rows, answers):
        target = OTHER[lang]
        cleaned = clean_answer(answer, label=language_name(target))
        reasons[translation_reason(source, cleaned, lang, target, config) or "kept"] += 1
        passed.update(
            k
            for k, ok in reference_free_checks(source, cleaned, lang, target, config).items()
            if ok
        )
    accepted = reasons.pop("kept", 0) / len(rows)
    emit(
        "llm_cpu_translation",
        model=backend.config.model,
        variant=name,
        rows=len(rows),
        rows_per_s=len(rows) / seconds,
        accepted=accepted,
        check_pass_rate={k: round(passed[k] / len(rows), 3) for k in sorted(passed)},
        refused=dict(reasons),
    )
    return accepted


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=60, help="sentences, half English (max 60)")
    parser.add_argument("--model", choices=OFFLINE_LLMS, default=DEFAULT_OFFLINE_LLM)
    args = parser.parse_args()
    half = max(args.rows // 2, 1)
    rows = [(s, "en") for s in ENGLISH[:half]] + [(s, "it") for s in ITALIAN[:half]]
    best = {}
    with local_server(args.model, threads=2) as server:
        backend = OpenAiBackend(server.llm_config())
        for stage, run in (("pnc", bench_pnc), ("translation", bench_translation)):
            scores = {
                name: run(backend, rows, name, p) for name, p in prompt_variants(stage).items()
            }
            best[stage] = max(scores, key=scores.get)
        backend.close()
    emit("llm_cpu_best_prompt", model=OFFLINE_LLMS[args.model].served_as, **best)


if __name__ == "__main__":
    main()
