"""Multilingual lexicon and grammar of the toy world.

The toy world draws 224x224 images of ONE coloured shape, described by four
attributes (colour, shape, size, position). This module turns such attribute
values into short sentences in the eleven languages of the M-MiniGPT4 setup.

Every sentence is fully determined by ``(kind, lang, slots)``: one fixed
wording, no randomness, no synonyms. That makes the output usable as parallel
data for a tiny translation model and as templated VQA/caption text.

Each language has a small lexicon (nouns with grammatical gender, adjective
forms, position phrases) and one rendering function per sentence kind. The
rules cover what the eleven languages need for these sentences:

* gender agreement of articles, adjectives, pronouns and verbs
  (Spanish, French, Russian, Arabic; Hindi/Urdu postpositions and verbs);
* case where the grammar asks for it (Russian instrumental after
  "становится" and accusative of direction; Arabic accusative after "يصبح");
* French elision (l'étoile), Spanish contraction (a + el = al);
* Bengali definite classifier (-টি), Korean particles chosen by the final
  consonant (이/가, 은/는, 으로/로), Japanese i-adjectives vs. noun + の.

Sentence bodies are written in lower case without end punctuation; ``sentence``
capitalises the first letter (Latin and Cyrillic only) and adds the
language's own end mark (。？ for Chinese/Japanese, ۔ ؟ for Urdu, ؟ for Arabic,
। for Hindi/Bengali, Spanish ¿...?, French " ?" with the customary space).
All output is in Unicode NFC.

Why one file of ~1000 lines: it is eleven small grammars side by side, each a table of words plus
one rendering function per sentence kind; keeping them together makes a change to a sentence kind
visible in every language at once.

Public API: ``LANGS``, ``TARGET_LANGS``, ``LANGUAGE_NAMES``, ``COLOURS``,
``SHAPES``, ``SIZES``, ``POSITIONS``, ``COLOUR_RGB``, ``SLOT_VALUES``,
``KINDS``, ``QUESTION_KINDS``, ``sentence``, ``word``, ``all_sentences``,
``parallel_corpus``.
"""

from __future__ import annotations

import itertools
import unicodedata
from collections.abc import Callable, Iterator

__all__ = [
    "LANGS",
    "TARGET_LANGS",
    "LANGUAGE_NAMES",
    "COLOURS",
    "SHAPES",
    "SIZES",
    "POSITIONS",
    "COLOUR_RGB",
    "SLOT_VALUES",
    "KINDS",
    "QUESTION_KINDS",
    "sentence",
    "word",
    "all_sentences",
    "parallel_corpus",
]

# ---------------------------------------------------------------------------
# Languages and attribute values
# ---------------------------------------------------------------------------

# the paper's languages live in one place; the lexicon re-exports them for its callers
from pipeline.languages import LANGS, LANGUAGE_NAMES, TARGET_LANGS  # noqa: E402

COLOURS: tuple[str, ...] = ("red", "green", "blue", "yellow", "purple", "orange")
SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star")
SIZES: tuple[str, ...] = ("small", "big")
POSITIONS: tuple[str, ...] = ("top left", "top right", "bottom left", "bottom right", "centre")

COLOUR_RGB: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "green": (30, 160, 60),
    "blue": (30, 80, 220),
    "yellow": (245, 210, 20),
    "purple": (130, 50, 180),
    "orange": (250, 130, 20),
}

#: slot (= attribute category) name -> its valid English ids
SLOT_VALUES: dict[str, tuple[str, ...]] = {
    "size": SIZES,
    "colour": COLOURS,
    "shape": SHAPES,
    "position": POSITIONS,
}

#: sentence kind -> the slots it requires (in English word order)
KINDS: dict[str, tuple[str, ...]] = {
    "caption": ("size", "colour", "shape", "position"),
    "there_is": ("size", "colour", "shape"),
    "q_colour": ("shape",),
    "a_colour": ("shape", "colour"),
    "q_shape": (),
    "a_shape": ("shape",),
    "q_position": ("colour", "shape"),
    "a_position": ("colour", "shape", "position"),
    "q_size": ("shape",),
    "a_size": ("shape", "size"),
    "describe": (),
    "moves": ("shape", "position"),
    "becomes": ("shape", "colour"),
    "grows": ("shape",),
    "shrinks": ("shape",),
    "now_at": ("colour", "shape", "position"),
    "mc_colour": (),
    "mc_shape": (),
    "mc_position": (),
    "mc_size": (),
}

#: kinds rendered as questions (all others end with a full stop)
QUESTION_KINDS: frozenset[str] = frozenset(
    {"q_colour", "q_shape", "q_position", "q_size", "mc_colour", "mc_shape", "mc_position", "mc_size"}
)

