"""Text language ID on short texts: fastText's lid.176.ftz against langid.py, en/it/de/fr/es.

The texts are 100 everyday sentences (`bench/data/lid_sentences.tsv`, 20 per language) and
their first 3 and 5 words, the lengths of short ASR utterances. Printed per backend and
length: accuracy; how often it is sure (p >= 0.9, the filter's `min_lang_prob`) and right,
and sure and wrong (a wrong `lang_mismatch` drop); and texts per second, model loaded first.

    python bench/text_lid.py
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

from bench.common import emit
from pipeline.stages.filter import FilterConfig
from pipeline.text.lid import BACKENDS, TextLidConfig, identify_language

SENTENCES = Path(__file__).resolve().parent / "data" / "lid_sentences.tsv"
LENGTHS = (3, 5, None)  # first words; None: the whole sentence


def labelled_texts(words: int | None) -> list[tuple[str, str]]:
    with open(SENTENCES, encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    return [(r["lang"], " ".join(r["text"].split()[:words])) for r in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20, help="timed passes over the texts")
    args = parser.parse_args()
    sure = FilterConfig().rules.min_lang_prob
    for backend in BACKENDS:
        config = TextLidConfig(backend=backend)
        identify_language("warm up: load the model", config)
        for words in LENGTHS:
            texts = labelled_texts(words)
            answers = [identify_language(text, config) for _, text in texts]
            started = time.perf_counter()
            for _ in range(args.repeat):
                for _, text in texts:
                    identify_language(text, config)
            seconds = time.perf_counter() - started
            right = [lang == got for (lang, _), (got, _) in zip(texts, answers)]
            confident = [p >= sure for _, p in answers]
            emit(
                "text_lid",
                backend=backend,
                words=words or "sentence",
                texts=len(texts),
                accuracy=sum(right) / len(texts),
                sure_right=sum(r and c for r, c in zip(right, confident)) / len(texts),
                sure_wrong=sum(c and not r for r, c in zip(right, confident)) / len(texts),
                texts_per_s=len(texts) * args.repeat / seconds,
            )


if __name__ == "__main__":
    main()
