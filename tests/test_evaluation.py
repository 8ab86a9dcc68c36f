"""`vaglio eval`: error rates counted by hand, every input format, and the workdir join.

The workdir here is written directly (a `shards.json` and one manifest shard), so these tests
need no audio and no ASR model.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from manifests.schemas import MANIFEST
from manifests.views import SHARD_LIST
from pipeline.cli import app
from pipeline.query.evaluation import (
    OVERALL,
    UNKNOWN_LANG,
    EvaluationError,
    Pair,
    read_pairs,
    read_workdir_pairs,
    score,
)

runner = CliRunner()


def by_lang(pairs) -> dict:
    return {s.lang: s for s in score(pairs)}


def test_a_substitution_is_one_word_error():
    # "the" -> "a": one word of six; three characters ("the" -> "a") of 22.
    (en, total) = score([("en", "the cat sat on the mat", "the cat sat on a mat")])
    assert (en.words, en.word_errors, en.wer) == (6, 1, pytest.approx(1 / 6))
    assert (en.chars, en.char_errors, en.cer) == (22, 3, pytest.approx(3 / 22))
    assert total.lang == OVERALL and total.wer == en.wer


def test_an_insertion_and_a_deletion():
    inserted = by_lang([("en", "good morning", "good good morning")])["en"]
    assert (inserted.words, inserted.word_errors) == (2, 1)
    assert (inserted.chars, inserted.char_errors) == (12, 5)  # "good " inserted
    deleted = by_lang([("it", "ciao a tutti", "ciao tutti")])["it"]
    assert (deleted.words, deleted.word_errors) == (3, 1)
    assert (deleted.chars, deleted.char_errors) == (12, 2)  # "a " deleted


def test_case_punctuation_and_asides_are_not_errors():
    pairs = [
        ("en", "Hello, World! [laughs]", "hello world"),
        ("it", "È vero?", "è vero"),
    ]
    scores = score(pairs)
    assert all(s.word_errors == 0 and s.char_errors == 0 for s in scores)
    assert scores[-1].words == 4


def test_rates_are_corpus_level_per_language_and_overall():
    scores = by_lang(
        [
            ("en", "one two three four", "one two three four"),
            ("en", "five six", "five"),  # one deletion
            ("it", "uno due", "uno tre"),  # one substitution
        ]
    )
    assert scores["en"].wer == pytest.approx(1 / 6)  # not the mean of 0 and 1/2
    assert scores["it"].wer == pytest.approx(1 / 2)
    assert scores[OVERALL].utterances == 3
    assert scores[OVERALL].wer == pytest.approx(2 / 8)
    assert list(scores) == ["en", "it", OVERALL]


def test_empty_references_are_skipped_and_counted():
    scores = by_lang(
        [
            ("en", "", "anything at all"),
            ("en", "[music]", "la la la"),
            ("en", "yes", ""),
            ("de", "  ", "hallo"),
        ]
    )
    assert (scores["en"].utterances, scores["en"].empty_references) == (1, 2)
    assert scores["en"].wer == 1.0  # the empty hypothesis deletes the one word
    de = scores["de"]
    assert (de.utterances, de.words, de.wer, de.cer, de.empty_references) == (0, 0, None, None, 1)
    assert scores[OVERALL].empty_references == 3


def test_no_pairs_is_an_empty_overall():
    (total,) = score([])
    assert (total.lang, total.utterances, total.wer) == (OVERALL, 0, None)


PAIRS = [
    {"id": "1", "lang": "en", "reference": 'She said "yes".', "hypothesis": "she said yes"},
    {"id": "2", "lang": "it", "reference": "Buona sera", "hypothesis": "buona cena"},
]
EXPECTED = [Pair("en", 'She said "yes".', "she said yes"), Pair("it", "Buona sera", "buona cena")]


def write(path: Path, rows: list[dict]) -> Path:
    """`rows` in the format that `path`'s suffix names."""
    columns = list(rows[0])
    if path.suffix == ".parquet":
        pq.write_table(pa.Table.from_pylist(rows), path)
    elif path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    elif path.suffix == ".csv":
        lines = [",".join(columns)]
        lines += [",".join('"' + str(r[c]).replace('"', '""') + '"' for c in columns) for r in rows]
        path.write_text("\n".join(lines) + "\n")
    else:
        lines = ["\t".join(columns), *("\t".join(str(r[c]) for c in columns) for r in rows)]
        path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("suffix", [".tsv", ".csv", ".parquet", ".jsonl"])
def test_every_file_format_reads_the_same_pairs(tmp_path, suffix):
    assert read_pairs(write(tmp_path / f"pairs{suffix}", PAIRS)) == EXPECTED


def test_a_blank_language_is_undetermined(tmp_path):
    rows = [{"lang": "", "reference": "a", "hypothesis": "a"}]
    assert read_pairs(write(tmp_path / "p.tsv", rows)) == [Pair(UNKNOWN_LANG, "a", "a")]


@pytest.mark.parametrize("missing", ["reference", "hypothesis", "lang"])
def test_a_missing_column_names_the_file_and_the_column(tmp_path, missing):
    path = write(tmp_path / "pairs.tsv", [{k: v for k, v in PAIRS[0].items() if k != missing}])
    with pytest.raises(EvaluationError, match=rf"pairs\.tsv: no column '{missing}'"):
        read_pairs(path)


