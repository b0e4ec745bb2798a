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


# --- training shards and stage mixtures -------------------------------------------------------------

# the shard sets `pipeline.shards.sets.SHARD_SETS` defines (a test keeps the two in step): English and
# native sets by their source's name, translated ones with `_m` (the paper's "CI M", "CT M"; LAVAM)
SHARD_SETS = ("cc_sbu", "laion", "captions_m", "llava_instruct", "lavam", "palo", "ci", "ci_m", "ct", "ct_m",
              "flores", "xstorycloze", "wit")
STAGES = ("stage1", "stage2", "stage3")


class ShardSettings(_Strict):
    """Arrow training shards (`pipeline.shards`): file size, order and what goes in."""

    target_bytes: int = Field(64 << 20, ge=1 << 10)  # a shard file is closed once it reaches this size
    batch_rows: int = Field(256, ge=1)  # rows per Arrow record batch (a file holds whole batches)
    seed: int = 0  # rows are stored in an order seeded by this and the row id: byte-identical re-runs
    include_suspect: bool = False  # keep translated rows marked `translation_suspect` (default: dropped)
    # MiniGPT's stage-1 caption clean-up: lowercase (cased scripts only) and cut to this many whitespace
    # words; languages written without spaces (Chinese, Japanese) are cut to a character budget instead
    caption_max_words: int = Field(50, ge=1)
    lowercase_captions: bool = True


class StageMixture(_Strict):
    """The shard sets one training stage samples from, with their sampling weights: each batch comes from
    ONE set, chosen with probability weight / sum of weights (MiniGPT's `sample_ratio`)."""

    datasets: dict[str, float]

    @field_validator("datasets")
    @classmethod
    def _known_positive(cls, datasets: dict[str, float]) -> dict[str, float]:
        if not datasets:
            raise ValueError("a stage needs at least one shard set")
        problems = []
        unknown = [n for n in datasets if n not in SHARD_SETS]
        if unknown:
            problems.append(f"unknown shard set(s) {unknown}; valid: {list(SHARD_SETS)}")
        bad = {n: w for n, w in datasets.items() if not 0 < w < float("inf")}
        if bad:
            problems.append(f"sampling weights must be finite and > 0, got {bad}")
        if problems:
            raise ValueError("; ".join(problems))
        return datasets


class Profile(_Strict):
    name: str
    lake_root: str  # local folder (relative to the repo) or an fsspec URL (s3://bucket/prefix)
    languages: tuple[str, ...] = TARGET_LANGS
    sources: Sources
    download: DownloadSettings = DownloadSettings()
    translation: TranslationSettings = TranslationSettings()
    toy_world: ToyWorld | None = None  # present only in the toy profile
    shards: ShardSettings = ShardSettings()
    stages: dict[Literal[STAGES], StageMixture] = {}  # stage -> its shard sets and weights

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


# --- overlays: a profile changed by a few keys (configs/ablations/: the rows of the paper's Table 2) ----

def deep_merge(base: dict, overlay: dict) -> dict:
    """`overlay` merged into `base`, mapping by mapping; a `null` in the overlay removes the key."""
    out = dict(base)
    for key, value in overlay.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def load_overlay(overlay: str | os.PathLike, base: Profile | str | os.PathLike | None = None) -> Profile:
    """A profile overlay (e.g. `configs/ablations/table2_row2_ci.yaml`) merged onto `base` (a Profile, a
    profile file, or the active profile) and validated like a profile. Unless it sets `name`, the result is
    named `<base name>+<overlay file stem>`."""
    path = profile_path(overlay)
    if not path.is_file():
        raise ConfigError(f"overlay file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise ConfigError(f"overlay {path} is not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"overlay {path} must be a mapping of profile keys, got {type(data).__name__}")
    base_profile = base if isinstance(base, Profile) else load_profile(base)
    merged = deep_merge(base_profile.model_dump(mode="json"), data)
    merged.setdefault("name", base_profile.name)
    if "name" not in data:
        merged["name"] = f"{base_profile.name}+{path.stem}"
    try:
        return Profile.model_validate(merged)
    except ValidationError as e:
        raise ConfigError(_format_errors(e, path).replace(f"invalid profile {path}",
                                                          f"invalid overlay {path} (on profile {base_profile.name})", 1)
                          ) from None
