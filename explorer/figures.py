"""The figures a drop rule looked at, beside its threshold, so a curator can judge the rule.

Figures are recomputed from the row with the rules' own word splitting (`words`). Thresholds
are vaglio's defaults (`FilterConfig`): the workdir does not record the config a run used, so
the page says so rather than pretend.
"""

from __future__ import annotations

import heapq

from pipeline.asr.language_gate import LANG_UNCERTAIN, LANG_UNDECLARED
from pipeline.stages.filter import DNSMOS_LOW, DURATION, PASS_DISAGREEMENT, SNR_LOW, FilterConfig
from pipeline.text import rules
from pipeline.text.rules import words

Figure = tuple[str, str, str]  # (what, this row's value, the default threshold)


DEFAULTS = FilterConfig()


def rule_figures(row: dict) -> list[Figure]:
    """What the rule that dropped `row` measured; empty for a kept row."""
    config = DEFAULTS
    reason = row.get("drop_reason")
    if not reason:
        return []
    limits = config.rules
    tokens = words(row.get("text") or "")
    duration = row["duration"]
    chars = sum(map(len, tokens))
    longest = [*heapq.nlargest(2, map(len, tokens)), 0, 0]
    per_second = duration or float("inf")
    figures: dict[str, list[Figure]] = {
        DURATION: [
            (
                "duration",
                f"{duration:.2f} s",
                f"{config.min_duration_s:g}–{config.max_duration_s:g} s",
            )
        ],
        rules.EMPTY_TEXT: [("words", "0", "at least 1")],
        rules.KNOWN_PHRASE: [("text", row.get("text") or "", "a listed hallucinated phrase")],
        rules.REPEATED_WORDS: [
            (
                "distinct words / words",
                f"{len(set(tokens))}/{len(tokens)}",
                f"> {limits.max_unique_word_share:g} from {limits.min_words_for_share} words",
            )
        ],
        rules.REPEATED_NGRAMS: [
            (
                "distinct words / words",
                f"{len(set(tokens))}/{len(tokens)}",
                f"no word {limits.max_word_repeats}× or phrase {limits.max_loop_repeats}× in a row",
            )
        ],
        rules.LONG_WORD: [
            ("longest word", f"{longest[0]} chars", f"< {limits.max_word_chars} chars"),
            (
                "longest / next longest",
                f"{longest[0] / max(longest[1], 1):.1f}",
                f"< {limits.max_word_ratio:g} from {limits.min_chars_for_ratio} chars",
            ),
        ],
        rules.CHARS_PER_SECOND_HIGH: [
            ("characters / s", f"{chars / per_second:.1f}", f"≤ {limits.max_chars_per_second:g}")
        ],
        rules.WORDS_PER_SECOND_HIGH: [
            ("words / s", f"{len(tokens) / per_second:.1f}", f"≤ {limits.max_words_per_second:g}")
        ],
        rules.CHARS_PER_SECOND_LOW: [
            ("characters / s", f"{chars / per_second:.2f}", f"≥ {limits.min_chars_per_second:g}")
        ],
        rules.LANG_MISMATCH: [
            (
                "text language",
                f"{row.get('text_lang')} ({_share(row.get('text_lang_prob'))})",
                f"{row.get('lang')} unless ≥ {limits.min_lang_prob:g} sure of another",
            )
        ],
        PASS_DISAGREEMENT: [
            ("pass 1 vs pass 2 WER", _share(row.get("pass_wer")), f"≤ {config.max_pass_wer:g}")
        ],
        # off by default, so the threshold is the run's own
        DNSMOS_LOW: [
            ("DNSMOS OVRL", _share(row.get("dnsmos_ovrl")), "≥ the run's min_dnsmos_ovrl")
        ],
        SNR_LOW: [("estimated SNR", f"{_share(row.get('snr_db'))} dB", "≥ the run's min_snr_db")],
    }
    gate = [
        (
            "audio language (pass 1)",
            f"{row.get('lang')} ({_share(row.get('lang_prob'))})",
            "a declared language",
        ),
        ("language gate", row.get("gate_reason") or "", ""),
    ]
    figures[LANG_UNDECLARED] = figures[LANG_UNCERTAIN] = gate
    return figures.get(reason, [])


def _share(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"
