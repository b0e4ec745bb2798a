"""NLLB on CTranslate2, for both profiles: download, conversion, fingerprint, loading and chrF.

- `download_nllb(model_id)`: a Hugging Face NLLB checkpoint -> its local snapshot folder (paper profile;
  the toy profile trains its own, see `pipeline.toy.nllb`).
- `convert_to_ctranslate2(hf_dir, out_dir, quantization)`: a Hugging Face NLLB folder -> a CTranslate2
  model folder (model.bin, config.json, shared_vocabulary.json and the tokenizer files). Written into a
  temporary sibling folder and renamed into place, so a killed conversion never leaves half a model.
- `model_fingerprint(ct2_dir)`: sha256 of the converted files; the translation memory's model key.
- `load_translator(ct2_dir, ...)` -> `(ctranslate2.Translator, tokenizer)` (the production engine
  `pipeline.translation.translator.Translator` wraps it).
- `evaluate_chrf(translator, rows, langs)`: corpus chrF (sacrebleu) of parallel rows, both directions,
  translated by the production `Translator`. Results are ``{"eng_to_x": {lang: chrF}, "x_to_eng":
  {lang: chrF}}`` (keys are FLORES codes of the non-English side).
- Temporary folders (`tmp_dir`, `tmp_sibling`) carry their owner (host and pid) in their name;
  `sweep_stale_tmp(folder, prefixes)` removes the ones whose owner is gone, so what a killed run left
  behind goes on the next run (`tmp_sibling` sweeps its own kind before it makes a new one).
"""
from __future__ import annotations

import functools
import hashlib
import os
import shutil
import socket
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from pipeline.languages import SOURCE_LANG, TARGET_LANGS

if TYPE_CHECKING:
    from pipeline.translation.translator import Translator

__all__ = [
    "FAIRSEQ_LANGUAGE_CODES",
    "language_codes",
    "lang_id",
    "load_tokenizer",
    "download_nllb",
    "convert_to_ctranslate2",
    "model_fingerprint",
    "load_translator",
    "evaluate_chrf",
    "local_path",
    "tmp_dir",
    "tmp_prefixes",
    "tmp_sibling",
    "replace_dir",
    "sweep_stale_tmp",
]

SPM_FILE = "sentencepiece.bpe.model"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", SPM_FILE, "special_tokens_map.json")
# what download_nllb fetches from the hub: configs, weights, the SentencePiece model
HUB_PATTERNS = ("*.json", "*.safetensors", "*.model", "*.bin")
# files of a converted model that identify it (the fingerprint): weights, config, vocabulary, tokenizer
_FINGERPRINT_FILES = ("model.bin", "config.json", "shared_vocabulary.json", "shared_vocabulary.txt",
                      "source_vocabulary.json", "source_vocabulary.txt", "target_vocabulary.json",
                      "target_vocabulary.txt", "vocabulary.json", "vocabulary.txt") + TOKENIZER_FILES


# ---------------------------------------------------------------------------
# Language codes and tokenizer
# ---------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def language_codes() -> tuple[str, ...]:
    """NLLB's 202 FLORES-200 language codes, in NLLB's order (from transformers)."""
    from transformers.models.nllb.tokenization_nllb import FAIRSEQ_LANGUAGE_CODES as codes

    return tuple(codes)


def __getattr__(name: str) -> Any:
    # FAIRSEQ_LANGUAGE_CODES is read lazily: importing this module must not import transformers
    if name == "FAIRSEQ_LANGUAGE_CODES":
        return list(language_codes())
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def lang_id(tok, lang: str) -> int:
    """The token id of language code `lang`; ValueError naming it when the tokenizer does not know it."""
    idx = tok.convert_tokens_to_ids(lang)
    if idx is None or idx == tok.unk_token_id:
        raise ValueError(f"unknown language code {lang!r}: not a token of this NLLB tokenizer "
                         f"(use FLORES-200 codes such as 'fra_Latn')")
    return idx


