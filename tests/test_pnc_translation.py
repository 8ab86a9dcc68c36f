"""Punctuation restoration and translation through the `openai` backend, against a real
server process on 127.0.0.1 whose canned answers are the ways LLMs go wrong: the guards must
keep what is right, refuse the rest with a reason, and never let a bad answer into a row."""

from __future__ import annotations

import re

import pytest
from llm_server import CannedLlmServer

from pipeline.config import ConfigError, build_config
from pipeline.llm import LlmConfig, LlmRequestError, MissingExtraError, load_backend
from pipeline.llm.conversations import (
    UnknownLanguageError,
    pnc_conversation,
    translation_conversation,
)
from pipeline.text.pnc import PncConfig, check_pnc, is_punctuated, restore_punctuation
from pipeline.text.pnc_grammar import pnc_constraint
from pipeline.text.translation import (
    TranslationConfig,
    charset_purity,
    load_quality_estimator,
    translate,
    word_count,
)

LONG = (
    "so the first thing we did when we arrived in the village was to look for the old mill "
    "that my grandfather used to talk about and we walked along the river for almost an hour "
    "before we found what was left of it which was not much really just a few walls and the "
    "wheel lying in the grass but it was enough to imagine how it must have looked when he "
    "was a boy and worked there every summer with his brothers and his cousins"
)
# One shard's rows: (text, language, what the server answers or None for "not asked").
PNC_ROWS = [
    ("so what do you think about it", "en", "So, what do you think about it?"),
    ("i went to the market yesterday", "en", "I went to the supermarket yesterday."),
    (LONG, "en", LONG.capitalize() + ". Thanks."),
    (
        "ciao a tutti e benvenuti alla lezione di oggi",
        "it",
        "Hello everyone and welcome to today's lesson.",
    ),
    ("we we need to talk about the the budget", "en", "We need to talk about the budget."),
    ("hola qué tal estás", "es", 'Here is the corrected text:\n\n"Hola, ¿qué tal estás?"'),
    (
        "ich glaube das wetter wird morgen besser",
        "de",
        "```\nIch glaube, das Wetter wird morgen besser.\n```",
    ),
    (
        "perche non vieni con noi stasera al cinema con gli amici",
        "it",
        "Perché non vieni con noi stasera al cinema con gli amici?",
    ),
    ("je ne sais pas quoi dire", "fr", ""),
    ("nobody told me about the meeting", "en", "NOBODY TOLD ME ABOUT THE MEETING!"),
    ("Already fine, thank you.", "en", None),
    ("привет как дела", "ru", None),
    ("   ", "en", None),
]


def openai_backend(server: CannedLlmServer, **options):
    config = LlmConfig(
        backend="openai", model="tiny", base_url=server.base_url, backoff_s=0.01, **options
    )
    return load_backend(config)


def test_pnc_keeps_the_words_and_flags_every_answer_that_changed_them(tmp_path):
    behaviours = [{"match": t, "answer": a} for t, _, a in PNC_ROWS if a is not None]
    texts, languages = [r[0] for r in PNC_ROWS], [r[1] for r in PNC_ROWS]
    with CannedLlmServer(behaviours, tmp_path) as server:
        results = restore_punctuation(texts, languages, openai_backend(server))
        assert server.stats()["requests"] == len(behaviours)  # the last three were not sent
    outcome = [(r.text, r.reason) for r in results]
    assert outcome == [
        ("So, what do you think about it?", None),
        (texts[1], "pnc_changed_words"),
        (LONG, "pnc_added_words"),
        (texts[3], "pnc_other_language"),
        (texts[4], "pnc_removed_words"),
        ("Hola, ¿qué tal estás?", None),
        ("Ich glaube, das Wetter wird morgen besser.", None),
        ("Perché non vieni con noi stasera al cinema con gli amici?", None),  # an accent restored
        (texts[8], "pnc_empty"),
        (texts[9], "pnc_upper_case"),
        (texts[10], "pnc_already_punctuated"),
        (texts[11], "pnc_no_prompt"),
        (texts[12], "pnc_no_words"),
    ]
    assert results[2].cer < 0.02  # an added sentence hides under any CER threshold on long text
    assert [r.rejected for r in results].count(True) == 6


def test_pnc_can_be_asked_to_redo_text_that_came_punctuated(tmp_path):
    text = "Already fine, thank you."
    with CannedLlmServer([{"match": text, "answer": "Already fine. Thank you."}], tmp_path) as s:
        result = restore_punctuation([text], ["en"], openai_backend(s), PncConfig(force=True))
    assert (result[0].text, result[0].reason) == ("Already fine. Thank you.", None)


def test_a_server_that_stays_down_fails_the_batch_rather_than_any_row(tmp_path):
    with (
        CannedLlmServer([{"match": "", "status": 502}], tmp_path) as server,
        pytest.raises(LlmRequestError, match="HTTP 502"),
    ):
        restore_punctuation(["hello there"], ["en"], openai_backend(server, max_retries=1))


