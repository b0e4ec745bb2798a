"""The paper's languages, as FLORES-200 codes (NLLB's language tags)."""

SOURCE_LANG = "eng_Latn"
TARGET_LANGS = (
    "zho_Hans", "hin_Deva", "spa_Latn", "fra_Latn", "arb_Arab",
    "ben_Beng", "rus_Cyrl", "urd_Arab", "jpn_Jpan", "kor_Hang",
)
LANGS = (SOURCE_LANG,) + TARGET_LANGS
LANGUAGE_NAMES = {
    "eng_Latn": "English", "zho_Hans": "Chinese", "hin_Deva": "Hindi", "spa_Latn": "Spanish",
    "fra_Latn": "French", "arb_Arab": "Arabic", "ben_Beng": "Bengali", "rus_Cyrl": "Russian",
    "urd_Arab": "Urdu", "jpn_Jpan": "Japanese", "kor_Hang": "Korean",
}