def load_tokenizer(folder: str | os.PathLike):
    """The NLLB tokenizer saved in `folder` (an HF model folder or a converted CTranslate2 folder)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(folder))


# ---------------------------------------------------------------------------
# Paths and temporary folders
# ---------------------------------------------------------------------------


def local_path(path: Any, what: str) -> Path:
    """A local filesystem path from a str, Path or local UPath; ValueError for remote ones."""
    protocol = getattr(path, "protocol", "")
    if protocol not in ("", "file", "local", None):
        raise ValueError(f"{what} must be on the local filesystem (CTranslate2 and transformers read local "
                         f"folders); got {path!s} with protocol {protocol!r}")
    try:
        return Path(os.fspath(path))
    except TypeError as exc:
        raise ValueError(f"{what} must be a local path; cannot use {path!r}") from exc


_OWNER_SEP = "~"  # temporary names: <prefix><host>~<pid>~<random>


def _host() -> str:
    return socket.gethostname().replace(_OWNER_SEP, "-")


def _owner() -> str:
    return f"{_host()}{_OWNER_SEP}{os.getpid()}{_OWNER_SEP}"


def tmp_dir(parent: Path, prefix: str) -> Path:
    """A new temporary folder `parent/<prefix><host>~<pid>~<random>` (the name says who owns it)."""
    parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=prefix + _owner(), dir=parent))


def tmp_prefixes(final: Path) -> tuple[str, str]:
    """Name prefixes of the temporary folders made for `final`: `.<name>.tmp-` (being built, see
    `tmp_sibling`) and `.<name>.old-` (swapped out, see `replace_dir`)."""
    return f".{final.name}.tmp-", f".{final.name}.old-"


def tmp_sibling(final: Path) -> Path:
    """A temporary folder beside `final` to build it in; the stale ones a killed run left are swept first."""
    sweep_stale_tmp(final.parent, tmp_prefixes(final))
    return tmp_dir(final.parent, tmp_prefixes(final)[0])


def replace_dir(tmp: Path, final: Path) -> None:
    """Move a finished folder into place; an old `final` is swapped out, then deleted."""
    os.chmod(tmp, 0o755)  # mkdtemp makes it private
    old = None
    if final.exists():
        old = final.with_name(f"{tmp_prefixes(final)[1]}{_owner()}{time.monotonic_ns()}")
        final.rename(old)
    tmp.rename(final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _owner_alive(tag: str) -> bool:
    """Whether the process named by a temporary folder's tag (`<host>~<pid>~...`) may still be running.
    An untagged name (a run of older code) is stale; another host's folder is kept (its pid means nothing
    here)."""
    parts = tag.split(_OWNER_SEP)
    if len(parts) < 3 or not parts[1].isdigit():
        return False
    if parts[0] != _host():
        return True
    pid = int(parts[1])
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def sweep_stale_tmp(folder: str | os.PathLike, prefixes: Sequence[str]) -> list[str]:
    """Delete the folders in `folder` whose name starts with one of `prefixes` and whose owner is gone
    (a killed run's leftovers); returns their names. Folders of live processes and of other hosts stay."""
    base = local_path(folder, "folder")
    if not base.is_dir():
        return []
    removed = []
    for entry in sorted(base.iterdir()):
        prefix = next((p for p in prefixes if entry.name.startswith(p)), None)
        if prefix is None or entry.is_symlink() or not entry.is_dir():
            continue
        if not _owner_alive(entry.name[len(prefix):]):
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry.name)
    return removed


# ---------------------------------------------------------------------------
# Download, conversion and loading
# ---------------------------------------------------------------------------


def download_nllb(model_id: str) -> Path:
    """The local folder of Hugging Face checkpoint `model_id` (e.g. facebook/nllb-200-distilled-1.3B),
    downloaded once into the hub cache: configs, weights and tokenizer files (HUB_PATTERNS). Needs the
    network, and HF_TOKEN for gated models."""
    from huggingface_hub import snapshot_download

    return Path(snapshot_download(model_id, allow_patterns=list(HUB_PATTERNS)))