def test_pnc_recovers_from_transient_server_errors(tmp_path):
    with CannedLlmServer([{"match": "", "fail_first": 2, "answer": "Hello there."}], tmp_path) as s:
        result = restore_punctuation(["hello there"], ["en"], openai_backend(s, max_retries=2))
    assert (result[0].text, result[0].reason) == ("Hello there.", None)


@pytest.mark.parametrize(
    ("text", "punctuated"),
    [
        ("Hello, world.", True),
        ("hello world", False),
        ("it's fine", False),
        ("well. ok", False),
        ("Rome", False),
        ("今天天气很好。", True),
        ("ΓΕΙΑ ΣΟΥ;", True),
    ],
)
def test_already_punctuated_means_marks_and_capitals(text, punctuated):
    assert is_punctuated(text) is punctuated


def test_a_strict_threshold_refuses_even_a_restored_accent():
    answer = "Perché non vieni con noi stasera al cinema con gli amici?"
    text = "perche non vieni con noi stasera al cinema con gli amici"
    assert check_pnc(text, answer, "it", PncConfig(max_cer=0.0)).reason == "pnc_changed_words"


def test_prompts_are_data_per_language_with_clear_errors():
    conversation = pnc_conversation("guten morgen", "de")
    assert [m["role"] for m in conversation] == ["system", "user", "assistant", "user"]
    assert "German" in conversation[0]["content"] and "noun" in conversation[0]["content"]
    assert conversation[-1]["content"] == "guten morgen"
    with pytest.raises(UnknownLanguageError, match=r"'xx'.*pnc\.yaml; known: de, en, es, fr, it"):
        pnc_conversation("text", "xx")
    default = translation_conversation("Good morning.", "en", "it")[1]["content"]
    assert default.endswith("English source text to Italian:\nEnglish: Good morning.\nItalian: ")
    own = translation_conversation("Good morning.", "en", "zh")[1]["content"]
    assert "Simplified Chinese" in own  # the pair's own template
    with pytest.raises(UnknownLanguageError, match=r"'xx'.*languages\.yaml"):
        translation_conversation("Good morning.", "en", "xx")


def test_every_pnc_example_is_held_to_its_own_guard():
    """An example whose output changed a word would teach the model to change words, and one
    that its grammar refuses, a punctuation the model may not write."""
    for language in ("en", "it", "de", "fr", "es"):
        _, *examples, _ = pnc_conversation("x", language)
        assert examples and [m["role"] for m in examples[:2]] == ["user", "assistant"]
        for example_in, example_out in zip(examples[::2], examples[1::2], strict=True):
            result = check_pnc(example_in["content"], example_out["content"], language)
            assert (result.reason, result.cer) == (None, 0.0), language
            assert re.fullmatch(pnc_constraint(example_in["content"], language).regex,
                                example_out["content"]), example_out  # fmt: skip


# (source, source language, target language, the answer the server gives)
GOOD_PAIRS = [
    (
        "The weather is beautiful today and we are going to the beach.",
        "en",
        "it",
        "Oggi il tempo è bellissimo e andiamo al mare.",
    ),
    (
        "The weather is beautiful today and we are going to the beach.",
        "en",
        "el",
        "Σήμερα ο καιρός είναι υπέροχος και πάμε στην παραλία.",
    ),
    (
        "The weather is beautiful today and we are going to the beach.",
        "en",
        "zh",
        "今天天气很好，我们去海边。",
    ),
    (
        "Domani mattina prendo il treno per Milano.",
        "it",
        "en",
        'Here is the translation:\n"Tomorrow morning I am taking the train to Milan."',
    ),
    (
        "Ich habe gestern ein sehr interessantes Buch gelesen.",
        "de",
        "fr",
        "French: Hier, j'ai lu un livre très intéressant.",
    ),
    (
        "Nous avons visité le musée avec nos enfants.",
        "fr",
        "es",
        "Visitamos el museo con nuestros hijos.",
    ),
    ("¿Dónde está la estación de tren más cercana?", "es", "de", "Wo ist der nächste Bahnhof?"),
    (
        "I really like reading books in the evening.",
        "en",
        "ru",
        "Я очень люблю читать книги по вечерам.",
    ),
]
BAD_PAIRS = [
    (
        "The bakery on the corner opens at seven every morning.",
        "en",
        "it",
        "La panetteria all'angolo apre alle sette ogni mattina. Spero che ti sia utile!",
        "translation_added_sentence",
    ),
    (
        "I think that we should probably go home now because it is getting very late and cold "
        "outside.",
        "en",
        "it",
        "Andiamo a casa.",
        "translation_word_ratio",
    ),
    (
        "I really like reading books in the evening.",
        "en",
        "it",
        "Я очень люблю читать книги по вечерам.",
        "translation_impure",
    ),
    (
        "We are going to the beach with our friends tomorrow.",
        "en",
        "it",
        "Mañana vamos a la playa con nuestros amigos.",
        "translation_wrong_language",
    ),
    (
        "Thank you very much to everyone who came tonight.",
        "en",
        "fr",
        "Thank you very much to everyone who came tonight.",
        "translation_wrong_language",
    ),
    (
        "Thank you very much to everyone who came tonight.",
        "en",
        "de",
        "Danke.",
        "translation_too_short",
    ),
    (
        "Thank you very much to everyone who came tonight.",
        "en",
        "es",
        "```\n```",
        "translation_empty",
    ),
]


