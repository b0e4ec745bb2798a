"""Tests for pipeline.toy.lexicon: the toy world's eleven-language sentences."""

from __future__ import annotations

import itertools
import re
import unicodedata

import pytest

from pipeline.toy import lexicon as L
from pipeline.toy.lexicon import (
    COLOURS,
    KINDS,
    LANGS,
    POSITIONS,
    SHAPES,
    SIZES,
    SLOT_VALUES,
    TARGET_LANGS,
    all_sentences,
    parallel_corpus,
    sentence,
    word,
)

STAR = {"size": "big", "colour": "red", "shape": "star", "position": "top left"}


def combos(kind: str):
    names = KINDS[kind]
    for values in itertools.product(*(SLOT_VALUES[n] for n in names)):
        yield dict(zip(names, values))


@pytest.fixture(scope="module")
def corpus() -> list[dict[str, str]]:
    return parallel_corpus()


# --- constants ------------------------------------------------------------------------------


def test_languages_and_values_are_the_agreed_ones():
    assert LANGS == (
        "eng_Latn", "zho_Hans", "hin_Deva", "spa_Latn", "fra_Latn", "arb_Arab",
        "ben_Beng", "rus_Cyrl", "urd_Arab", "jpn_Jpan", "kor_Hang",
    )  # fmt: skip
    assert TARGET_LANGS == LANGS[1:]
    assert list(L.LANGUAGE_NAMES) == list(LANGS)
    assert L.LANGUAGE_NAMES["zho_Hans"] == "Chinese" and L.LANGUAGE_NAMES["urd_Arab"] == "Urdu"
    assert COLOURS == ("red", "green", "blue", "yellow", "purple", "orange")
    assert SHAPES == ("circle", "square", "triangle", "star")
    assert SIZES == ("small", "big")
    assert POSITIONS == ("top left", "top right", "bottom left", "bottom right", "centre")
    assert set(L.COLOUR_RGB) == set(COLOURS)
    assert len(set(L.COLOUR_RGB.values())) == len(COLOURS)
    assert all(len(rgb) == 3 and all(0 <= c <= 255 for c in rgb) for rgb in L.COLOUR_RGB.values())
    for slots in KINDS.values():
        assert set(slots) <= set(SLOT_VALUES)


# --- English wording --------------------------------------------------------------------------


def test_english_wording_is_the_specified_one():
    eng = "eng_Latn"
    assert sentence("caption", eng, **STAR) == "A big red star at the top left."
    assert sentence("caption", eng, **{**STAR, "position": "centre"}) == "A big red star in the centre."
    assert sentence("there_is", eng, size="small", colour="blue", shape="circle") == (
        "There is a small blue circle in the picture."
    )
    assert sentence("a_position", eng, colour="green", shape="square", position="centre") == (
        "The green square is in the centre."
    )
    assert sentence("moves", eng, shape="triangle", position="centre") == "The triangle moves to the centre."
    assert sentence("becomes", eng, shape="star", colour="purple") == "Then the star becomes purple."
    assert sentence("now_at", eng, colour="red", shape="star", position="bottom right") == (
        "Now the red star is at the bottom right."
    )
    assert sentence("q_size", eng, shape="circle") == "Is the circle big or small?"
    assert sentence("q_shape", eng) == "What shape is in the picture?"
    assert sentence("mc_size", eng) == "How big is the shape in the picture?"


# --- spot checks in other languages (agreement, particles, cases) ---------------------------