def convert_to_ctranslate2(hf_dir: str | os.PathLike, out_dir: str | os.PathLike,
                           quantization: str | None = "int8") -> Path:
    """Convert a Hugging Face NLLB folder to CTranslate2 under `out_dir` (replacing what is there).

    `quantization`: "int8" (CPU), "int8_float16" (GPU), "float16", None/"float32" (no quantization), ...
    The tokenizer files are copied along (tokenizer.json, tokenizer_config.json, and
    sentencepiece.bpe.model / special_tokens_map.json where present). The model is written into a
    temporary sibling folder that is renamed into place at the end, so `out_dir` only ever holds a
    complete model.
    """
    from ctranslate2.converters import TransformersConverter

    src = local_path(hf_dir, "hf_dir")
    final = local_path(out_dir, "out_dir")
    if not src.is_dir():
        raise FileNotFoundError(f"no Hugging Face NLLB model folder at {src}: download it (paper profile) or "
                                f"train the toy one (`python -m pipeline.toy.nllb --out DIR`, or "
                                f"materialise the nllb_model asset) first")
    if not (src / "config.json").is_file():
        raise ValueError(f"{src} is not a Hugging Face model folder (no config.json); point hf_dir at the "
                         f"folder that holds config.json and the model weights")
    if not _has_tokenizer(src):
        raise ValueError(f"{src} has no tokenizer (tokenizer.json or {SPM_FILE}); save it with "
                         f"tokenizer.save_pretrained({str(src)!r}) or download it with the model")
    if quantization in (None, "", "none", "float32"):
        quantization = None
    copy = [f for f in TOKENIZER_FILES if (src / f).is_file()]
    tmp = tmp_sibling(final)
    try:
        try:
            TransformersConverter(str(src), copy_files=copy).convert(str(tmp), quantization=quantization,
                                                                     force=True)
        except (OSError, ValueError, KeyError) as exc:
            raise ValueError(f"cannot convert the model in {src} to CTranslate2 ({exc}); is it a complete "
                             f"NLLB/M2M100 folder (config.json, weights, tokenizer files)?") from exc
        replace_dir(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def _has_tokenizer(folder: Path) -> bool:
    return (folder / "tokenizer.json").is_file() or (folder / SPM_FILE).is_file()


def model_fingerprint(ct2_dir: str | os.PathLike) -> str:
    """sha256 over the converted model's identifying files (name and content, sorted by name); hex[:16]."""
    folder = local_path(ct2_dir, "ct2_dir")
    if not (folder / "model.bin").is_file():
        raise FileNotFoundError(f"no CTranslate2 model at {folder} (model.bin missing): materialise the "
                                f"nllb_model asset, or run convert_to_ctranslate2 on the HF model")
    digest = hashlib.sha256()
    for name in sorted(f for f in _FINGERPRINT_FILES if (folder / f).is_file()):
        digest.update(name.encode() + b"\x00")
        with open(folder / name, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        digest.update(b"\x00")
    return digest.hexdigest()[:16]


def load_translator(ct2_dir: str | os.PathLike, device: str = "cpu", compute_type: str = "int8",
                    inter_threads: int = 1, intra_threads: int = 0):
    """`(ctranslate2.Translator, tokenizer)` for a converted NLLB folder."""
    import ctranslate2

    folder = local_path(ct2_dir, "ct2_dir")
    if not folder.is_dir() or not (folder / "model.bin").is_file():
        what = "folder missing" if not folder.is_dir() else "model.bin missing"
        raise FileNotFoundError(f"no CTranslate2 NLLB model at {folder} ({what}): materialise the nllb_model "
                                f"asset (`dagster asset materialize --select nllb_model`), or convert an HF model "
                                f"with pipeline.translation.nllb.convert_to_ctranslate2")
    if not _has_tokenizer(folder):
        raise FileNotFoundError(f"the CTranslate2 model at {folder} has no tokenizer files (tokenizer.json, "
                                f"tokenizer_config.json): convert it again with convert_to_ctranslate2, "
                                f"which copies them")
    translator = ctranslate2.Translator(str(folder), device=device, compute_type=compute_type,
                                        inter_threads=inter_threads, intra_threads=intra_threads)
    return translator, load_tokenizer(folder)


# ---------------------------------------------------------------------------
# Evaluation
# ---------------------------------------------------------------------------


def evaluate_chrf(translator: Translator, rows: Sequence[dict[str, str]],
                  langs: Sequence[str] = TARGET_LANGS) -> dict[str, dict[str, float]]:
    """Corpus chrF (sacrebleu CHRF, default settings) of `translator` on parallel `rows` (dicts FLORES
    code -> sentence), translated by the production engine (`Translator.translate`, its decoding settings
    and guards included).

    Returns ``{"eng_to_x": {lang: chrF of eng_Latn -> lang against the rows' lang sentences},
    "x_to_eng": {lang: chrF of lang -> eng_Latn against the rows' English sentences}}``, rounded to 2
    decimals; a language without a sentence in any row is left out.
    """
    from sacrebleu.metrics import CHRF

    rows = [r for r in rows if r.get(SOURCE_LANG)]
    if not rows:
        raise ValueError("evaluate_chrf: no rows with an English (eng_Latn) sentence")
    for lang in (SOURCE_LANG, *langs):
        lang_id(translator.tokenizer, lang)
    have = {lang: [r for r in rows if r.get(lang)] for lang in langs}
    have = {lang: rs for lang, rs in have.items() if rs}
    # eng -> X: one call, mixed targets (the engine batches by tokens across languages)
    items = [(r[SOURCE_LANG], lang) for lang, rs in have.items() for r in rs]
    hyps = iter(translator.translate(items, src_lang=SOURCE_LANG))
    metric = CHRF()
    result: dict[str, dict[str, float]] = {"eng_to_x": {}, "x_to_eng": {}}
    for lang, rs in have.items():
        out = [next(hyps) for _ in rs]
        result["eng_to_x"][lang] = round(metric.corpus_score(out, [[r[lang] for r in rs]]).score, 2)
    # X -> eng: one call per source language
    for lang, rs in have.items():
        back = translator.translate([(r[lang], SOURCE_LANG) for r in rs], src_lang=lang)
        result["x_to_eng"][lang] = round(metric.corpus_score(back, [[r[SOURCE_LANG] for r in rs]]).score, 2)
    return result
