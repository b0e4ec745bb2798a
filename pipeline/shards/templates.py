"""The instruction templates that turn captions and text corpora into LLaVA-format conversations.

- Stage-1 captions: MiniGPT lowercases a caption and cuts it to 50 whitespace words. That rule is kept for
  languages written with spaces; Chinese and Japanese have no spaces between words (a whole caption is one
  "word"), so they are cut to a character budget of the same length instead (REFERENCE 2).
- Flores (MText): every ordered pair of languages, "Translate the following {src} passage into {tgt}:
  '{text}'", answered by the sentence in the target language: n languages give n*(n-1) pairs per sentence
  (110 for the paper's eleven).
- XStoryCloze (MText): the four sentences of the story, "Provide a one-sentence ending in {language}.",
  answered by the right ending.
- WIT: the image and its article title, answered by the caption in the row's language.

Prompts are English, as in MiniGPT; they name the language of the answer when it is not English.
"""
from __future__ import annotations

from itertools import permutations
from typing import Any

from pipeline.languages import SOURCE_LANG, language

IMAGE_TOKEN = "<image>"
CAPTION_PROMPT = "Briefly describe this image."
FLORES_TEMPLATE = "Translate the following {src} passage into {tgt}: '{text}'"
STORY_TEMPLATE = "{story}\nProvide a one-sentence ending in {language}."
WIT_PROMPT = "This image is from the Wikipedia article \"{title}\". Write its caption in {language}."
WIT_PROMPT_UNTITLED = "This image is from Wikipedia. Write its caption in {language}."
# English characters per whitespace word (with its space): the character budget of a no-space language is
# max_words * this * the language's characters per English character
CHARS_PER_WORD = 6.0
_CASED_SCRIPTS = {"Latn", "Cyrl"}

Turn = dict[str, str]


def turns(question: str, answer: str, image: bool = False) -> list[Turn]:
    """One human/gpt exchange in the LLaVA format (`<image>` leads the question of an image row)."""
    return [{"from": "human", "value": f"{IMAGE_TOKEN}\n{question}" if image else question},
            {"from": "gpt", "value": answer}]


def normalize_caption(text: str, lang: str, max_words: int = 50, lowercase: bool = True) -> str:
    """MiniGPT's stage-1 caption clean-up, made safe for every language of the paper."""
    info = language(lang)
    text = " ".join(text.split())
    if lowercase and info.script in _CASED_SCRIPTS:
        text = text.lower()
    if info.no_space:
        budget = max(1, round(max_words * CHARS_PER_WORD * info.char_ratio))
        return text[:budget].rstrip()
    return " ".join(text.split(" ")[:max_words])


def _in(lang: str) -> str:
    return "" if lang == SOURCE_LANG else f" Answer in {language(lang).name}."


def caption_conversation(caption: str, lang: str) -> list[Turn]:
    return turns(CAPTION_PROMPT + _in(lang), caption, image=True)


def flores_pairs(row: dict[str, Any], langs: list[str]) -> list[tuple[str, str, list[Turn]]]:
    """(source language, target language, conversation) for every ordered pair of `langs` of a Flores row."""
    return [(src, tgt, turns(FLORES_TEMPLATE.format(src=language(src).name, tgt=language(tgt).name, text=row[src]),
                             row[tgt]))
            for src, tgt in permutations(langs, 2)]


def story_conversation(row: dict[str, Any]) -> list[Turn]:
    """An XStoryCloze row: its four sentences, answered by the right ending."""
    lang = row["lang"]
    sep = "" if language(lang).no_space else " "
    story = sep.join(str(row[f"input_sentence_{i}"]).strip() for i in range(1, 5))
    answer = str(row[f"sentence_quiz{int(row['answer_right_ending'])}"]).strip()
    return turns(STORY_TEMPLATE.format(story=story, language=language(lang).name), answer)


def wit_conversation(caption: str, title: str | None, lang: str) -> list[Turn]:
    name = language(lang).name
    prompt = WIT_PROMPT.format(title=title.strip(), language=name) if title and title.strip() \
        else WIT_PROMPT_UNTITLED.format(language=name)
    return turns(prompt, caption, image=True)
