"""Profiles: one typed schema for `configs/*.yaml`.

A profile is data. `load_profile()` reads the YAML named by MMG4_CONFIG (default `configs/toy.yaml`),
validates it, and fails with a message that names the offending key or path. Switching profile never
changes code: the toy and paper profiles go through the same readers, downloaders and models.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from pipeline.languages import TARGET_LANGS

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PROFILE = REPO_ROOT / "configs" / "toy.yaml"
ENV_VAR = "MMG4_CONFIG"


class ConfigError(ValueError):
    """A profile that cannot be used; the message says which key or file and how to fix it."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CaptionSource(_Strict):
    """An image-caption URL list (CC/SBU/LAION style) downloaded with img2dataset."""

    url_list: str  # parquet/csv/tsv/json with `url` and `caption` columns
    input_format: Literal["parquet", "csv", "tsv", "json", "jsonl"] = "parquet"
    url_col: str = "url"
    caption_col: str = "caption"


class ConversationSource(_Strict):
    """LLaVA-format rows (LLaVA-Instruct, PALO, Cambrian): a JSON list or JSONL file."""

    path: str
    image_root: str | None = None  # folder that the rows' `image` paths are relative to


class TableSource(_Strict):
    """A tabular corpus: one file or a glob (WIT, XStoryCloze, MMMU)."""

    path: str


class FloresSource(_Strict):
    folder: str  # holds `{lang}.{split}` files, line-aligned
    split: str = "devtest"


class Sources(_Strict):
    cc_sbu: CaptionSource
    laion: CaptionSource
    llava_instruct: ConversationSource
    palo: ConversationSource
    cambrian: ConversationSource
    wit: TableSource
    flores: FloresSource
    xstorycloze: TableSource
    mmmu: TableSource


class DownloadSettings(_Strict):
    processes: int = Field(1, ge=1)
    threads: int = Field(8, ge=1)
    timeout_s: float = Field(10.0, gt=0)
    retries: int = Field(0, ge=0)
    image_size: int = Field(224, ge=16)
    shard_size: int = Field(10_000, ge=1)


class ToyWorld(_Strict):
    """Sizes of the offline toy world (only in the toy profile)."""

    seed: int = 1234
    scenes: int = Field(240, ge=10)
    cc_sbu_pairs: int = Field(60, ge=1)
    laion_pairs: int = Field(60, ge=1)
    broken_urls: int = Field(6, ge=0)  # 404s, truncated JPEGs and time-outs mixed into the URL lists
    llava_rows: int = Field(120, ge=1)
    palo_rows: int = Field(120, ge=1)
    cambrian_rows: int = Field(120, ge=1)
    wit_rows: int = Field(120, ge=1)
    wit_mismatch_fraction: float = Field(0.3, ge=0, le=1)
    xstorycloze_stories: int = Field(40, ge=1)
    mmmu_questions: int = Field(60, ge=4)
    bad_rows: bool = True  # plant malformed rows so the quarantine path is exercised


TRANSLATABLE = ("llava_instruct", "cambrian_image", "cambrian_text", "captions", "mmmu")
MAX_CHUNKS = 999  # chunk keys are three digits: 000..998


def _require_translatable(names) -> None:
    unknown = [n for n in names if n not in TRANSLATABLE]
    if unknown:
        raise ValueError(f"unknown dataset(s) {unknown}; translatable: {list(TRANSLATABLE)}")


class ToyNllbSettings(_Strict):
    """Size and training knobs of the toy NLLB (`pipeline.toy.nllb`; toy profile only). The defaults reach
    chrF >= 80 on held-out toy sentences in every target language in a few minutes on 2 CPU cores."""

    # tokenizer
    vocab_size: int = Field(1600, ge=100)  # SentencePiece BPE pieces (+ 202 language codes + <mask>)
    max_piece_length: int = Field(16, ge=1)  # (Han and kana pieces are single characters)
    # model (M2M100 = NLLB architecture: pre-norm, scaled embeddings, sinusoidal positions, tied output)
    d_model: int = Field(96, ge=8)
    encoder_layers: int = Field(2, ge=1)
    decoder_layers: int = Field(2, ge=1)
    attention_heads: int = Field(4, ge=1)
    ffn_dim: int = Field(384, ge=1)
    dropout: float = Field(0.0, ge=0, lt=1)  # held-out sentences recombine seen words: no dropout needed
    attention_dropout: float = Field(0.0, ge=0, lt=1)
    max_positions: int = Field(128, ge=8)
    # training
    seed: int = 0
    steps: int = Field(1000, ge=1)
    batch_size: int = Field(64, ge=1)  # sentence pairs, uniformly mixed over languages and directions
    lr: float = Field(3e-3, gt=0)
    warmup_steps: int = Field(100, ge=0)
    min_lr_ratio: float = Field(0.05, ge=0, le=1)  # cosine decay to lr * min_lr_ratio
    weight_decay: float = Field(0.01, ge=0)
    label_smoothing: float = Field(0.1, ge=0, lt=1)
    grad_clip: float = Field(1.0, ge=0)  # 0: no clipping
    heldout_fraction: float = Field(0.08, ge=0, lt=1)
    bare_words: bool = True  # also train on the bare attribute words (multiple-choice options)
    # rows of a sentence template with fewer rows are repeated up to this many: without it a one-row
    # template ("Describe the picture.") is seen 240x less often than the captions and comes out garbled
    min_template_rows: int = Field(24, ge=0)
    # torch intra-op threads. 1, not 2: this model's matmuls are tiny, and on a busy 2-core machine two
    # OpenMP threads spin against the other processes (measured 5x slower per step than one thread)
    threads: int = Field(1, ge=1)
    log_every: int = Field(100, ge=1)

    @model_validator(mode="after")
    def _heads_divide_width(self) -> "ToyNllbSettings":
        if self.d_model % self.attention_heads:
            raise ValueError(f"d_model ({self.d_model}) must be a multiple of attention_heads "
                             f"({self.attention_heads})")
        return self