def test_an_unknown_suffix_or_a_missing_file_is_an_error(tmp_path):
    with pytest.raises(EvaluationError, match=r"unknown file type '\.txt'"):
        read_pairs(tmp_path / "pairs.txt")
    with pytest.raises(EvaluationError, match="no such file"):
        read_pairs(tmp_path / "absent.tsv")


def segment(segment_id: str, lang: str | None, text: str | None, drop: str | None = None):
    return {
        "segment_id": segment_id,
        "recording_id": "rec",
        "source": "demo",
        "license": "CC-BY-4.0",
        "offset": 0.0,
        "duration": 1.0,
        "lang": lang,
        "text": text,
        "drop_reason": drop,
        "shard": None if drop else "demo-00000",
    }


@pytest.fixture
def workdir(tmp_path) -> Path:
    """A workdir as `manifests.views` reads it: the shard list and one manifest shard."""
    root = tmp_path / "work"
    (root / "shard").mkdir(parents=True)
    (root / SHARD_LIST).write_text(json.dumps(["demo-00000"]))
    rows = [
        segment("s1", "en", "the cat sat on a mat"),
        segment("s2", "it", "ciao tutti"),
        segment("s3", "en", "thank you for watching", drop="hallucination"),
        segment("s4", None, None),
    ]
    pq.write_table(
        pa.Table.from_pylist(rows, schema=MANIFEST), root / "shard" / "demo-00000.parquet"
    )
    return root


def references(tmp_path: Path, rows: list[dict]) -> Path:
    return write(tmp_path / "refs.tsv", rows)


def test_references_join_kept_segments(tmp_path, workdir):
    refs = references(
        tmp_path,
        [
            {"segment_id": "s1", "reference": "The cat sat on the mat."},
            {"segment_id": "s2", "reference": "Ciao a tutti!"},
            {"segment_id": "s3", "reference": "Good night."},
            {"segment_id": "nope", "reference": "Not in the workdir."},
        ],
    )
    joined = read_workdir_pairs(refs, workdir)
    assert sorted(joined.pairs) == [
        Pair("en", "The cat sat on the mat.", "the cat sat on a mat"),
        Pair("it", "Ciao a tutti!", "ciao tutti"),
    ]
    assert (joined.unmatched, joined.dropped) == (1, 1)
    with_dropped = read_workdir_pairs(refs, workdir, all_rows=True)
    assert Pair("en", "Good night.", "thank you for watching") in with_dropped.pairs


def test_the_references_language_wins_and_a_missing_text_is_all_deletions(tmp_path, workdir):
    refs = references(
        tmp_path,
        [
            {"segment_id": "s1", "reference": "the cat sat on the mat", "lang": "en-GB"},
            {"segment_id": "s2", "reference": "ciao a tutti", "lang": ""},
            {"segment_id": "s4", "reference": "two words", "lang": ""},
        ],
    )
    scores = by_lang(read_workdir_pairs(refs, workdir).pairs)
    assert set(scores) == {"en-GB", "it", UNKNOWN_LANG, OVERALL}
    assert scores[UNKNOWN_LANG].wer == 1.0


def test_references_need_a_segment_id(tmp_path, workdir):
    refs = references(tmp_path, [{"id": "s1", "reference": "hello"}])
    with pytest.raises(EvaluationError, match=r"refs\.tsv: no column 'segment_id'"):
        read_workdir_pairs(refs, workdir)


def test_references_that_match_nothing_are_an_error(tmp_path):
    refs = references(tmp_path, [{"segment_id": "s1", "reference": "hello"}])
    with pytest.raises(EvaluationError, match="no segment_id matches"):
        read_workdir_pairs(refs, tmp_path)  # not a curated workdir: empty views


def vaglio_eval(*args: str):
    return runner.invoke(app, ["eval", *args])


def test_cli_prints_a_table_per_language(tmp_path):
    result = vaglio_eval(str(write(tmp_path / "pairs.tsv", PAIRS)))
    assert result.exit_code == 0, result.output
    cells = (line.strip("│").split("│") for line in result.stdout.splitlines())
    rows = {row[0]: row[1:] for row in ([c.strip() for c in r] for r in cells) if len(row) == 5}
    assert rows["en"] == ["1", "3", "0.00", "0.00"]
    # "sera" -> "cena": one word of two, two characters of ten
    assert rows["it"] == ["1", "2", "50.00", "20.00"]
    assert rows[OVERALL] == ["2", "5", "20.00", "9.09"]


def test_cli_json_lines(tmp_path, workdir):
    refs = references(tmp_path, [{"segment_id": "s1", "reference": "The cat sat on the mat."}])
    result = vaglio_eval("--references", str(refs), "--workdir", str(workdir), "-f", "json")
    assert result.exit_code == 0, result.output
    en, total = (json.loads(line) for line in result.stdout.splitlines())
    assert en == total | {"lang": "en"}
    assert (en["utterances"], en["words"], en["word_errors"]) == (1, 6, 1)
    assert en["wer"] == pytest.approx(1 / 6)


@pytest.mark.parametrize(
    "args, message",
    [
        ([], "give a FILE"),
        (["--references", "refs.tsv"], "go together"),
        (["--workdir", "work"], "go together"),
        (["pairs.tsv", "--workdir", "work"], "not both"),
        (["pairs.tsv", "--all-rows"], "--all-rows applies"),
        (["absent.tsv"], "absent.tsv: no such file"),
    ],
)
def test_cli_errors_exit_2(args, message):
    result = vaglio_eval(*args)
    assert result.exit_code == 2
    assert "error:" in result.output and message in result.output
    assert "Traceback" not in result.output