@pytest.mark.parametrize(
    ("kind", "lang", "slots", "expected"),
    [
        ("caption", "spa_Latn",
         {**STAR, "shape": "circle"}, "Un círculo rojo grande en la esquina superior izquierda."),
        ("caption", "spa_Latn",
         {**STAR, "size": "small", "position": "centre"}, "Una estrella roja pequeña en el centro."),
        ("a_colour", "spa_Latn", {"shape": "star", "colour": "yellow"}, "La estrella es amarilla."),
        ("a_colour", "spa_Latn", {"shape": "circle", "colour": "orange"}, "El círculo es naranja."),
        ("moves", "spa_Latn", {"shape": "star", "position": "centre"}, "La estrella se mueve al centro."),
        ("q_size", "spa_Latn", {"shape": "star"}, "¿La estrella es grande o pequeña?"),
        ("caption", "fra_Latn", STAR, "Une grande étoile rouge en haut à gauche."),
        ("q_size", "fra_Latn", {"shape": "star"}, "L'étoile est-elle grande ou petite ?"),
        ("becomes", "fra_Latn", {"shape": "star", "colour": "purple"}, "Puis l'étoile devient violette."),
        ("a_colour", "fra_Latn", {"shape": "square", "colour": "green"}, "Le carré est vert."),
        ("caption", "rus_Cyrl", STAR, "Большая красная звезда в левом верхнем углу."),
        ("becomes", "rus_Cyrl", {"shape": "star", "colour": "blue"}, "Затем звезда становится синей."),
        ("becomes", "rus_Cyrl", {"shape": "circle", "colour": "blue"}, "Затем круг становится синим."),
        ("moves", "rus_Cyrl", {"shape": "square", "position": "centre"}, "Квадрат перемещается в центр."),
        ("caption", "arb_Arab", STAR, "نجمة حمراء كبيرة في الزاوية العلوية اليسرى."),
        ("there_is", "arb_Arab", {"size": "big", "colour": "red", "shape": "square"}, "يوجد في الصورة مربع أحمر كبير."),
        ("becomes", "arb_Arab", {"shape": "square", "colour": "purple"}, "ثم يصبح المربع بنفسجيًا."),
        ("q_colour", "arb_Arab", {"shape": "circle"}, "ما لون الدائرة؟"),
        ("caption", "zho_Hans", STAR, "左上角有一个红色的大星形。"),
        ("q_colour", "zho_Hans", {"shape": "circle"}, "圆形是什么颜色的？"),
        ("caption", "jpn_Jpan", STAR, "左上にある大きな赤い星。"),
        ("becomes", "jpn_Jpan", {"shape": "circle", "colour": "green"}, "それから円が緑になります。"),
        ("a_colour", "jpn_Jpan", {"shape": "star", "colour": "red"}, "星は赤いです。"),
        ("moves", "kor_Hang", {"shape": "star", "position": "centre"}, "별이 가운데로 이동합니다."),
        ("becomes", "kor_Hang", {"shape": "circle", "colour": "red"}, "그런 다음 원이 빨간색으로 변합니다."),
        ("caption", "hin_Deva", STAR, "ऊपरी बाएँ कोने में एक बड़ा लाल तारा।"),
        ("there_is", "hin_Deva", {"size": "big", "colour": "red", "shape": "star"}, "तस्वीर में एक बड़ा लाल तारा है।"),
        ("q_colour", "urd_Arab", {"shape": "star"}, "ستارہ کس رنگ کا ہے؟"),
        ("a_colour", "ben_Beng", {"shape": "star", "colour": "red"}, "তারাটি লাল।"),
    ],
)
def test_spot_checks(kind, lang, slots, expected):
    assert sentence(kind, lang, **slots) == expected


def test_word_gives_option_texts():
    assert [word("colour", c, "eng_Latn") for c in COLOURS] == list(COLOURS)
    assert word("position", "top left", "eng_Latn") == "top left"
    assert word("shape", "star", "spa_Latn") == "estrella"
    assert word("colour", "red", "fra_Latn") == "rouge"
    assert word("shape", "circle", "zho_Hans") == "圆形"
    assert word("colour", "red", "zho_Hans") == "红色"
    assert word("position", "centre", "rus_Cyrl") == "центр"
    for lang in LANGS:
        for category, values in SLOT_VALUES.items():
            options = [word(category, v, lang) for v in values]
            assert len(set(options)) == len(options), (lang, category)
            assert all(o and o == o.strip() and "  " not in o for o in options)


# --- every kind x language renders, deterministically ---------------------------------------


def test_all_sentences_covers_every_combination_in_every_language():
    for kind in KINDS:
        entries = list(all_sentences(kind))
        assert len(entries) == len(list(combos(kind)))
        for entry, slots in zip(entries, combos(kind)):
            assert list(entry) == list(LANGS)
            for lang in LANGS:
                assert entry[lang] == sentence(kind, lang, **slots)


def test_sentences_are_clean_and_nfc(corpus):
    for entry in corpus:
        for lang, text in entry.items():
            assert text == text.strip() and "  " not in text, (lang, text)
            assert text == unicodedata.normalize("NFC", text), (lang, text)


def test_mapping_is_injective_per_language(corpus):
    english = [e["eng_Latn"] for e in corpus]
    assert len(set(english)) == len(english)
    for lang in LANGS:
        texts = [e[lang] for e in corpus]
        assert len(set(texts)) == len(texts), lang


def test_parallel_corpus_is_complete_and_ordered(corpus):
    expected = sum(len(list(combos(k))) for k in KINDS)
    assert len(corpus) == expected == 654
    assert all(list(e) == list(LANGS) for e in corpus)
    assert corpus == parallel_corpus()
    assert corpus[0]["eng_Latn"] == "A small red circle at the top left."


