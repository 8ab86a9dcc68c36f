"""The hallucination filter on long rows: rows/s of `judge` (what `vaglio filter-text` and the
filter stage run per row) for transcripts of 1 000, 8 000 and 200 000 words.

A row is made of pseudo-words drawn at random (no loop, no stock phrase, a plausible duration),
so every rule runs to its end instead of stopping at the first that fires. Each size runs in
its own process, stopped after `--timeout` seconds (reported as `timed_out`), so a rule that
blows up cannot hang the benchmark.

    python bench/text_rules_long_rows.py [--words 1000 8000 200000] [--rows 3] [--timeout 60]
"""

from __future__ import annotations

import argparse
import multiprocessing
import random
import time

from bench.common import emit


def long_row(n_words: int, seed: int) -> str:
    """`n_words` pseudo-words of 2 to 9 letters, a full stop every 12 words."""
    rng = random.Random(seed)
    letters = "abcdefghilmnoprstuvz"
    row = []
    for index in range(n_words):
        row.append("".join(rng.choices(letters, k=rng.randint(2, 9))))
        if index % 12 == 11:
            row[-1] += "."
    return " ".join(row)


def _time_rows(n_words: int, rows: int, seconds: multiprocessing.Queue) -> None:
    from pipeline.stages.filter import FilterConfig, judge

    config = FilterConfig(max_duration_s=float("inf"))  # the rules, not the duration bound
    texts = [long_row(n_words, seed) for seed in range(rows)]
    judge("warm up the language model", 2.0, "it", config)
    start = time.perf_counter()
    for text in texts:
        judge(text, n_words / 3.0, "it", config)  # 3 words/s: a plausible rate
    seconds.put(time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--words", type=int, nargs="+", default=[1000, 8000, 200000])
    parser.add_argument("--rows", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args()
    for n_words in args.words:
        seconds: multiprocessing.Queue = multiprocessing.Queue()
        worker = multiprocessing.Process(target=_time_rows, args=(n_words, args.rows, seconds))
        worker.start()
        worker.join(args.timeout)
        if worker.is_alive():
            worker.terminate()
            worker.join()
            emit("text_rules_long_rows", words=n_words, rows=args.rows, timed_out=True,
                 timeout_s=args.timeout)  # fmt: skip
            continue
        elapsed = seconds.get()
        emit("text_rules_long_rows", words=n_words, rows=args.rows, seconds=elapsed,
             rows_per_s=args.rows / elapsed, words_per_s=n_words * args.rows / elapsed)  # fmt: skip


if __name__ == "__main__":
    main()