class TranslationSettings(_Strict):
    """NLLB on CTranslate2, the translation memory, and the quality bars of the translation assets."""

    model: str = "toy"  # "toy" (trained offline by the nllb_model asset) or a Hugging Face model id
    quantization: str = "int8"  # conversion: int8 (CPU), int8_float16 (GPU)
    device: Literal["cpu", "cuda", "auto"] = "cpu"
    compute_type: str = "int8"
    inter_threads: int = Field(1, ge=1)
    intra_threads: int = Field(0, ge=0)
    batch_tokens: int = Field(2048, ge=16)
    # decode the next batch while the last one is checked and stored: faster on a GPU, but a killed
    # run may redo two batches instead of one
    overlap_batches: bool = False
    beam_size: int = Field(1, ge=1)
    memory_url: str | None = None  # default: sqlite file in the lake (tm/translation_memory.sqlite)
    langid_threshold: float = Field(0.8, ge=0, le=1)
    schedule: str = "0 3 * * *"  # cron of the scheduled re-translation (a no-op when nothing changed)
    datasets: tuple[str, ...] = TRANSLATABLE
    # rows of a large dataset split into this many partitions per language (by a stable hash of the
    # row id), so a backfill fans out; a dataset not named here has one partition per language
    chunks: dict[str, int] = {}
    toy_nllb: ToyNllbSettings = ToyNllbSettings()  # the toy model's size and training (toy profile only)

    @field_validator("datasets")
    @classmethod
    def _known_datasets(cls, names: tuple[str, ...]) -> tuple[str, ...]:
        _require_translatable(names)
        return names

    @field_validator("chunks")
    @classmethod
    def _valid_chunks(cls, chunks: dict[str, int]) -> dict[str, int]:
        _require_translatable(chunks)
        bad = {n: c for n, c in chunks.items() if not 1 <= c <= MAX_CHUNKS}
        if bad:
            raise ValueError(f"chunk counts must be between 1 and {MAX_CHUNKS}: {bad}")
        return chunks

    def chunk_count(self, dataset: str) -> int:
        return self.chunks.get(dataset, 1)


class ToyNllbClipSettings(_Strict):
    """Size and training knobs of the toy NLLB-CLIP (`pipeline.toy.nllb_clip`; toy profile only): a tiny
    ViT image tower and the toy NLLB's encoder as text tower (pooled at the language tag), built by
    open_clip itself and trained with a balanced sigmoid loss without bias, so that cosine 0 is the
    decision boundary the filter's threshold assumes (REFERENCE 6)."""

    # image tower (open_clip's own VisionTransformer)
    image_size: int = Field(112, ge=16)
    patch_size: int = Field(16, ge=2)
    vision_layers: int = Field(2, ge=1)
    vision_width: int = Field(64, ge=8)
    vision_head_width: int = Field(32, ge=8)
    mlp_ratio: float = Field(2.0, gt=0)
    # shared embedding and text side (the text tower's width is the toy NLLB's d_model)
    embed_dim: int = Field(64, ge=8)
    context_length: int = Field(32, ge=8)
    init_from_nllb: bool = True  # text tower starts from the toy NLLB's encoder (else random)
    # training
    seed: int = 0
    steps: int = Field(800, ge=1)
    batch_size: int = Field(48, ge=2)  # distinct scenes per batch: every off-diagonal pair is a true negative
    lr: float = Field(2e-3, gt=0)
    warmup_steps: int = Field(50, ge=0)
    min_lr_ratio: float = Field(0.05, ge=0, le=1)  # cosine decay to lr * min_lr_ratio (a constant lr blew up)
    weight_decay: float = Field(0.05, ge=0)
    grad_clip: float = Field(1.0, ge=0)  # 0: no clipping
    init_logit_scale: float = Field(10.0, gt=0)  # exp(logit_scale) at the start; learnt, capped at 100
    draws_per_scene: int = Field(3, ge=1)  # differently jittered renderings of each training scene
    heldout_fraction: float = Field(0.125, ge=0, lt=1)  # attribute combinations never seen in training
    eval_draws: int = Field(2, ge=1)  # renderings of each held-out combination in the evaluation
    threads: int = Field(1, ge=1)  # torch intra-op threads (one is faster on a busy 2-core machine)
    log_every: int = Field(100, ge=1)

    @model_validator(mode="after")
    def _patches_tile_image(self) -> "ToyNllbClipSettings":
        if self.image_size % self.patch_size:
            raise ValueError(f"image_size ({self.image_size}) must be a multiple of patch_size ({self.patch_size})")
        if self.vision_width % self.vision_head_width:
            raise ValueError(f"vision_width ({self.vision_width}) must be a multiple of vision_head_width "
                             f"({self.vision_head_width})")
        return self