# lang -> (statement end, question end)
_END_MARKS: dict[str, tuple[str, str]] = {
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

_Render = Callable[..., str]
_GRAMMAR: dict[str, dict[str, _Render]] = {}
_WORDS: dict[str, dict[str, dict[str, str]]] = {}


def _pick(gender: str, masculine: str, feminine: str) -> str:
    return feminine if gender == "f" else masculine


# ---------------------------------------------------------------------------
# English
# ---------------------------------------------------------------------------


def _en_at(position: str) -> str:
    return "in the centre" if position == "centre" else f"at the {position}"


_GRAMMAR["eng_Latn"] = {
    "caption": lambda size, colour, shape, position: f"a {size} {colour} {shape} {_en_at(position)}",
    "there_is": lambda size, colour, shape: f"there is a {size} {colour} {shape} in the picture",
    "q_colour": lambda shape: f"what colour is the {shape}",
    "a_colour": lambda shape, colour: f"the {shape} is {colour}",
    "q_shape": lambda: "what shape is in the picture",
    "a_shape": lambda shape: f"it is a {shape}",
    "q_position": lambda colour, shape: f"where is the {colour} {shape}",
    "a_position": lambda colour, shape, position: f"the {colour} {shape} is {_en_at(position)}",
    "q_size": lambda shape: f"is the {shape} big or small",
    "a_size": lambda shape, size: f"the {shape} is {size}",
    "describe": lambda: "describe the picture",
    "moves": lambda shape, position: f"the {shape} moves to the {position}",
    "becomes": lambda shape, colour: f"then the {shape} becomes {colour}",
    "grows": lambda shape: f"the {shape} grows",
    "shrinks": lambda shape: f"the {shape} shrinks",
    "now_at": lambda colour, shape, position: f"now the {colour} {shape} is {_en_at(position)}",
    "mc_colour": lambda: "what colour is the shape in the picture",
    "mc_shape": lambda: "which shape is shown in the picture",
    "mc_position": lambda: "where is the shape in the picture",
    "mc_size": lambda: "how big is the shape in the picture",
}
_WORDS["eng_Latn"] = {cat: {v: v for v in values} for cat, values in SLOT_VALUES.items()}

# ---------------------------------------------------------------------------
# Spanish: noun gender drives article and adjective endings; colour before
# size after the noun ("un círculo rojo grande"); a + el -> al.
# ---------------------------------------------------------------------------

_ES_NOUN = {
    "circle": ("círculo", "m"),
    "square": ("cuadrado", "m"),
    "triangle": ("triángulo", "m"),
    "star": ("estrella", "f"),
}
_ES_COLOUR = {
    "red": ("rojo", "roja"),
    "green": ("verde", "verde"),
    "blue": ("azul", "azul"),
    "yellow": ("amarillo", "amarilla"),
    "purple": ("morado", "morada"),
    "orange": ("naranja", "naranja"),
}
_ES_SIZE = {"small": ("pequeño", "pequeña"), "big": ("grande", "grande")}
_ES_PLACE = {  # definite noun phrases naming the place
    "top left": "la esquina superior izquierda",
    "top right": "la esquina superior derecha",
    "bottom left": "la esquina inferior izquierda",
    "bottom right": "la esquina inferior derecha",
    "centre": "el centro",
}


def _es_g(shape: str) -> str:
    return _ES_NOUN[shape][1]


def _es_adj(table: dict[str, tuple[str, str]], value: str, shape: str) -> str:
    return _pick(_es_g(shape), *table[value])


def _es_np(shape: str, definite: bool, colour: str | None = None, size: str | None = None) -> str:
    noun, g = _ES_NOUN[shape]
    art = _pick(g, "el", "la") if definite else _pick(g, "un", "una")
    words = [art, noun]
    if colour:
        words.append(_es_adj(_ES_COLOUR, colour, shape))
    if size:
        words.append(_es_adj(_ES_SIZE, size, shape))
    return " ".join(words)


def _es_to(position: str) -> str:
    place = _ES_PLACE[position]
    return "al" + place[2:] if place.startswith("el ") else "a " + place


_GRAMMAR["spa_Latn"] = {
    "caption": lambda size, colour, shape, position: f"{_es_np(shape, False, colour, size)} en {_ES_PLACE[position]}",
    "there_is": lambda size, colour, shape: f"hay {_es_np(shape, False, colour, size)} en la imagen",
    "q_colour": lambda shape: f"de qué color es {_es_np(shape, True)}",
    "a_colour": lambda shape, colour: f"{_es_np(shape, True)} es {_es_adj(_ES_COLOUR, colour, shape)}",
    "q_shape": lambda: "qué forma hay en la imagen",
    "a_shape": lambda shape: f"es {_es_np(shape, False)}",
    "q_position": lambda colour, shape: f"dónde está {_es_np(shape, True, colour)}",
    "a_position": lambda colour, shape, position: f"{_es_np(shape, True, colour)} está en {_ES_PLACE[position]}",
    "q_size": lambda shape: (
        f"{_es_np(shape, True)} es {_es_adj(_ES_SIZE, 'big', shape)} o {_es_adj(_ES_SIZE, 'small', shape)}"
    ),
    "a_size": lambda shape, size: f"{_es_np(shape, True)} es {_es_adj(_ES_SIZE, size, shape)}",
    "describe": lambda: "describe la imagen",
    "moves": lambda shape, position: f"{_es_np(shape, True)} se mueve {_es_to(position)}",
    "becomes": lambda shape, colour: f"luego {_es_np(shape, True)} se vuelve {_es_adj(_ES_COLOUR, colour, shape)}",
    "grows": lambda shape: f"{_es_np(shape, True)} crece",
    "shrinks": lambda shape: f"{_es_np(shape, True)} se encoge",
    "now_at": lambda colour, shape, position: (
        f"ahora {_es_np(shape, True, colour)} está en {_ES_PLACE[position]}"
    ),
    "mc_colour": lambda: "de qué color es la figura de la imagen",
    "mc_shape": lambda: "qué figura se muestra en la imagen",
    "mc_position": lambda: "dónde está la figura en la imagen",
    "mc_size": lambda: "qué tamaño tiene la figura de la imagen",
}
_WORDS["spa_Latn"] = {
    "colour": {k: m for k, (m, _) in _ES_COLOUR.items()},
    "shape": {k: n for k, (n, _) in _ES_NOUN.items()},
    "size": {k: m for k, (m, _) in _ES_SIZE.items()},
    "position": {k: p.split(" ", 1)[1] for k, p in _ES_PLACE.items()},  # drop the article
}

# ---------------------------------------------------------------------------
# French: size before the noun, colour after it ("une grande étoile rouge");
# le/la with elision (l'étoile); pronoun il/elle in inverted questions.
# ---------------------------------------------------------------------------

_FR_NOUN = {"circle": ("cercle", "m"), "square": ("carré", "m"), "triangle": ("triangle", "m"), "star": ("étoile", "f")}
_FR_COLOUR = {
    "red": ("rouge", "rouge"),
    "green": ("vert", "verte"),
    "blue": ("bleu", "bleue"),
    "yellow": ("jaune", "jaune"),
    "purple": ("violet", "violette"),
    "orange": ("orange", "orange"),
}
_FR_SIZE = {"small": ("petit", "petite"), "big": ("grand", "grande")}
_FR_AT = {  # "at the <position>", also used after "se déplace"
    "top left": "en haut à gauche",
    "top right": "en haut à droite",
    "bottom left": "en bas à gauche",
    "bottom right": "en bas à droite",
    "centre": "au centre",
}
_FR_VOWELS = "aeiouyàâéèêëîïôûh"


def _fr_g(shape: str) -> str:
    return _FR_NOUN[shape][1]


def _fr_adj(table: dict[str, tuple[str, str]], value: str, shape: str) -> str:
    return _pick(_fr_g(shape), *table[value])


def _fr_np(shape: str, definite: bool, colour: str | None = None, size: str | None = None) -> str:
    noun, g = _FR_NOUN[shape]
    words = [_fr_adj(_FR_SIZE, size, shape)] if size else []
    words.append(noun)
    if colour:
        words.append(_fr_adj(_FR_COLOUR, colour, shape))
    phrase = " ".join(words)
    if not definite:
        return f"{_pick(g, 'un', 'une')} {phrase}"
    if phrase[0] in _FR_VOWELS:
        return f"l'{phrase}"
    return f"{_pick(g, 'le', 'la')} {phrase}"


_GRAMMAR["fra_Latn"] = {
    "caption": lambda size, colour, shape, position: f"{_fr_np(shape, False, colour, size)} {_FR_AT[position]}",
    "there_is": lambda size, colour, shape: f"il y a {_fr_np(shape, False, colour, size)} sur l'image",
    "q_colour": lambda shape: f"de quelle couleur est {_fr_np(shape, True)}",
    "a_colour": lambda shape, colour: f"{_fr_np(shape, True)} est {_fr_adj(_FR_COLOUR, colour, shape)}",
    "q_shape": lambda: "quelle forme y a-t-il sur l'image",
    "a_shape": lambda shape: f"c'est {_fr_np(shape, False)}",
    "q_position": lambda colour, shape: f"où est {_fr_np(shape, True, colour)}",
    "a_position": lambda colour, shape, position: f"{_fr_np(shape, True, colour)} est {_FR_AT[position]}",
    "q_size": lambda shape: (
        f"{_fr_np(shape, True)} est-{_pick(_fr_g(shape), 'il', 'elle')} "
        f"{_fr_adj(_FR_SIZE, 'big', shape)} ou {_fr_adj(_FR_SIZE, 'small', shape)}"
    ),
    "a_size": lambda shape, size: f"{_fr_np(shape, True)} est {_fr_adj(_FR_SIZE, size, shape)}",
    "describe": lambda: "décrivez l'image",
    "moves": lambda shape, position: f"{_fr_np(shape, True)} se déplace {_FR_AT[position]}",
    "becomes": lambda shape, colour: f"puis {_fr_np(shape, True)} devient {_fr_adj(_FR_COLOUR, colour, shape)}",
    "grows": lambda shape: f"{_fr_np(shape, True)} grandit",
    "shrinks": lambda shape: f"{_fr_np(shape, True)} rétrécit",
    "now_at": lambda colour, shape, position: f"maintenant, {_fr_np(shape, True, colour)} est {_FR_AT[position]}",
    "mc_colour": lambda: "de quelle couleur est la forme sur l'image",
    "mc_shape": lambda: "quelle forme est représentée sur l'image",
    "mc_position": lambda: "où se trouve la forme sur l'image",
    "mc_size": lambda: "quelle est la taille de la forme sur l'image",
}
_WORDS["fra_Latn"] = {
    "colour": {k: m for k, (m, _) in _FR_COLOUR.items()},
    "shape": {k: n for k, (n, _) in _FR_NOUN.items()},
    "size": {k: m for k, (m, _) in _FR_SIZE.items()},
    "position": dict(_FR_AT),
}

# ---------------------------------------------------------------------------
# Russian: adjectives agree in gender; instrumental after "становится";
# locative "в ... углу" vs. accusative of direction "в ... угол".
# ---------------------------------------------------------------------------

_RU_NOUN = {
    "circle": ("круг", "m"),
    "square": ("квадрат", "m"),
    "triangle": ("треугольник", "m"),
    "star": ("звезда", "f"),
}
# (nominative masc, nominative fem, instrumental masc, instrumental fem)
_RU_COLOUR = {
    "red": ("красный", "красная", "красным", "красной"),
    "green": ("зелёный", "зелёная", "зелёным", "зелёной"),
    "blue": ("синий", "синяя", "синим", "синей"),
    "yellow": ("жёлтый", "жёлтая", "жёлтым", "жёлтой"),
    "purple": ("фиолетовый", "фиолетовая", "фиолетовым", "фиолетовой"),
    "orange": ("оранжевый", "оранжевая", "оранжевым", "оранжевой"),
}
_RU_SIZE = {"small": ("маленький", "маленькая"), "big": ("большой", "большая")}
# (nominative: option word, locative: "where", accusative: "where to")
_RU_PLACE = {
    "top left": ("левый верхний угол", "в левом верхнем углу", "в левый верхний угол"),
    "top right": ("правый верхний угол", "в правом верхнем углу", "в правый верхний угол"),
    "bottom left": ("левый нижний угол", "в левом нижнем углу", "в левый нижний угол"),
    "bottom right": ("правый нижний угол", "в правом нижнем углу", "в правый нижний угол"),
    "centre": ("центр", "в центре", "в центр"),
}


def _ru_g(shape: str) -> str:
    return _RU_NOUN[shape][1]


def _ru_col(colour: str, shape: str, instrumental: bool = False) -> str:
    m, f, m_ins, f_ins = _RU_COLOUR[colour]
    return _pick(_ru_g(shape), m_ins, f_ins) if instrumental else _pick(_ru_g(shape), m, f)


def _ru_size(size: str, shape: str) -> str:
    return _pick(_ru_g(shape), *_RU_SIZE[size])


def _ru_np(shape: str, colour: str | None = None, size: str | None = None) -> str:
    words = [_ru_size(size, shape)] if size else []
    if colour:
        words.append(_ru_col(colour, shape))
    words.append(_RU_NOUN[shape][0])
    return " ".join(words)


_GRAMMAR["rus_Cyrl"] = {
    "caption": lambda size, colour, shape, position: f"{_ru_np(shape, colour, size)} {_RU_PLACE[position][1]}",
    "there_is": lambda size, colour, shape: f"на картинке есть {_ru_np(shape, colour, size)}",
    "q_colour": lambda shape: f"какого цвета {_ru_np(shape)}",
    "a_colour": lambda shape, colour: f"{_ru_np(shape)} {_ru_col(colour, shape)}",
    "q_shape": lambda: "какая фигура на картинке",
    "a_shape": lambda shape: f"это {_ru_np(shape)}",
    "q_position": lambda colour, shape: f"где находится {_ru_np(shape, colour)}",
    "a_position": lambda colour, shape, position: f"{_ru_np(shape, colour)} находится {_RU_PLACE[position][1]}",
    "q_size": lambda shape: f"{_ru_np(shape)} {_ru_size('big', shape)} или {_ru_size('small', shape)}",
    "a_size": lambda shape, size: f"{_ru_np(shape)} {_ru_size(size, shape)}",
    "describe": lambda: "опиши картинку",
    "moves": lambda shape, position: f"{_ru_np(shape)} перемещается {_RU_PLACE[position][2]}",
    "becomes": lambda shape, colour: f"затем {_ru_np(shape)} становится {_ru_col(colour, shape, instrumental=True)}",
    "grows": lambda shape: f"{_ru_np(shape)} увеличивается",
    "shrinks": lambda shape: f"{_ru_np(shape)} уменьшается",
    "now_at": lambda colour, shape, position: (
        f"теперь {_ru_np(shape, colour)} находится {_RU_PLACE[position][1]}"
    ),
    "mc_colour": lambda: "какого цвета фигура на картинке",
    "mc_shape": lambda: "какая фигура изображена на картинке",
    "mc_position": lambda: "где находится фигура на картинке",
    "mc_size": lambda: "какого размера фигура на картинке",
}
_WORDS["rus_Cyrl"] = {
    "colour": {k: forms[0] for k, forms in _RU_COLOUR.items()},
    "shape": {k: n for k, (n, _) in _RU_NOUN.items()},
    "size": {k: m for k, (m, _) in _RU_SIZE.items()},
    "position": {k: forms[0] for k, forms in _RU_PLACE.items()},
}

# ---------------------------------------------------------------------------
# Arabic (MSA): noun first, then colour, then size; adjectives agree in gender
# and definiteness (ال); verbs agree in gender (يـ / تـ); predicate of يصبح is
# accusative (diptote colours unchanged, بنفسجيًا / برتقاليًا).
# ---------------------------------------------------------------------------

_AR_NOUN = {"circle": ("دائرة", "f"), "square": ("مربع", "m"), "triangle": ("مثلث", "m"), "star": ("نجمة", "f")}
# (masc, fem, masc accusative indefinite)
_AR_COLOUR = {
    "red": ("أحمر", "حمراء", "أحمر"),
    "green": ("أخضر", "خضراء", "أخضر"),
    "blue": ("أزرق", "زرقاء", "أزرق"),
    "yellow": ("أصفر", "صفراء", "أصفر"),
    "purple": ("بنفسجي", "بنفسجية", "بنفسجيًا"),
    "orange": ("برتقالي", "برتقالية", "برتقاليًا"),
}
_AR_SIZE = {"small": ("صغير", "صغيرة"), "big": ("كبير", "كبيرة")}
_AR_PLACE = {
    "top left": "الزاوية العلوية اليسرى",
    "top right": "الزاوية العلوية اليمنى",
    "bottom left": "الزاوية السفلية اليسرى",
    "bottom right": "الزاوية السفلية اليمنى",
    "centre": "الوسط",
}


def _ar_g(shape: str) -> str:
    return _AR_NOUN[shape][1]


def _ar_col(colour: str, shape: str, accusative: bool = False) -> str:
    m, f, m_acc = _AR_COLOUR[colour]
    return _pick(_ar_g(shape), m_acc if accusative else m, f)


def _ar_size(size: str, shape: str) -> str:
    return _pick(_ar_g(shape), *_AR_SIZE[size])


def _ar_np(shape: str, definite: bool, colour: str | None = None, size: str | None = None) -> str:
    words = [_AR_NOUN[shape][0]]
    if colour:
        words.append(_ar_col(colour, shape))
    if size:
        words.append(_ar_size(size, shape))
    return " ".join("ال" + w if definite else w for w in words)


def _ar_verb(stem: str, shape: str) -> str:
    """Imperfect 3rd person singular: ي + stem (masc) or ت + stem (fem)."""
    return _pick(_ar_g(shape), "ي", "ت") + stem


_GRAMMAR["arb_Arab"] = {
    "caption": lambda size, colour, shape, position: f"{_ar_np(shape, False, colour, size)} في {_AR_PLACE[position]}",
    "there_is": lambda size, colour, shape: (
        f"{_ar_verb('وجد', shape)} في الصورة {_ar_np(shape, False, colour, size)}"
    ),
    "q_colour": lambda shape: f"ما لون {_ar_np(shape, True)}",
    "a_colour": lambda shape, colour: f"{_ar_np(shape, True)} {_ar_col(colour, shape)}",
    "q_shape": lambda: "ما الشكل الموجود في الصورة",
    "a_shape": lambda shape: f"{_pick(_ar_g(shape), 'إنه', 'إنها')} {_ar_np(shape, False)}",
    "q_position": lambda colour, shape: f"أين {_ar_np(shape, True, colour)}",
    "a_position": lambda colour, shape, position: f"{_ar_np(shape, True, colour)} في {_AR_PLACE[position]}",
    "q_size": lambda shape: f"هل {_ar_np(shape, True)} {_ar_size('big', shape)} أم {_ar_size('small', shape)}",
    "a_size": lambda shape, size: f"{_ar_np(shape, True)} {_ar_size(size, shape)}",
    "describe": lambda: "صف الصورة",
    "moves": lambda shape, position: f"{_ar_verb('نتقل', shape)} {_ar_np(shape, True)} إلى {_AR_PLACE[position]}",
    "becomes": lambda shape, colour: (
        f"ثم {_ar_verb('صبح', shape)} {_ar_np(shape, True)} {_ar_col(colour, shape, accusative=True)}"
    ),
    "grows": lambda shape: f"{_ar_verb('كبر', shape)} {_ar_np(shape, True)}",
    "shrinks": lambda shape: f"{_ar_verb('صغر', shape)} {_ar_np(shape, True)}",
    "now_at": lambda colour, shape, position: f"{_ar_np(shape, True, colour)} الآن في {_AR_PLACE[position]}",
    "mc_colour": lambda: "ما لون الشكل في الصورة",
    "mc_shape": lambda: "أي شكل يظهر في الصورة",
    "mc_position": lambda: "أين يقع الشكل في الصورة",
    "mc_size": lambda: "ما حجم الشكل في الصورة",
}
_WORDS["arb_Arab"] = {
    "colour": {k: forms[0] for k, forms in _AR_COLOUR.items()},
    "shape": {k: n for k, (n, _) in _AR_NOUN.items()},
    "size": {k: m for k, (m, _) in _AR_SIZE.items()},
    "position": dict(_AR_PLACE),
}

# ---------------------------------------------------------------------------
# Hindi and Urdu share one grammar (SOV, postpositions, "है"/"ہے" copula).
# Variable adjectives end in -ā and take -ī with feminine nouns; verbs and the
# genitive का/की agree with the subject. All four shape nouns happen to be
# masculine in both languages (वृत्त, वर्ग, त्रिभुज, तारा / دائرہ، مربع، مثلث، ستارہ),
# while the generic "आकृति" / "شکل" (shape) is feminine.
# ---------------------------------------------------------------------------


class _HindustaniLexicon:
    def __init__(
        self,
        nouns: dict[str, tuple[str, str]],
        colours: dict[str, str],
        sizes: dict[str, str],
        places: dict[str, tuple[str, str]],  # (option word, "in the <place>")
        aa: str,  # the masculine -ā ending
        ii: str,  # the feminine -ī ending
    ) -> None:
        self.nouns, self.colours, self.sizes, self.places = nouns, colours, sizes, places
        self.aa, self.ii = aa, ii

    def gender(self, shape: str) -> str:
        return self.nouns[shape][1]

    def agree(self, form: str, shape: str) -> str:
        """Inflect a masculine -ā word (adjective, participle, का) for the noun."""
        if self.gender(shape) == "f" and form.endswith(self.aa):
            return form[: -len(self.aa)] + self.ii
        return form

    def noun(self, shape: str) -> str:
        return self.nouns[shape][0]

    def col(self, colour: str, shape: str) -> str:
        return self.agree(self.colours[colour], shape)

    def size(self, size: str, shape: str) -> str:
        return self.agree(self.sizes[size], shape)

    def at(self, position: str) -> str:
        return self.places[position][1]


_HI = _HindustaniLexicon(
    nouns={"circle": ("वृत्त", "m"), "square": ("वर्ग", "m"), "triangle": ("त्रिभुज", "m"), "star": ("तारा", "m")},
    colours={"red": "लाल", "green": "हरा", "blue": "नीला", "yellow": "पीला", "purple": "बैंगनी", "orange": "नारंगी"},
    sizes={"small": "छोटा", "big": "बड़ा"},
    places={
        "top left": ("ऊपरी बायाँ कोना", "ऊपरी बाएँ कोने में"),
        "top right": ("ऊपरी दायाँ कोना", "ऊपरी दाएँ कोने में"),
        "bottom left": ("निचला बायाँ कोना", "निचले बाएँ कोने में"),
        "bottom right": ("निचला दायाँ कोना", "निचले दाएँ कोने में"),
        "centre": ("केंद्र", "केंद्र में"),
    },
    aa="ा",
    ii="ी",
)

_GRAMMAR["hin_Deva"] = {
    "caption": lambda size, colour, shape, position: (
        f"{_HI.at(position)} एक {_HI.size(size, shape)} {_HI.col(colour, shape)} {_HI.noun(shape)}"
    ),
    "there_is": lambda size, colour, shape: (
        f"तस्वीर में एक {_HI.size(size, shape)} {_HI.col(colour, shape)} {_HI.noun(shape)} है"
    ),
    "q_colour": lambda shape: f"{_HI.noun(shape)} किस रंग {_HI.agree('का', shape)} है",
    "a_colour": lambda shape, colour: f"{_HI.noun(shape)} {_HI.col(colour, shape)} है",
    "q_shape": lambda: "तस्वीर में कौन-सी आकृति है",
    "a_shape": lambda shape: f"यह एक {_HI.noun(shape)} है",
    "q_position": lambda colour, shape: f"{_HI.col(colour, shape)} {_HI.noun(shape)} कहाँ है",
    "a_position": lambda colour, shape, position: (
        f"{_HI.col(colour, shape)} {_HI.noun(shape)} {_HI.at(position)} है"
    ),
    "q_size": lambda shape: f"{_HI.noun(shape)} {_HI.size('big', shape)} है या {_HI.size('small', shape)}",
    "a_size": lambda shape, size: f"{_HI.noun(shape)} {_HI.size(size, shape)} है",
    "describe": lambda: "तस्वीर का वर्णन करें",
    "moves": lambda shape, position: (
        f"{_HI.noun(shape)} {_HI.at(position)} {_HI.agree('चला', shape)} {_HI.agree('जाता', shape)} है"
    ),
    "becomes": lambda shape, colour: (
        f"फिर {_HI.noun(shape)} {_HI.col(colour, shape)} हो {_HI.agree('जाता', shape)} है"
    ),
    "grows": lambda shape: f"{_HI.noun(shape)} {_HI.size('big', shape)} हो {_HI.agree('जाता', shape)} है",
    "shrinks": lambda shape: f"{_HI.noun(shape)} {_HI.size('small', shape)} हो {_HI.agree('जाता', shape)} है",
    "now_at": lambda colour, shape, position: (
        f"अब {_HI.col(colour, shape)} {_HI.noun(shape)} {_HI.at(position)} है"
    ),
    "mc_colour": lambda: "तस्वीर में आकृति किस रंग की है",
    "mc_shape": lambda: "तस्वीर में कौन-सी आकृति दिखाई गई है",
    "mc_position": lambda: "तस्वीर में आकृति कहाँ है",
    "mc_size": lambda: "तस्वीर में आकृति कितनी बड़ी है",
}
_WORDS["hin_Deva"] = {
    "colour": dict(_HI.colours),
    "shape": {k: n for k, (n, _) in _HI.nouns.items()},
    "size": dict(_HI.sizes),
    "position": {k: p[0] for k, p in _HI.places.items()},
}

_UR = _HindustaniLexicon(
    nouns={"circle": ("دائرہ", "m"), "square": ("مربع", "m"), "triangle": ("مثلث", "m"), "star": ("ستارہ", "m")},
    colours={"red": "سرخ", "green": "سبز", "blue": "نیلا", "yellow": "پیلا", "purple": "جامنی", "orange": "نارنجی"},
    sizes={"small": "چھوٹا", "big": "بڑا"},
    places={
        "top left": ("اوپری بایاں کونا", "اوپری بائیں کونے میں"),
        "top right": ("اوپری دایاں کونا", "اوپری دائیں کونے میں"),
        "bottom left": ("نچلا بایاں کونا", "نچلے بائیں کونے میں"),
        "bottom right": ("نچلا دایاں کونا", "نچلے دائیں کونے میں"),
        "centre": ("مرکز", "مرکز میں"),
    },
    aa="ا",
    ii="ی",
)

_GRAMMAR["urd_Arab"] = {
    "caption": lambda size, colour, shape, position: (
        f"{_UR.at(position)} ایک {_UR.size(size, shape)} {_UR.col(colour, shape)} {_UR.noun(shape)}"
    ),
    "there_is": lambda size, colour, shape: (
        f"تصویر میں ایک {_UR.size(size, shape)} {_UR.col(colour, shape)} {_UR.noun(shape)} ہے"
    ),
    "q_colour": lambda shape: f"{_UR.noun(shape)} کس رنگ {_UR.agree('کا', shape)} ہے",
    "a_colour": lambda shape, colour: f"{_UR.noun(shape)} {_UR.col(colour, shape)} ہے",
    "q_shape": lambda: "تصویر میں کون سی شکل ہے",
    "a_shape": lambda shape: f"یہ ایک {_UR.noun(shape)} ہے",
    "q_position": lambda colour, shape: f"{_UR.col(colour, shape)} {_UR.noun(shape)} کہاں ہے",
    "a_position": lambda colour, shape, position: (
        f"{_UR.col(colour, shape)} {_UR.noun(shape)} {_UR.at(position)} ہے"
    ),
    "q_size": lambda shape: f"{_UR.noun(shape)} {_UR.size('big', shape)} ہے یا {_UR.size('small', shape)}",
    "a_size": lambda shape, size: f"{_UR.noun(shape)} {_UR.size(size, shape)} ہے",
    "describe": lambda: "تصویر کو بیان کریں",
    "moves": lambda shape, position: (
        f"{_UR.noun(shape)} {_UR.at(position)} {_UR.agree('چلا', shape)} {_UR.agree('جاتا', shape)} ہے"
    ),
    "becomes": lambda shape, colour: (
        f"پھر {_UR.noun(shape)} {_UR.col(colour, shape)} ہو {_UR.agree('جاتا', shape)} ہے"
    ),
    "grows": lambda shape: f"{_UR.noun(shape)} {_UR.size('big', shape)} ہو {_UR.agree('جاتا', shape)} ہے",
    "shrinks": lambda shape: f"{_UR.noun(shape)} {_UR.size('small', shape)} ہو {_UR.agree('جاتا', shape)} ہے",
    "now_at": lambda colour, shape, position: (
        f"اب {_UR.col(colour, shape)} {_UR.noun(shape)} {_UR.at(position)} ہے"
    ),
    "mc_colour": lambda: "تصویر میں شکل کس رنگ کی ہے",
    "mc_shape": lambda: "تصویر میں کون سی شکل دکھائی گئی ہے",
    "mc_position": lambda: "تصویر میں شکل کہاں ہے",
    "mc_size": lambda: "تصویر میں شکل کتنی بڑی ہے",
}
_WORDS["urd_Arab"] = {
    "colour": dict(_UR.colours),
    "shape": {k: n for k, (n, _) in _UR.nouns.items()},
    "size": dict(_UR.sizes),
    "position": {k: p[0] for k, p in _UR.places.items()},
}

# ---------------------------------------------------------------------------
# Bengali: no grammatical gender; indefinite "একটি", definite classifier -টি
# (তারাটি "the star"), genitive -টির.
# ---------------------------------------------------------------------------

_BN_NOUN = {"circle": "বৃত্ত", "square": "বর্গক্ষেত্র", "triangle": "ত্রিভুজ", "star": "তারা"}
_BN_COLOUR = {"red": "লাল", "green": "সবুজ", "blue": "নীল", "yellow": "হলুদ", "purple": "বেগুনি", "orange": "কমলা"}
_BN_SIZE = {"small": "ছোট", "big": "বড়"}
# (option word, "in the <place>")
_BN_PLACE = {
    "top left": ("উপরের বাম কোণ", "উপরের বাম কোণে"),
    "top right": ("উপরের ডান কোণ", "উপরের ডান কোণে"),
    "bottom left": ("নিচের বাম কোণ", "নিচের বাম কোণে"),
    "bottom right": ("নিচের ডান কোণ", "নিচের ডান কোণে"),
    "centre": ("কেন্দ্র", "কেন্দ্রে"),
}


def _bn_the(shape: str, colour: str | None = None) -> str:
    """Definite noun phrase: (colour) noun + টি."""
    noun = _BN_NOUN[shape] + "টি"
    return f"{_BN_COLOUR[colour]} {noun}" if colour else noun


_GRAMMAR["ben_Beng"] = {
    "caption": lambda size, colour, shape, position: (
        f"{_BN_PLACE[position][1]} একটি {_BN_SIZE[size]} {_BN_COLOUR[colour]} {_BN_NOUN[shape]}"
    ),
    "there_is": lambda size, colour, shape: (
        f"ছবিতে একটি {_BN_SIZE[size]} {_BN_COLOUR[colour]} {_BN_NOUN[shape]} আছে"
    ),
    "q_colour": lambda shape: f"{_bn_the(shape)}র রং কী",
    "a_colour": lambda shape, colour: f"{_bn_the(shape)} {_BN_COLOUR[colour]}",
    "q_shape": lambda: "ছবিতে কোন আকৃতি আছে",
    "a_shape": lambda shape: f"এটি একটি {_BN_NOUN[shape]}",
    "q_position": lambda colour, shape: f"{_bn_the(shape, colour)} কোথায়",
    "a_position": lambda colour, shape, position: f"{_bn_the(shape, colour)} {_BN_PLACE[position][1]} আছে",
    "q_size": lambda shape: f"{_bn_the(shape)} {_BN_SIZE['big']} না {_BN_SIZE['small']}",
    "a_size": lambda shape, size: f"{_bn_the(shape)} {_BN_SIZE[size]}",
    "describe": lambda: "ছবিটি বর্ণনা করুন",
    "moves": lambda shape, position: f"{_bn_the(shape)} {_BN_PLACE[position][1]} সরে যায়",
    "becomes": lambda shape, colour: f"তারপর {_bn_the(shape)} {_BN_COLOUR[colour]} হয়ে যায়",
    "grows": lambda shape: f"{_bn_the(shape)} {_BN_SIZE['big']} হয়ে যায়",
    "shrinks": lambda shape: f"{_bn_the(shape)} {_BN_SIZE['small']} হয়ে যায়",
    "now_at": lambda colour, shape, position: f"এখন {_bn_the(shape, colour)} {_BN_PLACE[position][1]} আছে",
    "mc_colour": lambda: "ছবির আকৃতিটির রং কী",
    "mc_shape": lambda: "ছবিতে কোন আকৃতি দেখানো হয়েছে",
    "mc_position": lambda: "ছবিতে আকৃতিটি কোথায়",
    "mc_size": lambda: "ছবির আকৃতিটি কত বড়",
}
_WORDS["ben_Beng"] = {
    "colour": dict(_BN_COLOUR),
    "shape": dict(_BN_NOUN),
    "size": dict(_BN_SIZE),
    "position": {k: p[0] for k, p in _BN_PLACE.items()},
}

# ---------------------------------------------------------------------------
# Chinese: 一个 + colour的 + size + noun ("一个红色的大星形"); predicative
# colour/size with 是…的.
# ---------------------------------------------------------------------------

_ZH_NOUN = {"circle": "圆形", "square": "正方形", "triangle": "三角形", "star": "星形"}
_ZH_COLOUR = {"red": "红色", "green": "绿色", "blue": "蓝色", "yellow": "黄色", "purple": "紫色", "orange": "橙色"}
_ZH_SIZE = {"small": "小", "big": "大"}
_ZH_PLACE = {"top left": "左上角", "top right": "右上角", "bottom left": "左下角", "bottom right": "右下角", "centre": "中间"}


def _zh_np(shape: str, colour: str | None = None, size: str | None = None) -> str:
    out = f"{_ZH_COLOUR[colour]}的" if colour else ""
    out += _ZH_SIZE[size] if size else ""
    return out + _ZH_NOUN[shape]


_GRAMMAR["zho_Hans"] = {
    "caption": lambda size, colour, shape, position: f"{_ZH_PLACE[position]}有一个{_zh_np(shape, colour, size)}",
    "there_is": lambda size, colour, shape: f"图片中有一个{_zh_np(shape, colour, size)}",
    "q_colour": lambda shape: f"{_zh_np(shape)}是什么颜色的",
    "a_colour": lambda shape, colour: f"{_zh_np(shape)}是{_ZH_COLOUR[colour]}的",
    "q_shape": lambda: "图片中有什么形状",
    "a_shape": lambda shape: f"这是一个{_zh_np(shape)}",
    "q_position": lambda colour, shape: f"{_zh_np(shape, colour)}在哪里",
    "a_position": lambda colour, shape, position: f"{_zh_np(shape, colour)}在{_ZH_PLACE[position]}",
    "q_size": lambda shape: f"{_zh_np(shape)}是大的还是小的",
    "a_size": lambda shape, size: f"{_zh_np(shape)}是{_ZH_SIZE[size]}的",
    "describe": lambda: "请描述这张图片",
    "moves": lambda shape, position: f"{_zh_np(shape)}移动到{_ZH_PLACE[position]}",
    "becomes": lambda shape, colour: f"然后{_zh_np(shape)}变成{_ZH_COLOUR[colour]}",
    "grows": lambda shape: f"{_zh_np(shape)}变大了",
    "shrinks": lambda shape: f"{_zh_np(shape)}变小了",
    "now_at": lambda colour, shape, position: f"现在{_zh_np(shape, colour)}在{_ZH_PLACE[position]}",
    "mc_colour": lambda: "图片中的图形是什么颜色的",
    "mc_shape": lambda: "图片中显示的是哪种形状",
    "mc_position": lambda: "图片中的图形在哪里",
    "mc_size": lambda: "图片中的图形有多大",
}
_WORDS["zho_Hans"] = {
    "colour": dict(_ZH_COLOUR),
    "shape": dict(_ZH_NOUN),
    "size": dict(_ZH_SIZE),
    "position": dict(_ZH_PLACE),
}

# ---------------------------------------------------------------------------
# Japanese: colours are either i-adjectives (赤い, 赤く, 赤いです) or nouns
# (緑の, 緑に, 緑です); sizes use the prenominal 大きな/小さな.
# ---------------------------------------------------------------------------

_JA_NOUN = {"circle": "円", "square": "正方形", "triangle": "三角形", "star": "星"}
# stem, and whether the colour is an i-adjective (True) or a noun (False)
_JA_COLOUR = {
    "red": ("赤", True),
    "green": ("緑", False),
    "blue": ("青", True),
    "yellow": ("黄色", True),
    "purple": ("紫", False),
    "orange": ("オレンジ色", False),
}
# (prenominal, predicative / option word)
_JA_SIZE = {"small": ("小さな", "小さい"), "big": ("大きな", "大きい")}
_JA_PLACE = {"top left": "左上", "top right": "右上", "bottom left": "左下", "bottom right": "右下", "centre": "中央"}


def _ja_col_attr(colour: str) -> str:
    stem, is_adj = _JA_COLOUR[colour]
    return stem + ("い" if is_adj else "の")


def _ja_col_pred(colour: str) -> str:
    stem, is_adj = _JA_COLOUR[colour]
    return stem + ("い" if is_adj else "")


def _ja_col_become(colour: str) -> str:
    """Adverbial form before なります: 赤く / 緑に."""
    stem, is_adj = _JA_COLOUR[colour]
    return stem + ("く" if is_adj else "に")


def _ja_np(shape: str, colour: str | None = None, size: str | None = None) -> str:
    out = _JA_SIZE[size][0] if size else ""
    out += _ja_col_attr(colour) if colour else ""
    return out + _JA_NOUN[shape]


_GRAMMAR["jpn_Jpan"] = {
    "caption": lambda size, colour, shape, position: f"{_JA_PLACE[position]}にある{_ja_np(shape, colour, size)}",
    "there_is": lambda size, colour, shape: f"画像に{_ja_np(shape, colour, size)}があります",
    "q_colour": lambda shape: f"{_ja_np(shape)}は何色ですか",
    "a_colour": lambda shape, colour: f"{_ja_np(shape)}は{_ja_col_pred(colour)}です",
    "q_shape": lambda: "画像にはどんな形がありますか",
    "a_shape": lambda shape: f"それは{_ja_np(shape)}です",
    "q_position": lambda colour, shape: f"{_ja_np(shape, colour)}はどこにありますか",
    "a_position": lambda colour, shape, position: f"{_ja_np(shape, colour)}は{_JA_PLACE[position]}にあります",
    "q_size": lambda shape: f"{_ja_np(shape)}は大きいですか、小さいですか",
    "a_size": lambda shape, size: f"{_ja_np(shape)}は{_JA_SIZE[size][1]}です",
    "describe": lambda: "画像を説明してください",
    "moves": lambda shape, position: f"{_ja_np(shape)}が{_JA_PLACE[position]}に移動します",
    "becomes": lambda shape, colour: f"それから{_ja_np(shape)}が{_ja_col_become(colour)}なります",
    "grows": lambda shape: f"{_ja_np(shape)}が大きくなります",
    "shrinks": lambda shape: f"{_ja_np(shape)}が小さくなります",
    "now_at": lambda colour, shape, position: f"今、{_ja_np(shape, colour)}は{_JA_PLACE[position]}にあります",
    "mc_colour": lambda: "画像の図形は何色ですか",
    "mc_shape": lambda: "画像に描かれている図形はどれですか",
    "mc_position": lambda: "画像の図形はどこにありますか",
    "mc_size": lambda: "画像の図形はどのくらいの大きさですか",
}
_WORDS["jpn_Jpan"] = {
    "colour": {k: stem for k, (stem, _) in _JA_COLOUR.items()},
    "shape": dict(_JA_NOUN),
    "size": {k: pred for k, (_, pred) in _JA_SIZE.items()},
    "position": dict(_JA_PLACE),
}

# ---------------------------------------------------------------------------
# Korean (formal -ㅂ니다 style): particles depend on whether the previous
# syllable ends in a consonant (받침): 이/가, 은/는, 으로/로 (ㄹ takes 로).
# ---------------------------------------------------------------------------

_KO_NOUN = {"circle": "원", "square": "정사각형", "triangle": "삼각형", "star": "별"}
_KO_COLOUR = {
    "red": "빨간색",
    "green": "초록색",
    "blue": "파란색",
    "yellow": "노란색",
    "purple": "보라색",
    "orange": "주황색",
}
# (prenominal, formal predicate, option word)
_KO_SIZE = {"small": ("작은", "작습니다", "작다"), "big": ("큰", "큽니다", "크다")}
_KO_PLACE = {
    "top left": "왼쪽 위",
    "top right": "오른쪽 위",
    "bottom left": "왼쪽 아래",
    "bottom right": "오른쪽 아래",
    "centre": "가운데",
}


def _ko_final(text: str) -> int:
    """Index of the final consonant of the last Hangul syllable (0 = none, 8 = ㄹ)."""
    code = ord(text[-1]) - 0xAC00
    if not 0 <= code < 11172:
        raise ValueError(f"not a Hangul syllable: {text[-1]!r}")
    return code % 28


def _ko_particle(text: str, after_consonant: str, after_vowel: str) -> str:
    final = _ko_final(text)
    if after_consonant == "으로":  # ㄹ-final words take 로 like vowel-final ones
        return text + (after_vowel if final in (0, 8) else after_consonant)
    return text + (after_consonant if final else after_vowel)


def _ko_np(shape: str, colour: str | None = None, size: str | None = None) -> str:
    words = [_KO_SIZE[size][0]] if size else []
    if colour:
        words.append(_KO_COLOUR[colour])
    words.append(_KO_NOUN[shape])
    return " ".join(words)


def _ko_subj(phrase: str) -> str:
    return _ko_particle(phrase, "이", "가")


def _ko_topic(phrase: str) -> str:
    return _ko_particle(phrase, "은", "는")


def _ko_to(phrase: str) -> str:
    return _ko_particle(phrase, "으로", "로")


_GRAMMAR["kor_Hang"] = {
    "caption": lambda size, colour, shape, position: f"{_KO_PLACE[position]}에 있는 {_ko_np(shape, colour, size)}",
    "there_is": lambda size, colour, shape: f"그림에 {_ko_subj(_ko_np(shape, colour, size))} 있습니다",
    "q_colour": lambda shape: f"{_ko_topic(_ko_np(shape))} 무슨 색입니까",
    "a_colour": lambda shape, colour: f"{_ko_topic(_ko_np(shape))} {_KO_COLOUR[colour]}입니다",
    "q_shape": lambda: "그림에 어떤 모양이 있습니까",
    "a_shape": lambda shape: f"이것은 {_ko_np(shape)}입니다",
    "q_position": lambda colour, shape: f"{_ko_topic(_ko_np(shape, colour))} 어디에 있습니까",
    "a_position": lambda colour, shape, position: f"{_ko_topic(_ko_np(shape, colour))} {_KO_PLACE[position]}에 있습니다",
    "q_size": lambda shape: f"{_ko_topic(_ko_np(shape))} 큽니까, 작습니까",
    "a_size": lambda shape, size: f"{_ko_topic(_ko_np(shape))} {_KO_SIZE[size][1]}",
    "describe": lambda: "그림을 설명해 주세요",
    "moves": lambda shape, position: f"{_ko_subj(_ko_np(shape))} {_ko_to(_KO_PLACE[position])} 이동합니다",
    "becomes": lambda shape, colour: f"그런 다음 {_ko_subj(_ko_np(shape))} {_ko_to(_KO_COLOUR[colour])} 변합니다",
    "grows": lambda shape: f"{_ko_subj(_ko_np(shape))} 커집니다",
    "shrinks": lambda shape: f"{_ko_subj(_ko_np(shape))} 작아집니다",
    "now_at": lambda colour, shape, position: f"이제 {_ko_subj(_ko_np(shape, colour))} {_KO_PLACE[position]}에 있습니다",
    "mc_colour": lambda: "그림 속 도형은 무슨 색입니까",
    "mc_shape": lambda: "그림에 나타난 도형은 무엇입니까",
    "mc_position": lambda: "그림 속 도형은 어디에 있습니까",
    "mc_size": lambda: "그림 속 도형은 얼마나 큽니까",
}
_WORDS["kor_Hang"] = {
    "colour": dict(_KO_COLOUR),
    "shape": dict(_KO_NOUN),
    "size": {k: forms[2] for k, forms in _KO_SIZE.items()},
    "position": dict(_KO_PLACE),
}

# ---------------------------------------------------------------------------
# Consistency of the tables (cheap, at import time)
# ---------------------------------------------------------------------------


def _check_tables() -> None:
    for lang in LANGS:
        if set(_GRAMMAR[lang]) != set(KINDS):
            raise RuntimeError(f"{lang}: grammar kinds differ from KINDS")
        if _END_MARKS.keys() != set(LANGS) or set(_WORDS[lang]) != set(SLOT_VALUES):
            raise RuntimeError(f"{lang}: incomplete tables")
        for category, values in SLOT_VALUES.items():
            if set(_WORDS[lang][category]) != set(values):
                raise RuntimeError(f"{lang}: word table for {category!r} is incomplete")


_check_tables()

# ---------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------


def _choices(values: object) -> str:
    return ", ".join(repr(v) for v in values)  # type: ignore[union-attr]


def _check_lang(lang: str) -> None:
    if lang not in _GRAMMAR:
        raise ValueError(f"unknown language {lang!r}; valid languages: {_choices(LANGS)}")


def _check_value(category: str, value: str) -> None:
    if category not in SLOT_VALUES:
        raise ValueError(f"unknown category {category!r}; valid categories: {_choices(SLOT_VALUES)}")
    if value not in SLOT_VALUES[category]:
        raise ValueError(f"invalid {category} {value!r}; valid {category} values: {_choices(SLOT_VALUES[category])}")


def _finish(body: str, kind: str, lang: str) -> str:
    text = body[:1].upper() + body[1:]
    stop, qmark = _END_MARKS[lang]
    if kind in QUESTION_KINDS:
        text = ("¿" + text if lang == "spa_Latn" else text) + qmark
    else:
        text += stop
    return unicodedata.normalize("NFC", text)


def sentence(kind: str, lang: str, **slots: str) -> str:
    """Render one sentence of ``kind`` in ``lang`` from English slot ids.

    >>> sentence("caption", "spa_Latn", size="big", colour="red", shape="star", position="centre")
    'Una estrella roja grande en el centro.'

    Raises ``ValueError`` (naming the bad item and listing valid choices) for an
    unknown kind or language, a missing or unexpected slot, or a bad value.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; valid kinds: {_choices(KINDS)}")
    _check_lang(lang)
    required = KINDS[kind]
    missing = [s for s in required if s not in slots]
    extra = [s for s in slots if s not in required]
    if missing or extra:
        problems = []
        if missing:
            problems.append(f"missing slot(s) {_choices(missing)}")
        if extra:
            problems.append(f"unexpected slot(s) {_choices(extra)}")
        wanted = _choices(required) if required else "none"
        raise ValueError(f"kind {kind!r}: {'; '.join(problems)}; required slots: {wanted}")
    for slot in required:
        _check_value(slot, slots[slot])
    return _finish(_GRAMMAR[lang][kind](**slots), kind, lang)


def word(category: str, value: str, lang: str) -> str:
    """The bare word or phrase for one attribute value, e.g. as a multiple-choice option.

    Nouns are in their base form, colours and sizes in the form a native
    speaker gives as a one-word answer (masculine where the language has gender).
    """
    _check_value(category, value)
    _check_lang(lang)
    return unicodedata.normalize("NFC", _WORDS[lang][category][value])


def all_sentences(kind: str) -> Iterator[dict[str, str]]:
    """Yield, for every combination of ``kind``'s slot values, a dict lang -> sentence.

    The order is deterministic: ``itertools.product`` over ``KINDS[kind]`` with
    each slot's values in their tuple order (``COLOURS``, ``SHAPES``, ...).
    """
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; valid kinds: {_choices(KINDS)}")
    names = KINDS[kind]
    for combo in itertools.product(*(SLOT_VALUES[n] for n in names)):
        slots = dict(zip(names, combo))
        yield {lang: sentence(kind, lang, **slots) for lang in LANGS}


def parallel_corpus() -> list[dict[str, str]]:
    """Every distinct sentence of every kind as a dict lang -> sentence.

    Kinds follow ``KINDS`` order, combinations follow ``all_sentences``;
    entries are de-duplicated on the English sentence.
    """
    seen: set[str] = set()
    corpus: list[dict[str, str]] = []
    for kind in KINDS:
        for entry in all_sentences(kind):
            if entry["eng_Latn"] not in seen:
                seen.add(entry["eng_Latn"])
                corpus.append(entry)
    return corpus