# --- scripts and punctuation ----------------------------------------------------------------

BLOCKS = {
    "zho_Hans": [(0x4E00, 0x9FFF)],
    "jpn_Jpan": [(0x4E00, 0x9FFF), (0x3040, 0x309F), (0x30A0, 0x30FF)],
    "kor_Hang": [(0xAC00, 0xD7A3)],
    "hin_Deva": [(0x0900, 0x097F)],
    "ben_Beng": [(0x0980, 0x09FF)],
    "arb_Arab": [(0x0600, 0x06FF)],
    "urd_Arab": [(0x0600, 0x06FF)],
    "rus_Cyrl": [(0x0400, 0x04FF)],
}
PUNCT = " .,?\\-、。？।"
# text made only of the language's own blocks plus a little punctuation
OWN_SCRIPT = {
    lang: re.compile("[" + PUNCT + "".join(f"\\u{lo:04x}-\\u{hi:04x}" for lo, hi in blocks) + "]+")
    for lang, blocks in BLOCKS.items()
}


def test_non_latin_languages_use_their_own_script(corpus):
    words = {lang: [word(c, v, lang) for c, vs in SLOT_VALUES.items() for v in vs] for lang in LANGS}
    for lang in BLOCKS:
        for text in [e[lang] for e in corpus] + words[lang]:
            assert not re.search(r"[A-Za-z]", text), (lang, text)
            assert OWN_SCRIPT[lang].fullmatch(text), (lang, text)
    # Arabic and Urdu use their own letter variants (ي ك ه ة vs ی ک ہ ے).
    for e in corpus:
        assert not set(e["arb_Arab"]) & set("\u06cc\u06a9\u06c1\u06d2\u06ba\u0679\u0688\u0691\u06be\u06d4")
        assert not set(e["urd_Arab"]) & set("\u064a\u0643\u0647\u0629")
        assert re.search("[\u3040-\u30ff]", e["jpn_Jpan"]), e["jpn_Jpan"]  # Japanese, not Chinese
        assert not re.search("[\u3040-\u30ff]", e["zho_Hans"])


ENDS = {
    "eng_Latn": (".", "?"),
    "zho_Hans": ("。", "？"),
    "hin_Deva": ("।", "?"),
    "spa_Latn": (".", "?"),
    "fra_Latn": (".", " ?"),
    "arb_Arab": (".", "؟"),
    "ben_Beng": ("।", "?"),
    "rus_Cyrl": (".", "?"),
    "urd_Arab": ("۔", "؟"),
    "jpn_Jpan": ("。", "？"),
    "kor_Hang": (".", "?"),
}


@pytest.mark.parametrize("lang", LANGS)
def test_end_punctuation(lang):
    stop, qmark = ENDS[lang]
    for kind in KINDS:
        for slots in itertools.islice(combos(kind), 3):
            text = sentence(kind, lang, **slots)
            if kind in L.QUESTION_KINDS:
                assert text.endswith(qmark), text
                assert text.startswith("¿") == (lang == "spa_Latn"), text
            else:
                assert text.endswith(stop) and not text.endswith("?"), text
            if lang in ("eng_Latn", "spa_Latn", "fra_Latn", "rus_Cyrl"):
                assert text.lstrip("¿")[0].isupper(), text


# --- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "must_mention"),
    [
        (lambda: sentence("caption_x", "eng_Latn"), ["'caption_x'", "'caption'", "'mc_size'"]),
        (lambda: sentence("q_shape", "deu_Latn"), ["'deu_Latn'", "'kor_Hang'"]),
        (lambda: sentence("q_colour", "eng_Latn", shape="hexagon"), ["'hexagon'", "'circle'", "'star'"]),
        (lambda: sentence("a_colour", "spa_Latn", shape="star", colour="pink"), ["'pink'", "'orange'"]),
        (lambda: sentence("caption", "eng_Latn", size="big", colour="red", shape="star"), ["'position'"]),
        (lambda: sentence("q_shape", "eng_Latn", shape="star"), ["'shape'", "unexpected"]),
        (lambda: word("texture", "red", "eng_Latn"), ["'texture'", "'colour'"]),
        (lambda: word("position", "middle", "eng_Latn"), ["'middle'", "'centre'"]),
        (lambda: word("size", "big", "xx"), ["'xx'", "'eng_Latn'"]),
        (lambda: list(all_sentences("nope")), ["'nope'", "'caption'"]),
    ],
)
def test_errors_name_the_bad_value_and_the_choices(call, must_mention):
    with pytest.raises(ValueError) as info:
        call()
    for text in must_mention:
        assert text in str(info.value)
