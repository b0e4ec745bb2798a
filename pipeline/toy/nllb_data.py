"""The toy NLLB's data: its SentencePiece vocabulary, the train/held-out split of the toy world's parallel
corpus, template balancing, the bare attribute words, and the (source, target) training pairs.

Rows are dicts FLORES code -> sentence with "eng_Latn" always present; a row's *template* is the toy
sentence kind (`lexicon.KINDS`) its English sentence was generated from.
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Iterable, Sequence

from pipeline.languages import LANGS, SOURCE_LANG, TARGET_LANGS
from pipeline.toy import lexicon
from pipeline.translation.nllb import SPM_FILE, language_codes

__all__ = ["build_tokenizer", "kind_groups", "split_corpus", "balance_templates", "bare_word_rows",
           "training_pairs"]


# ---------------------------------------------------------------------------
# Tokenizer
# ---------------------------------------------------------------------------


def build_tokenizer(sentences: Iterable[str], out_dir: str | os.PathLike, vocab_size: int = 1600,
                    max_piece_length: int = 16):
    """Train a SentencePiece BPE model on `sentences` (all languages) and build an NLLB tokenizer on it.

    Han and kana pieces are single characters (see `_split_cjk`); other scripts get whole-word pieces.
    Writes `sentencepiece.bpe.model`, `tokenizer.json` and `tokenizer_config.json` into `out_dir` and
    returns the `NllbTokenizer`. The vocabulary follows NLLB's layout: <s>=0 <pad>=1 </s>=2 <unk>=3,
    the SentencePiece pieces, <mask>, then the 202 FLORES-200 language codes as special tokens.

    transformers 5: `NllbTokenizer(vocab_file=...)` silently ignores the SentencePiece file (every word
    becomes <unk>); `from_pretrained(folder, extra_special_tokens=codes)` converts it properly.
    """
    import sentencepiece as spm
    from transformers import NllbTokenizer

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    text = sorted({s.strip() for s in sentences if s and s.strip()})
    if not text:
        raise ValueError("build_tokenizer: no sentences to train the SentencePiece model on")
    with tempfile.TemporaryDirectory() as tmp:
        prefix = os.path.join(tmp, "spm")
        spm.SentencePieceTrainer.train(  # BPE training is deterministic (single thread)
            sentence_iterator=iter([_split_cjk(s) for s in text]), model_prefix=prefix, vocab_size=vocab_size,
            model_type="bpe", character_coverage=1.0, max_sentencepiece_length=max_piece_length,
            hard_vocab_limit=False, pretokenization_delimiter=_PIECE_BREAK,
            num_threads=1, minloglevel=2, unk_id=0, bos_id=1, eos_id=2, pad_id=-1,
        )
        # a folder holding only the SentencePiece model: from_pretrained would prefer a tokenizer.json
        spm_dir = os.path.join(tmp, "tokenizer")
        os.mkdir(spm_dir)
        shutil.copyfile(prefix + ".model", os.path.join(spm_dir, SPM_FILE))
        tok = NllbTokenizer.from_pretrained(spm_dir, extra_special_tokens=list(language_codes()))
        shutil.copyfile(prefix + ".model", out / SPM_FILE)
    tok.src_lang = SOURCE_LANG
    probe = text[0]
    pieces = tok.convert_ids_to_tokens(tok(probe)["input_ids"])
    if pieces[0] != SOURCE_LANG or pieces[-1] != tok.eos_token or tok.unk_token in pieces[1:-1]:
        raise RuntimeError(f"the NLLB tokenizer built from {out / SPM_FILE} is broken: {probe!r} -> {pieces}")
    tok.save_pretrained(str(out))
    return tok


# Han, kana and CJK punctuation: no spaces between words, so BPE trained on a few hundred templated
# sentences would merge slot words with their context ("色的小圆形" = colour + size + shape); pieces that
# never cross a character keep them compositional, as NLLB's pieces (mostly 1-2 characters) are.
_CJK_CHAR = re.compile(r"([\u3000-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef])")
_PIECE_BREAK = "\ue000"  # a private-use character: SentencePiece pieces never cross it (training only)


def _split_cjk(sentence: str) -> str:
    return _CJK_CHAR.sub(_PIECE_BREAK + r"\1" + _PIECE_BREAK, sentence).replace(
        _PIECE_BREAK * 2, _PIECE_BREAK).strip(_PIECE_BREAK)


# ---------------------------------------------------------------------------
# Corpus
# ---------------------------------------------------------------------------


def kind_groups() -> dict[str, str]:
    """English toy sentence -> its sentence kind (the template), from the lexicon."""
    groups: dict[str, str] = {}
    for kind in lexicon.KINDS:
        for row in lexicon.all_sentences(kind):
            groups.setdefault(row[SOURCE_LANG], kind)
    return groups


def split_corpus(rows: Sequence[dict[str, str]], fraction: float = 0.08, seed: int = 0
                 ) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """Deterministic train/held-out split of parallel rows (dicts lang -> sentence).

    round(fraction * len(rows)) rows are held out, chosen by a seeded hash of the English sentence, so
    the split does not depend on the rows' order. A row is only eligible when its template (the toy
    sentence kind) has at least three rows and at most a third of them are held out: a template the model
    never saw cannot be translated, and that would measure the split, not the model. Rows that are not toy
    sentences count as templates of their own (never held out).
    """
    if not 0 <= fraction < 1:
        raise ValueError(f"heldout fraction must be in [0, 1); got {fraction}")
    kinds = kind_groups()
    group_of = {r[SOURCE_LANG]: kinds.get(r[SOURCE_LANG], "row:" + r[SOURCE_LANG]) for r in rows}
    sizes: dict[str, int] = {}
    for g in group_of.values():
        sizes[g] = sizes.get(g, 0) + 1

    def rank(row: dict[str, str]) -> str:
        return hashlib.sha256(f"{seed}\x00{row[SOURCE_LANG]}".encode()).hexdigest()

    want = round(fraction * len(rows))
    taken: dict[str, int] = {}
    held: set[str] = set()
    for row in sorted(rows, key=rank):
        if len(held) >= want:
            break
        g = group_of[row[SOURCE_LANG]]
        if sizes[g] >= 3 and (taken.get(g, 0) + 1) * 3 <= sizes[g]:
            held.add(row[SOURCE_LANG])
            taken[g] = taken.get(g, 0) + 1
    train = [r for r in rows if r[SOURCE_LANG] not in held]
    heldout = [r for r in rows if r[SOURCE_LANG] in held]
    return train, heldout


def balance_templates(rows: Sequence[dict[str, str]], min_rows: int,
                      group_of: dict[str, str] | None = None) -> list[dict[str, str]]:
    """`rows`, with the rows of every group that has fewer than `min_rows` rows repeated (round-robin)
    until it has `min_rows`. `group_of` maps an English sentence to its group; default: the toy sentence
    templates. Rows outside every group are left as they are."""
    group_of = kind_groups() if group_of is None else group_of
    by_group: dict[str, list[dict[str, str]]] = {}
    for r in rows:
        if r[SOURCE_LANG] in group_of:
            by_group.setdefault(group_of[r[SOURCE_LANG]], []).append(r)
    out = list(rows)
    for members in by_group.values():
        out += [members[i % len(members)] for i in range(max(0, min_rows - len(members)))]
    return out


def bare_word_rows() -> tuple[list[dict[str, str]], dict[str, str]]:
    """One row per attribute word (the multiple-choice options), and each word's category."""
    rows, category_of = [], {}
    for category, values in (("colour", lexicon.COLOURS), ("shape", lexicon.SHAPES),
                             ("size", lexicon.SIZES), ("position", lexicon.POSITIONS)):
        for value in values:
            row = {lang: lexicon.word(category, value, lang) for lang in LANGS}
            rows.append(row)
            category_of[row[SOURCE_LANG]] = category
    return rows, category_of


def training_pairs(rows: Sequence[dict[str, str]], langs: Sequence[str] = TARGET_LANGS
                   ) -> list[tuple[str, str, str, str]]:
    """(src_lang, src_text, tgt_lang, tgt_text) for eng_Latn -> X and X -> eng_Latn of every row."""
    pairs = []
    for row in rows:
        eng = row[SOURCE_LANG]
        for lang in langs:
            if lang in row and row[lang].strip() and eng.strip():
                pairs.append((SOURCE_LANG, eng, lang, row[lang]))
                pairs.append((lang, row[lang], SOURCE_LANG, eng))
    return pairs