def canned(source: str, target: str, answer: str) -> dict:
    label = {
        "it": "Italian",
        "el": "Greek",
        "zh": "Simplified Chinese",
        "en": "English",
        "fr": "French",
        "es": "Spanish",
        "de": "German",
        "ru": "Russian",
    }[target]
    return {"match": f"{source}\n{label}: ", "answer": answer}


def test_good_translations_are_kept_and_bad_ones_refused_with_their_reason(tmp_path):
    pairs = [(*p, None) for p in GOOD_PAIRS] + BAD_PAIRS
    with CannedLlmServer([canned(s, t, a) for s, _, t, a, _ in pairs], tmp_path) as server:
        backend = openai_backend(server)
        for source, source_lang, target, _, reason in pairs:
            [result] = translate([source], [source_lang], [target], backend)
            assert result[target].reason == reason, (source, target)
            if reason is None:
                assert result[target].text == result[target].answer
                assert "translation" not in result[target].text.lower()  # wrapper removed
            else:
                assert result[target].text is None


def test_a_source_that_fails_its_guards_is_never_sent(tmp_path):
    texts = [
        "Thanks.",
        "This sentence is written in English, not Italian.",
        "Oggi andiamo al mare con gli amici.",
    ]
    with CannedLlmServer(
        [{"match": "Oggi", "answer": "Today we go to the sea with friends."}], tmp_path
    ) as server:
        results = translate(texts, ["en", "it", "it"], ["en", "it"], openai_backend(server))
        assert server.stats()["requests"] == 1
    assert results[0] == {"it": results[0]["it"]}  # no English into English
    assert results[0]["it"].reason == "translation_source_too_short"
    assert results[1]["en"].reason == "translation_source_language"
    assert results[2]["en"].text == "Today we go to the sea with friends."
    assert list(results[2]) == ["en"]


def test_an_unknown_language_fails_before_any_request(tmp_path):
    with CannedLlmServer([], tmp_path) as server:
        with pytest.raises(UnknownLanguageError, match=r"'xx'"):
            translate(["Good morning to you all."], ["en"], ["xx"], openai_backend(server))
        assert server.stats()["requests"] == 0


class FixedScores:
    """A stand-in for a QE model, to test the threshold, not a model."""

    def __init__(self, scores: list[float]):
        self.scores, self.calls = scores, []

    def score(self, sources, translations):
        self.calls.append(list(translations))
        return self.scores


def test_quality_estimation_scores_only_what_the_guards_kept(tmp_path):
    source = "Nous avons visité le musée avec nos enfants."
    behaviours = [
        canned(source, "es", "Visitamos el museo con nuestros hijos."),
        canned(source, "en", "Nous avons visité le musée avec nos enfants."),
        canned(source, "it", "Abbiamo visitato il museo con i nostri figli."),
    ]
    qe = FixedScores([0.85, 0.4])
    with CannedLlmServer(behaviours, tmp_path) as server:
        [result] = translate(
            [source],
            ["fr"],
            ["es", "en", "it"],
            openai_backend(server),
            TranslationConfig(min_qe_score=0.7),
            qe,
        )
    assert qe.calls == [
        ["Visitamos el museo con nuestros hijos.", "Abbiamo visitato il museo con i nostri figli."]
    ]
    assert (result["es"].reason, result["es"].qe_score) == (None, 0.85)
    assert result["en"].reason == "translation_wrong_language" and result["en"].qe_score is None
    assert (result["it"].text, result["it"].reason) == (None, "translation_low_qe")
    assert result["it"].answer == "Abbiamo visitato il museo con i nostri figli."


def test_a_qe_model_without_its_extra_says_what_to_install(monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "comet", None)
    assert load_quality_estimator(TranslationConfig()) is None
    with pytest.raises(MissingExtraError, match=r"unbabel-comet.*vaglio\[qe\]"):
        load_quality_estimator(TranslationConfig(qe_model="Unbabel/wmt22-cometkiwi-da"))


def test_purity_and_word_counts_follow_each_script():
    assert charset_purity("Привет, мир!", "ru") == 1.0
    assert charset_purity("Hello мир", "en") == 5 / 8
    assert charset_purity("Perché? 123", "it") == 1.0 and charset_purity("Perché", "en") == 5 / 6
    assert charset_purity("1234 !!", "en") == 0.0
    assert word_count("今天天气很好。", "zh") == 6  # letters, where words have no spaces
    assert word_count("Oggi, andiamo al mare!", "it") == 4


@pytest.mark.parametrize(
    ("field", "value"), [("min_words", 0), ("max_word_ratio", 1.0), ("min_purity", 1.5)]
)
def test_a_bad_translation_setting_names_its_field(field, value):
    with pytest.raises(ConfigError, match=rf"^my\.yaml: translate\.guard\.{field}: "):
        build_config({"translate": {"guard": {field: value}}}, "my.yaml")