class WitSettings(_Strict):
    """WIT filtered by NLLB-CLIP (paper: text-quality filter, then image-caption cosine >= 0)."""

    model: str = "toy"  # "toy" (trained offline by the nllb_clip_model asset) or an open_clip model name
    pretrained: str | None = "v1"  # open_clip pretrained tag of `model` (ignored for the toy model)
    device: Literal["cpu", "cuda", "auto"] = "cpu"
    threshold: float = Field(0.0, ge=-1, le=1)  # keep pairs whose cosine is >= threshold (paper: 0.0)
    batch_size: int = Field(64, ge=1)  # pairs per forward pass, all of one language
    decode_threads: int = Field(2, ge=1)  # JPEG decoding + preprocessing while the model runs
    torch_threads: int = Field(0, ge=0)  # 0: leave torch's default
    # text-quality filter (REFERENCE 1: corrupted text, captions too short to be real)
    min_caption_chars: int = Field(12, ge=0)  # in English-equivalent characters (languages.char_ratio)
    min_script_share: float = Field(0.5, ge=0, le=1)  # letters in the language's own script
    # the quality bar of the toy model's asset check: per language, on held-out pairs
    toy_quality_bar: float = Field(0.95, ge=0, le=1)
    toy_nllb_clip: ToyNllbClipSettings = ToyNllbClipSettings()


class Profile(_Strict):
    name: str
    lake_root: str  # local folder (relative to the repo) or an fsspec URL (s3://bucket/prefix)
    languages: tuple[str, ...] = TARGET_LANGS
    sources: Sources
    download: DownloadSettings = DownloadSettings()
    translation: TranslationSettings = TranslationSettings()
    wit: WitSettings = WitSettings()
    toy_world: ToyWorld | None = None  # present only in the toy profile

    @field_validator("languages")
    @classmethod
    def _known_languages(cls, langs: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [lang for lang in langs if lang not in TARGET_LANGS]
        if unknown:
            raise ValueError(f"unknown language code(s) {unknown}; valid FLORES codes: {list(TARGET_LANGS)}")
        return langs

    @property
    def is_toy(self) -> bool:
        return self.toy_world is not None


def _format_errors(err: ValidationError, path: Path) -> str:
    lines = [f"invalid profile {path}:"]
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"]) or "(top level)"
        if e["type"] == "extra_forbidden":
            lines.append(f"  - {key}: unknown key (check the spelling; see configs/toy.yaml for the schema)")
        elif e["type"] == "missing":
            lines.append(f"  - {key}: required key is missing")
        else:
            lines.append(f"  - {key}: {e['msg']} (got {e.get('input')!r})")
    return "\n".join(lines)


def profile_path(path: str | os.PathLike | None = None) -> Path:
    chosen = path or os.environ.get(ENV_VAR) or DEFAULT_PROFILE
    p = Path(chosen)
    if not p.is_absolute() and not p.exists():
        p = REPO_ROOT / p
    return p


def load_profile(path: str | os.PathLike | None = None) -> Profile:
    """Load and validate a profile: explicit path, else $MMG4_CONFIG, else configs/toy.yaml."""
    p = profile_path(path)
    if not p.is_file():
        raise ConfigError(f"profile file not found: {p} (set {ENV_VAR} to a file in configs/, e.g. configs/toy.yaml)")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise ConfigError(f"profile {p} is not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"profile {p} must be a mapping of keys, got {type(data).__name__}")
    try:
        return Profile.model_validate(data)
    except ValidationError as e:
        raise ConfigError(_format_errors(e, p)) from None
