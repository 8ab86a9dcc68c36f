"""Text quality of the LLM stages against references, not only what the guards accept.

The rows are bench/data/text_references.tsv: 33 English and 33 Italian sentences, punctuated
and cased by hand (commas, questions, lists, proper names), each with a reference translation
into the other language. Punctuation gets each one lower-cased without punctuation, through
`vaglio llm-text`'s own functions, twice on the same server and model: held to the row's words
by a grammar (GBNF) and generated freely (then the word guard). Per mode and language: the
share accepted, the share of rows whose kept text has the input's words, F1 per mark (comma,
full stop, question mark) and for full stop + question mark together, the accuracy of
capitals at sentence starts and on other capitalised words (proper nouns, "I"), and the share
of words written lower case inside a sentence that came back capitalised (the grammar leaves
capitals inside a sentence free, for names). Scores are of what the row keeps, as a curation
would: a refused answer leaves the input unpunctuated. What the grammar costs is timed on the
longest row of each language, on rows joined up to a 40 s utterance and on all its rows joined
into one: the constraint's size and build time, and the same request held by it and free:
seconds, tokens generated (as the server counts them) and ms per token, prompt included.
Translation gets the reference sentence into the other language: chrF and BLEU (sacrebleu)
of every answer and of the ones the guards kept, and the share kept. The last line checks the
targets and says whether the CPU model translates usefully (chrF >= 30).

    python -m bench.text_quality [--rows 33] [--grammar-only] [--model smollm2-135m]
"""

from __future__ import annotations

import argparse
import csv
import difflib
import itertools
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import sacrebleu

from bench.common import emit
from bench.llm_cpu import unpunctuated
from pipeline.llm.conversations import pnc_conversation
from pipeline.llm.local_server import local_server
from pipeline.llm.offline_model import DEFAULT_OFFLINE_LLM, OFFLINE_LLMS
from pipeline.llm.openai_backend import OpenAiBackend
from pipeline.text.llm_rows import TextRow, punctuate_rows, translate_rows
from pipeline.text.normalise import normalise_text
from pipeline.text.pnc import PncConfig
from pipeline.text.pnc_grammar import pnc_constraint
from pipeline.text.translation import TranslationConfig

REFERENCES = Path(__file__).resolve().parent / "data" / "text_references.tsv"
OTHER = {"en": "it", "it": "en"}
MARKS = {",": "comma", ".": "full_stop", "?": "question"}
_ALL_MARKS = ",.?!:;"
_SENTENCE_END = ".?!"
USEFUL_CHRF = 30.0
UTTERANCE_40S_WORDS = 110  # 40 s of speech at a brisk 2.75 words/s


def read_references(limit: int) -> dict[str, list[tuple[str, str]]]:
    """language -> [(sentence, reference translation)], the first `limit` of each."""
    by_language: dict[str, list[tuple[str, str]]] = {}
    with REFERENCES.open(encoding="utf-8") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            rows = by_language.setdefault(row["lang"], [])
            if len(rows) < limit:
                rows.append((row["text"], row["translation"]))
    return by_language


@dataclass(frozen=True)
class Token:
    word: str  # lower case, without marks around it: what alignment compares
    capital: bool  # starts with an upper-case letter
    mark: str | None  # the mark that follows it, if any


def tokens(text: str) -> list[Token]:
    result = []
    for raw in text.split():
        core = raw.strip(_ALL_MARKS)
        trailing = raw[len(raw.rstrip(_ALL_MARKS)) :]
        result.append(Token(core.lower(), core[:1].isupper(), trailing[:1] or None))
    return result


