"""The one language registry: every fact the pipeline needs about a language, keyed by FLORES-200 code.

Every other module asks this one (WIT's and XStoryCloze's ISO codes, lingua's names, the character
ratio used by the length checks, whether sentences join without spaces); none keeps its own table.
"""
from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType


@dataclass(frozen=True)
class Language:
    flores: str  # NLLB's language tag, e.g. "fra_Latn"
    iso: str  # the code WIT and XStoryCloze use, e.g. "fr"
    name: str  # English name, for prompts and tables
    script: str  # ISO 15924 script of the FLORES code
    lingua: str  # lingua-language-detector's Language member
    # characters of a typical translation per English character (the length checks normalise by it).
    # English, Russian ~10% longer, Arabic a little shorter (short vowels unwritten), Devanagari /
    # Bengali / Urdu about the same; CJK far shorter. The outlier bounds are wide (0.33-3x), so +-30%
    # here changes little.
    char_ratio: float
    no_space: bool = False  # sentences are joined without spaces (Chinese, Japanese)


_ALL = (
    Language("eng_Latn", "en", "English", "Latn", "ENGLISH", 1.0),
    Language("zho_Hans", "zh", "Chinese", "Hans", "CHINESE", 0.32, no_space=True),
    Language("hin_Deva", "hi", "Hindi", "Deva", "HINDI", 1.0),
    Language("spa_Latn", "es", "Spanish", "Latn", "SPANISH", 1.15),
    Language("fra_Latn", "fr", "French", "Latn", "FRENCH", 1.15),
    Language("arb_Arab", "ar", "Arabic", "Arab", "ARABIC", 0.90),
    Language("ben_Beng", "bn", "Bengali", "Beng", "BENGALI", 0.95),
    Language("rus_Cyrl", "ru", "Russian", "Cyrl", "RUSSIAN", 1.10),
    Language("urd_Arab", "ur", "Urdu", "Arab", "URDU", 1.0),
    Language("jpn_Jpan", "ja", "Japanese", "Jpan", "JAPANESE", 0.40, no_space=True),
    Language("kor_Hang", "ko", "Korean", "Hang", "KOREAN", 0.50),
)
# Languages outside the paper's eleven that real corpora contain (WIT has zh-TW): known, so their rows
# are named correctly when quarantined, but not translation targets.
_OTHER = (
    Language("zho_Hant", "zh-TW", "Chinese (Traditional)", "Hant", "CHINESE", 0.32, no_space=True),
)

REGISTRY: MappingProxyType[str, Language] = MappingProxyType({lang.flores: lang for lang in _ALL + _OTHER})
_BY_ISO = {lang.iso: lang.flores for lang in _ALL + _OTHER}

SOURCE_LANG = "eng_Latn"
TARGET_LANGS = tuple(lang.flores for lang in _ALL if lang.flores != SOURCE_LANG)
LANGS = (SOURCE_LANG,) + TARGET_LANGS
LANGUAGE_NAMES = MappingProxyType({code: REGISTRY[code].name for code in LANGS})
NO_SPACE_LANGS = frozenset(code for code, lang in REGISTRY.items() if lang.no_space) | {"yue_Hant"}


class UnknownLanguage(ValueError):
    """A language code that the registry does not know."""


def language(code: str) -> Language:
    """The registry entry of a FLORES code; a clear error for anything else."""
    try:
        return REGISTRY[code]
    except KeyError:
        raise UnknownLanguage(f"unknown language code {code!r}; known FLORES codes: {sorted(REGISTRY)}") from None


def flores_from_iso(iso: str) -> str | None:
    """'fr' -> 'fra_Latn'; None when the ISO (WIT) code has no FLORES mapping here."""
    return _BY_ISO.get(iso)
