"""Written and spoken forms: NeMo's inverse text normalisation beside the text, one normal form
for the filter and the pass comparison, and languages without a grammar passed through and
counted.

NeMo's grammars are finite-state rewrites, the same on every CPU, so their output is asserted
exactly. They compile once per machine into the vaglio cache (English: seconds to a minute).
"""

from __future__ import annotations

import logging

import pytest

from manifests.views import connect
from pipeline.config import ConfigError, load_config
from pipeline.run.summary import summarize
from pipeline.stage import StageConfigError
from pipeline.stages.filter import FilterConfig, judge
from pipeline.stages.pass2 import pass_disagreement
from pipeline.text import written
from pipeline.text.rules import normal_words
from pipeline.text.written import (
    ITN,
    TOO_LONG,
    UNSUPPORTED,
    WrittenFormConfig,
    written_form,
)

DEFAULT = WrittenFormConfig()


def test_english_spoken_numbers_money_and_dates_get_their_written_form():
    said = "I paid twenty five dollars on the third of March. It cost one hundred and twenty euros."
    assert written_form(said, "en", DEFAULT) == (
        "I paid $25 on 3 March. It cost €120.",
        ITN,
    )


def test_english_already_written_stays_as_it_is():
    for text in ("The train was 20 minutes late.", "10 of clubs", "It costs $25, not €30!"):
        assert written_form(text, "en", DEFAULT) == (text, ITN)
    # NeMo writes one to twelve as words: "Ten of clubs" is already its written form.
    assert written_form("Ten of clubs.", "en", DEFAULT).text == "Ten of clubs."


def test_sentences_without_a_number_are_left_to_the_asr_unless_asked():
    """NeMo's whitelist would make "The doctor said" "The dr. said"; `numbers_only` keeps its
    grammars to the sentences that hold a number."""
    text = "The doctor said so. He is twenty one."
    assert written_form(text, "en", DEFAULT).text == "The doctor said so. He is 21."
    everything = WrittenFormConfig(numbers_only=False)
    assert written_form(text, "en", everything).text == "The dr. said so. He is 21."


def test_italian_has_no_grammar_and_is_passed_through():
    said = "Ho pagato venticinque euro il tre marzo."
    assert written_form(said, "it", DEFAULT) == (said, UNSUPPORTED)
    assert written_form("twenty five", None, DEFAULT) == ("twenty five", UNSUPPORTED)
    with pytest.raises(StageConfigError, match=r"\['it'\]"):
        WrittenFormConfig(languages="en it")


def test_a_config_asking_for_a_language_without_a_grammar_is_refused_in_one_line(tmp_path):
    path = tmp_path / "pipeline.yaml"
    path.write_text('pass2: {written: {languages: "en it"}}\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"pass2\.written: languages: NeMo has no .* \['it'\]"):
        load_config(path)


def test_a_runaway_text_is_kept_as_it_is():
    loop = "eight of clubs " * 200
    assert written_form(loop, "en", DEFAULT) == (loop, TOO_LONG)


@pytest.mark.parametrize(
    ("lang", "spoken", "written_text"),
    [
        ("en", "Ten of clubs.", "10 of clubs"),
        ("en", "I paid twenty five dollars.", "I paid $25."),
        ("en", "We met on the third of March.", "We met on 3 March."),
        ("it", "Dieci di fiori.", "10 di fiori"),
        ("it", "Ho comprato tre mele.", "ho comprato 3 mele"),
    ],
)
def test_the_pass_comparison_reads_one_normal_form_both_ways(lang, spoken, written_text):
    assert pass_disagreement(spoken, written_text, lang) == 0.0
    assert pass_disagreement(written_text, spoken, lang) == 0.0


def test_a_real_disagreement_is_still_one():
    assert pass_disagreement("ten of clubs", "10 of spades", "en") == pytest.approx(1 / 3)
    assert pass_disagreement("Five", "5", "xx") == 1.0  # no grammar and no number words


def test_the_filter_reads_the_same_words_as_the_comparison():
    """A decoder loop that wrote the same card as words once and digits twice is still a loop
    to the filter (as written, 4 of its 9 words differ: above the 0.4 share that drops)."""
    assert normal_words("Ten of clubs", "en") == normal_words("10 of clubs", "en")
    looping = "Ten of clubs, 10 of clubs, 10 of clubs."
    written_text = written_form(looping, "en", DEFAULT).text
    assert judge(written_text, 4.0, "en", FilterConfig()).drop_reason == "repeated_words"


def test_a_damaged_cached_grammar_is_compiled_again(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("VAGLIO_CACHE", str(tmp_path))
    monkeypatch.setattr(written, "_normalisers", {})
    folder = written.grammar_dir() / "en"
    folder.mkdir(parents=True)
    (folder / "en_itn_cased.far").write_bytes(b"not a grammar")
    with caplog.at_level(logging.WARNING, logger=written.__name__):
        grammar, _ = written.normaliser("en")
    assert "compiling anew" in caplog.text
    assert grammar.normalize("twenty one") == "21"
    assert [p.name for p in tmp_path.joinpath("itn").rglob("*") if p.name.startswith(".")] == []


def test_a_curation_keeps_the_written_form_and_counts_what_it_passed_through(curated):
    workdir, _ = curated
    with connect(workdir) as con:
        rows = con.execute(
            "SELECT lang, itn_status, text, text_written FROM segments WHERE text IS NOT NULL"
        ).fetchall()
    english = [r for r in rows if r[0] == "en"]
    italian = [r for r in rows if r[0] == "it"]
    assert english and {status for _, status, _, _ in english} == {ITN}
    assert italian and all(s == UNSUPPORTED and w == t for _, s, t, w in italian)
    counts = summarize(workdir).written_forms
    assert counts[("it", UNSUPPORTED)] == len(italian)
    assert counts[("en", ITN)] == len(english)