@dataclass
class Scores:
    """Counts over the rows of one mode and language."""

    true_pos: Counter = field(default_factory=Counter)
    false_pos: Counter = field(default_factory=Counter)
    false_neg: Counter = field(default_factory=Counter)
    starts: list[bool] = field(default_factory=list)  # sentence start capitalised as it should
    names: list[bool] = field(default_factory=list)  # another capitalised word kept so
    lower: list[bool] = field(default_factory=list)  # a lower-case word inside, capitalised

    def add(self, reference: str, output: str) -> None:
        ref, out = tokens(reference), tokens(output)
        matcher = difflib.SequenceMatcher(a=[t.word for t in ref], b=[t.word for t in out])
        aligned = {a + k: b + k for a, b, n in matcher.get_matching_blocks() for k in range(n)}
        for j, token in enumerate(out):
            if j not in aligned.values() and token.mark in MARKS:
                self.false_pos[MARKS[token.mark]] += 1
        for i, token in enumerate(ref):
            match = out[aligned[i]] if i in aligned else None
            wanted, got = (
                MARKS.get(token.mark or ""),
                MARKS.get(match.mark or "") if match else None,
            )
            if wanted and wanted == got:
                self.true_pos[wanted] += 1
            else:
                if wanted:
                    self.false_neg[wanted] += 1
                if got:
                    self.false_pos[got] += 1
            starts = i == 0 or (ref[i - 1].mark or "x") in _SENTENCE_END
            if starts:
                self.starts.append(match is not None and match.capital)
            elif token.capital:
                self.names.append(match is not None and match.capital)
            else:
                self.lower.append(match is not None and match.capital)

    def f1(self, *marks: str) -> float:
        tp = sum(self.true_pos[m] for m in marks)
        errors = sum(self.false_pos[m] + self.false_neg[m] for m in marks)
        return 2 * tp / (2 * tp + errors) if tp + errors else 1.0


def bench_punctuation(backend, mode: str, language: str, rows: list[tuple[str, str]]) -> dict:
    inputs = [TextRow(i + 1, None, unpunctuated(text)) for i, (text, _) in enumerate(rows)]
    start = time.perf_counter()
    outcomes = punctuate_rows(inputs, language, backend, PncConfig())
    seconds = time.perf_counter() - start
    scores = Scores()
    for (reference, _), outcome in zip(rows, outcomes, strict=True):
        scores.add(reference, outcome.output)
    figures = {
        "rows": len(rows),
        "rows_per_s": len(rows) / seconds,
        "accepted": sum(o.outcome == "accepted" for o in outcomes) / len(rows),
        "words_preserved": sum(
            normalise_text(o.output) == normalise_text(o.input) for o in outcomes
        )
        / len(rows),
        **{f"f1_{name}": scores.f1(name) for name in MARKS.values()},
        "f1_stop_question": scores.f1("full_stop", "question"),
        "sentence_start_casing": sum(scores.starts) / max(len(scores.starts), 1),
        "proper_noun_casing": sum(scores.names) / max(len(scores.names), 1),
        "false_capitals": sum(scores.lower) / max(len(scores.lower), 1),
        "refused": dict(Counter(o.reason for o in outcomes if o.reason)),
    }
    emit("text_quality_pnc", model=backend.config.model, decoding=mode, lang=language, **figures)
    return figures


def timed_request(backend: OpenAiBackend, row: str, language: str) -> tuple[float, int]:
    """Seconds for one PnC request of `row` (the faster of two: the cores are shared) and the
    tokens the server says it generated."""
    body = backend.request_body(pnc_conversation(row, language), pnc_constraint(row, language))
    times, tokens = [], 0
    for _ in range(2):
        start = time.perf_counter()
        response = httpx.post(backend.url, json=body, timeout=600)
        times.append(time.perf_counter() - start)
        response.raise_for_status()
        tokens = response.json()["usage"]["completion_tokens"]
    return min(times), tokens


def bench_grammar_cost(held, free, language: str, rows: list[tuple[str, str]]) -> None:
    """What a row's grammar costs to build and to decode under: on the longest row, on rows
    joined up to the words of a 40 s utterance (the longest a curation keeps) and on all rows
    joined into one (a long-form transcript); the same request, held and free."""
    texts = [text for text, _ in rows]
    words = itertools.accumulate(len(text.split()) for text in texts)
    enough = next((n for n, w in enumerate(words, 1) if w >= UTTERANCE_40S_WORDS), len(texts))
    cases = {
        "longest_row": max(texts, key=lambda text: len(text.split())),
        "utterance_40s": " ".join(texts[:enough]),
        "all_rows_joined": " ".join(texts),
    }
    for name, text in cases.items():
        row = unpunctuated(text)
        start = time.perf_counter()
        constraint = pnc_constraint(row, language)
        build_ms = (time.perf_counter() - start) * 1000
        timed = {mode: timed_request(backend, row, language) for mode, backend in
                 (("gbnf", held), ("free", free))}  # fmt: skip
        emit(
            "text_quality_grammar",
            model=held.config.model,
            lang=language,
            row=name,
            words=len(row.split()),
            gbnf_chars=len(constraint.gbnf),
            regex_chars=len(constraint.regex),
            build_ms=build_ms,
            **{f"{mode}_s": seconds for mode, (seconds, _) in timed.items()},
            **{f"{mode}_tokens": tokens for mode, (_, tokens) in timed.items()},
            **{f"{mode}_ms_per_token": 1000 * s / max(n, 1) for mode, (s, n) in timed.items()},
        )


