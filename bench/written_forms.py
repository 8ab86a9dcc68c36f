"""Written forms by NeMo's ITN grammars: how right, how fast, and what the first compile costs.

The sentences (`bench/data/written_forms.tsv`) are five spoken ones per language with money,
a time, a date, a count and an ordinal or year, and one without any number, each with the
written form a careful editor would give. Printed per language, with and without
`numbers_only`: sentences written exactly so; sentences whose numbers (digit groups, in order)
come out right; sentences left alone that should be; wall and CPU milliseconds per word through
the grammar (sentence memo cleared); the wall and CPU seconds to load the cached grammar and, with
`--cold`, to compile it first into an empty cache; and the process's peak memory after the
language was loaded. Italian, which NeMo has no grammar for, is counted as passed through.

With `--workdir`, what pass 2 now does beyond decoding, on the texts a curation of that
workdir wrote: each row's written form and its two passes compared in the normal form, with the
grammars' loading (from the cache) and the first import of NeMo, in wall and CPU seconds.

    python bench/written_forms.py [--cold] [--languages en de ...] [--workdir WORKDIR]
"""

from __future__ import annotations

import argparse
import csv
import os
import re
import resource
import tempfile
import time
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq

from bench.common import emit
from pipeline.stages.pass2 import pass_disagreement
from pipeline.text import written
from pipeline.text.written import NEMO_ITN_LANGUAGES, UNSUPPORTED, WrittenFormConfig, written_form

SENTENCES = Path(__file__).resolve().parent / "data" / "written_forms.tsv"
_DIGITS = re.compile(r"\d+")


def _digits(text: str) -> list[str]:
    return _DIGITS.findall(text)


def load_seconds(lang: str) -> tuple[float, float]:
    """(wall, CPU) seconds to get the process's grammar for `lang`, compiling it if the cache
    has none: CPU time says more than wall time on a shared machine (it runs on one core)."""
    written._normalisers.pop(lang, None)
    wall, cpu = time.perf_counter(), time.process_time()
    written.normaliser(lang)
    return time.perf_counter() - wall, time.process_time() - cpu


def workdir_cost(workdir: Path) -> None:
    """Written forms and the pass comparison on every pass-2 row of `workdir`, as pass 2 makes
    them, in a process that has not loaded NeMo yet."""
    table = pq.read_table(
        [str(p) for p in sorted((workdir / "pass2").glob("*.parquet"))],
        columns=["lang", "text_pass1", "text"],
    )
    rows = [r for r in table.to_pylist() if r["text"] is not None]
    config = WrittenFormConfig()
    wall, cpu = time.perf_counter(), time.process_time()
    statuses = [written_form(r["text"], r["lang"], config).status for r in rows]
    for r in rows:
        if r["text_pass1"]:
            pass_disagreement(r["text_pass1"], r["text"], r["lang"], config)
    emit(
        "written_forms_workdir",
        workdir=str(workdir),
        rows=len(rows),
        words=sum(len(r["text"].split()) for r in rows),
        statuses=dict(Counter(statuses)),
        wall_s=time.perf_counter() - wall,
        cpu_s=time.process_time() - cpu,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cold", action="store_true", help="compile into an empty cache first")
    parser.add_argument("--languages", nargs="*", help="only these (default: every one listed)")
    parser.add_argument("--workdir", type=Path, help="time pass 2's share on its texts instead")
    args = parser.parse_args()
    if args.workdir:
        workdir_cost(args.workdir)
        return
    if args.cold:
        os.environ["VAGLIO_CACHE"] = tempfile.mkdtemp(prefix="vaglio-itn-cold-")
    with open(SENTENCES, encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    languages = args.languages or list(dict.fromkeys(r["lang"] for r in rows))
    for lang in languages:
        mine = [r for r in rows if r["lang"] == lang]
        if lang not in NEMO_ITN_LANGUAGES:
            statuses = [written_form(r["spoken"], lang, WrittenFormConfig()).status for r in mine]
            emit("written_forms", lang=lang, passed_through=statuses.count(UNSUPPORTED))
            continue
        compile_s = load_seconds(lang) if args.cold else (None, None)
        load_s = load_seconds(lang)
        for numbers_only in (True, False):
            config = WrittenFormConfig(languages=lang, numbers_only=numbers_only)
            written._written_sentence.cache_clear()
            wall, cpu = time.perf_counter(), time.process_time()
            outputs = [written_form(r["spoken"], lang, config).text for r in mine]
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            words = sum(len(r["spoken"].split()) for r in mine)
            pairs = list(zip(outputs, (r["written"] for r in mine)))
            alone = [
                out == r["spoken"] for out, r in zip(outputs, mine) if r["spoken"] == r["written"]
            ]
            emit(
                "written_forms",
                lang=lang,
                by_default=lang in WrittenFormConfig().languages.split(),
                numbers_only=numbers_only,
                sentences=len(mine),
                exact=sum(out == want for out, want in pairs),
                numbers_right=sum(_digits(out) == _digits(want) for out, want in pairs),
                kept_alone=f"{sum(alone)}/{len(alone)}",
                wall_ms_per_word=1000 * wall / words,
                cpu_ms_per_word=1000 * cpu / words,
                compile_wall_s=compile_s[0],
                compile_cpu_s=compile_s[1],
                load_wall_s=load_s[0],
                load_cpu_s=load_s[1],
                peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                wrong=[out for out, want in pairs if out != want],
            )


if __name__ == "__main__":
    main()