def bench_translation(backend, language: str, rows: list[tuple[str, str]]) -> dict:
    target = OTHER[language]
    inputs = [TextRow(i + 1, None, text) for i, (text, _) in enumerate(rows)]
    start = time.perf_counter()
    outcomes = translate_rows(inputs, language, target, backend, TranslationConfig())
    seconds = time.perf_counter() - start
    references = [translation for _, translation in rows]
    answers = [o.answer or "" for o in outcomes]
    kept = [(o.output, r) for o, r in zip(outcomes, references, strict=True) if o.output]
    figures = {
        "rows": len(rows),
        "rows_per_s": len(rows) / seconds,
        "chrf": sacrebleu.corpus_chrf(answers, [references]).score,
        "bleu": sacrebleu.corpus_bleu(answers, [references]).score,
        "kept": len(kept) / len(rows),
        "chrf_kept": sacrebleu.corpus_chrf(*zip(*[(o, [r]) for o, r in kept])).score
        if kept
        else None,
        "refused": dict(Counter(o.reason for o in outcomes if o.reason)),
    }
    emit(
        "text_quality_translation",
        model=backend.config.model,
        pair=f"{language}-{target}",
        **figures,
    )
    return figures


def time_grammar(server, references: dict[str, list[tuple[str, str]]]) -> None:
    held = OpenAiBackend(server.llm_config(guided_decoding="gbnf"))
    free = OpenAiBackend(server.llm_config(guided_decoding="off", max_tokens=2048))
    for language, rows in references.items():
        bench_grammar_cost(held, free, language, rows)
    held.close()
    free.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=33, help="sentences per language (max 33)")
    parser.add_argument(
        "--grammar-only",
        action="store_true",
        help="only time the grammar (minutes, not half an hour)",
    )
    parser.add_argument("--model", choices=OFFLINE_LLMS, default=DEFAULT_OFFLINE_LLM)
    args = parser.parse_args()
    references = read_references(args.rows)
    pnc: dict[tuple[str, str], dict] = {}
    chrf: dict[str, float] = {}
    if args.grammar_only:
        with local_server(args.model, threads=2) as server:
            time_grammar(server, references)
        return
    with local_server(args.model, threads=2) as server:
        for mode in ("gbnf", "off"):
            backend = OpenAiBackend(server.llm_config(guided_decoding=mode))
            for language, rows in references.items():
                pnc[mode, language] = bench_punctuation(backend, mode, language, rows)
            backend.close()
        time_grammar(server, references)
        backend = OpenAiBackend(server.llm_config())
        for language, rows in references.items():
            chrf[f"{language}-{OTHER[language]}"] = bench_translation(backend, language, rows)[
                "chrf"
            ]
        backend.close()
    held = [pnc["gbnf", language] for language in references]
    english = pnc["gbnf", "en"]
    emit(
        "text_quality_targets",
        model=OFFLINE_LLMS[args.model].served_as,
        words_preserved_100=all(f["words_preserved"] == 1.0 for f in held),
        accepted_95=all(f["accepted"] >= 0.95 for f in held),
        english_f1_stop_question_07=english["f1_stop_question"] >= 0.7,
        sentence_start_casing_09=all(f["sentence_start_casing"] >= 0.9 for f in held),
        translation_chrf=chrf,
        translation_useful=all(score >= USEFUL_CHRF for score in chrf.values()),
        note="chrF below 30: the CPU model does not translate usefully; use vLLM for real "
        "translation (README)"
        if any(score < USEFUL_CHRF for score in chrf.values())
        else "",
    )


if __name__ == "__main__":
    main()
