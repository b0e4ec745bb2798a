"""Profiles: one typed schema for `configs/*.yaml`.

A profile is data. `load_profile()` reads the YAML named by MMG4_CONFIG (default `configs/toy.yaml`),
validates it, and fails with a message that names the offending key or path. Switching profile never
changes code: the toy and paper profiles go through the same readers, downloaders and models.

Why one file of ~460 lines: every section of a profile is a small class here, side by side, so one
place answers "what may a profile say"; the rest is loading, overlays (`load_overlay`, the Table 2
ablations) and `python -m pipeline.config check` (every missing input path at once).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from pipeline.languages import REGISTRY, TARGET_LANGS

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
    # multiplies the rows of the conversation corpora (LLaVA, PALO, Cambrian), for scaling benchmarks
    scale: int = Field(1, ge=1)
    # toy sentences repeat heavily (a few hundred templates), unlike real answers: with this, every
    # answer gains a sentence of its own, so the translation memory has few repeats to reuse
    unique_texts: bool = False


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

# CTranslate2's types: what `ct2-transformers-converter --quantization` accepts, and what a Translator's
# compute_type accepts (those plus "default" and "auto"); a typo fails when the profile loads, not at run time
Quantization = Literal["int8", "int8_float32", "int8_float16", "int8_bfloat16", "int16", "float16", "bfloat16",
                       "float32"]
ComputeType = Literal["default", "auto", "int8", "int8_float32", "int8_float16", "int8_bfloat16", "int16",
                      "float16", "bfloat16", "float32"]


class TranslationSettings(_Strict):
    """NLLB on CTranslate2, the translation memory, and the quality bars of the translation assets."""

    model: str = "toy"  # "toy" (trained offline by the nllb_model asset) or a Hugging Face model id
    quantization: Quantization = "int8"  # conversion: int8 (CPU), int8_float16 (GPU)
    device: Literal["cpu", "cuda", "auto"] = "cpu"
    compute_type: ComputeType = "int8"
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
    # datasets whose rows are each translated into ONE target language (a stable hash of the row id picks
    # it) instead of into all ten: a tenth of the cost, and every language gets rows of its own. The
    # others' rows are counted as dropped with that reason. Not for MMMU (every question in every language)
    one_language_per_row: tuple[str, ...] = ()
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

    @field_validator("one_language_per_row")
    @classmethod
    def _sliceable(cls, names: tuple[str, ...]) -> tuple[str, ...]:
        _require_translatable(names)
        if "mmmu" in names:
            raise ValueError("mmmu cannot be translated one language per row: MMMU Multi asks every question "
                             "in every language")
        return names

    def chunk_count(self, dataset: str) -> int:
        return self.chunks.get(dataset, 1)


class RawLimits(_Strict):
    """Bounds on one raw row: a row over a bound is quarantined with a reason naming the bound's key."""

    max_turn_chars: int = Field(20_000, ge=1)  # characters in one conversation turn
    max_turns: int = Field(64, ge=2)  # turns in one conversation
    max_caption_chars: int = Field(2_000, ge=1)  # a WIT caption
    max_field_chars: int = Field(20_000, ge=1)  # any other text cell: a Flores or story sentence, an MMMU question
    # one JSONL/TSV/Flores line or JSON-list element before it is parsed (a JSON-list element is counted
    # in characters once decoded): bounds a reader's memory, and is never held whole when over it
    max_row_bytes: int = Field(16 << 20, ge=1024)


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

# ---------------------------------------------------------------------------
# The vision-language model and its training stages (pipeline.model, pipeline.training)
# ---------------------------------------------------------------------------


class EvaArch(_Strict):
    """A timm `Eva` architecture registered under `VisionSettings.model` (the toy EVA); None: open_clip's own."""

    patch_size: int = Field(16, ge=2)
    embed_dim: int = Field(64, ge=8)
    depth: int = Field(3, ge=2)  # MiniGPT drops the last block: at least one is used
    num_heads: int = Field(4, ge=1)
    mlp_ratio: float = Field(2.0, gt=0)
    embed_dim_out: int = Field(64, ge=8)  # the CLIP embedding (only the toy CLIP pretraining uses it)
    text_width: int = Field(64, ge=8)  # the CLIP text tower (only the toy CLIP pretraining uses it)
    text_layers: int = Field(2, ge=1)


class VisionSettings(_Strict):
    model: str = "EVA01-g-14"  # open_clip model name
    pretrained: str | None = "laion400m_s11b_b41k"  # open_clip tag, or a checkpoint file (the toy EVA's)
    arch: EvaArch | None = None  # set: register this timm Eva as open_clip model `model` (toy)
    image_size: int = Field(224, ge=16)
    drop_last_blocks: int = Field(1, ge=0)  # MiniGPT-v2 uses 39 of EVA-g's 40 blocks
    merge_tokens: int = Field(4, ge=1)  # consecutive patch tokens concatenated before the projection


class LoraSettings(_Strict):
    r: int = Field(64, ge=1)
    alpha: int = Field(16, ge=1)
    dropout: float = Field(0.05, ge=0, lt=1)
    target_modules: tuple[str, ...] = ("q_proj", "v_proj")


class ToyEvaSettings(_Strict):
    """CLIP-style pretraining of the toy EVA on toy images and English captions (pipeline.toy.eva)."""

    seed: int = 0
    scenes: int = Field(400, ge=8)
    steps: int = Field(300, ge=1)
    batch_size: int = Field(32, ge=2)
    lr: float = Field(2e-3, gt=0)
    warmup_steps: int = Field(30, ge=0)
    threads: int = Field(1, ge=1)


class ToyLlamaSettings(_Strict):
    """The toy Llama: byte-level BPE on toy text in all eleven languages, then a short pretraining."""

    seed: int = 0
    vocab_size: int = Field(2000, ge=300)  # BPE pieces; the 256 Llama-3 special tokens come on top
    hidden_size: int = Field(64, ge=8)
    intermediate_size: int = Field(176, ge=8)
    num_layers: int = Field(2, ge=1)
    num_heads: int = Field(4, ge=1)
    num_kv_heads: int = Field(2, ge=1)
    max_positions: int = Field(512, ge=32)
    initializer_range: float = Field(0.1, gt=0)  # the default 0.02 barely learns at this size (REFERENCE 7)
    steps: int = Field(400, ge=1)
    batch_size: int = Field(32, ge=1)
    lr: float = Field(3e-3, gt=0)
    warmup_steps: int = Field(40, ge=0)
    heldout_fraction: float = Field(0.05, ge=0, lt=1)
    threads: int = Field(1, ge=1)
    # instruct tuning beside the plain sentences: text-only chat conversations about a scene given in words
    # (pipeline.toy.world.instruct_conversations), `instruct_batch` of them per step (0: a base model only)
    instruct_conversations: int = Field(4000, ge=0)
    instruct_batch: int = Field(16, ge=0)
    # the share of them that are multiple choice, and its languages: English only, as Llama-3-Instruct's
    # instruction tuning is English-centric (the gap the paper's translated data is meant to close)
    instruct_mc_fraction: float = Field(0.5, ge=0, le=1)
    instruct_mc_langs: list[str] = ["eng_Latn"]

    @field_validator("instruct_mc_langs")
    @classmethod
    def _known_langs(cls, langs: list[str]) -> list[str]:
        unknown = [lang for lang in langs if lang not in REGISTRY]
        if not langs or unknown:
            raise ValueError(f"instruct_mc_langs needs FLORES codes of known languages, got {langs}")
        return langs


class StageSettings(_Strict):
    """One training stage: its optimisation, and its data mixture (dataset -> weight). In a profile the
    mixture is given once, under `stages.stageN.datasets`, and copied here when the profile loads."""

    mixture: dict[str, float] = {}
    steps: int = Field(ge=1)  # optimiser steps (iteration-based, as MiniGPT-v2)
    batch_size: int = Field(2, ge=1)  # per process and micro-batch
    accumulation: int = Field(1, ge=1)
    lr: float = Field(1e-4, gt=0)
    min_lr: float = Field(8e-5, ge=0)
    warmup_steps: int = Field(0, ge=0)
    weight_decay: float = Field(0.05, ge=0)  # on >= 2-D weights only
    grad_clip: float = Field(1.0, ge=0)
    gradient_checkpointing: bool = False
    max_text_tokens: int = Field(512, ge=8)
    save_every: int = Field(100, ge=1)  # optimiser steps between checkpoints (and one at the end)
    log_every: int = Field(10, ge=1)
    seed: int = 42

    @field_validator("mixture")
    @classmethod
    def _positive_weights(cls, mixture: dict[str, float]) -> dict[str, float]:
        bad = {k: v for k, v in mixture.items() if not v > 0}
        if bad:
            raise ValueError(f"mixture weights must be > 0: {bad}")
        return mixture


class ModelSettings(_Strict):
    """The MiniGPT-v2-style model (pipeline.model.build_model) and its training stages (pipeline.training)."""

    vision: VisionSettings = VisionSettings()
    llm: str = "meta-llama/Meta-Llama-3-8B-Instruct"  # Hugging Face id or a local folder (the toy Llama's)
    lora: LoraSettings = LoraSettings()
    pad_token: str = "<|reserved_special_token_0|>"
    image_token: str = "<|reserved_special_token_1|>"
    dtype: Literal["auto", "bf16", "fp32"] = "auto"  # auto: bf16 on GPU, fp32 on CPU
    deepspeed_config: str = "configs/deepspeed/zero2.json"
    threads: int = Field(0, ge=0)  # torch threads on CPU (0: torch's default)
    stages: dict[int, StageSettings] = {}
    toy_eva: ToyEvaSettings | None = None  # toy profile only: how the tiny EVA is pretrained
    toy_llama: ToyLlamaSettings | None = None  # toy profile only: how the tiny Llama is pretrained

    def in_lake(self, lake_root: str) -> "ModelSettings":
        """These settings with `{lake}` in `llm` and `vision.pretrained` expanded to `lake_root` (the toy
        profile's models are built into its own lake by the `eva_model` and `llama_model` assets)."""
        vision = self.vision
        if vision.pretrained and "{lake}" in vision.pretrained:
            vision = vision.model_copy(update={"pretrained": vision.pretrained.replace("{lake}", lake_root)})
        return self.model_copy(update={"vision": vision, "llm": self.llm.replace("{lake}", lake_root)})

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


class EvaluationSettings(_Strict):
    """MMMU and MMMU Multi evaluation of each stage's model (pipeline.evaluate.run)."""

    batch_size: int = Field(16, ge=1)  # questions per generate call (left-padded)
    max_new_tokens: int = Field(16, ge=1)  # greedy; the official prompt asks for a letter or a short phrase
    back_translation: bool = True  # also evaluate MMMU back-translated into English from each language


class Profile(_Strict):
    name: str
    lake_root: str  # local folder (relative to the repo) or an fsspec URL (s3://bucket/prefix)
    languages: tuple[str, ...] = TARGET_LANGS
    sources: Sources
    download: DownloadSettings = DownloadSettings()
    raw_limits: RawLimits = RawLimits()
    translation: TranslationSettings = TranslationSettings()
    wit: WitSettings = WitSettings()
    toy_world: ToyWorld | None = None  # present only in the toy profile
    shards: ShardSettings = ShardSettings()
    stages: dict[Literal[STAGES], StageMixture] = {}  # stage -> its shard sets and weights
    model: ModelSettings = ModelSettings()  # the vision-language model and its training stages
    evaluation: EvaluationSettings = EvaluationSettings()  # MMMU / MMMU Multi of every stage

    @model_validator(mode="after")
    def _one_mixture_per_stage(self) -> "Profile":
        """The stage mixtures live under `stages` (the shard step resolves them); the trainer's stage
        settings take them from there, so they are written once."""
        filled = {}
        for n, stage in self.model.stages.items():
            mixture = self.stages.get(f"stage{n}")
            if stage.mixture and mixture is not None and stage.mixture != mixture.datasets:
                raise ValueError(f"model.stages.{n}.mixture differs from stages.stage{n}.datasets: give the "
                                 f"mixture once, under stages.stage{n}")
            if not stage.mixture and mixture is not None:  # no `stages` entry: a stage this profile skips
                filled[n] = stage.model_copy(update={"mixture": dict(mixture.datasets)})
        if filled:
            model = self.model.model_copy(update={"stages": {**self.model.stages, **filled}})
            object.__setattr__(self, "model", model)  # frozen model: set once, while validating
        return self

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


def _read_mapping(path: Path, what: str, hint: str = "") -> dict:
    """A YAML file of profile keys, or a ConfigError that says what is wrong with it."""
    if not path.is_file():
        raise ConfigError(f"{what} file not found: {path}{hint}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise ConfigError(f"{what} {path} is not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{what} {path} must be a mapping of profile keys, got {type(data).__name__}")
    return data


def load_profile(path: str | os.PathLike | None = None, _chain: tuple[Path, ...] = ()) -> Profile:
    """Load and validate a profile: explicit path, else $MMG4_CONFIG, else configs/toy.yaml. A profile with
    `base: <file>` (relative to it) is that file's profile with its other keys merged on top."""
    p = profile_path(path)
    data = _read_mapping(p, "profile", f" (set {ENV_VAR} to a file in configs/, e.g. configs/toy.yaml)")
    if "base" in data:
        base = Path(str(data.pop("base")))
        base_path = base if base.is_absolute() else p.parent / base
        chain = (*_chain, p.resolve())
        if base_path.resolve() in chain:
            raise ConfigError(f"profile {p}: `base` goes round in a circle: "
                              + " -> ".join(str(c) for c in (*chain, base_path.resolve())))
        return _merge_overlay(data, p, load_profile(base_path, chain))
    try:
        return Profile.model_validate(data)
    except ValidationError as e:
        raise ConfigError(_format_errors(e, p)) from None


# --- `python -m pipeline.config check`: every input a profile names, before anything runs ----------------

def _lake_root(profile: Profile) -> str:
    """lake_root as `pipeline.lake.Lake.at` resolves it (a relative local folder is under the repo)."""
    root = profile.lake_root
    if "://" not in root and not Path(root).is_absolute():
        root = str(REPO_ROOT / root)
    return root


def source_paths(profile: Profile) -> list[tuple[str, str, str]]:
    """(profile key, path with `{lake}` expanded, what must be there: "file", "glob", "folder") for every
    input the profile's sources name; a Flores folder is followed by its `{lang}.{split}` files."""
    lake = _lake_root(profile)
    out = []
    for name in Sources.model_fields:
        src = getattr(profile.sources, name)
        for key in ("path", "url_list", "image_root", "folder"):
            value = getattr(src, key, None)
            if value is None:
                continue
            value = value.replace("{lake}", lake)
            if key == "image_root":
                out.append((f"sources.{name}.{key}", value, "folder"))
            elif key == "folder":
                out.append((f"sources.{name}.{key}", value, "folder"))
                for lang in ("eng_Latn",) + tuple(lang for lang in profile.languages if lang != "eng_Latn"):
                    out.append((f"sources.{name}.{key}", f"{value.rstrip('/')}/{lang}.{src.split}", "file"))
            else:
                out.append((f"sources.{name}.{key}", value, "glob" if any(c in value for c in "*?[") else "file"))
    return out


def check_sources(profile: Profile, remote: bool = False) -> tuple[list[str], list[str]]:
    """(missing, not checked): one line per source path that is not there (a glob must match at least one
    file); remote paths (hf://, s3://...) are only checked with `remote`, which needs the network."""
    from upath import UPath  # only the check needs fsspec

    missing, skipped, missing_folders = [], [], []
    for key, path, kind in source_paths(profile):
        if any(path.startswith(folder.rstrip("/") + "/") for folder in missing_folders):
            continue  # said once, for the folder
        p = UPath(path)
        if getattr(p, "protocol", "") not in ("", "file", "local") and not remote:
            skipped.append(f"{key}: {path}")
            continue
        try:
            if kind == "glob":
                ok = bool(p.fs.glob(p.path))
                why = "the glob matches no file"
            elif kind == "folder":
                ok, why = p.is_dir(), "no such folder"
            else:
                ok, why = p.is_file(), "no such file"
        except Exception as e:  # an fsspec backend's own errors (auth, network): report, do not crash
            ok, why = False, f"cannot check: {e.__class__.__name__}: {e}"
        if not ok:
            missing.append(f"{key}: {path} ({why})")
            if kind == "folder":
                missing_folders.append(path)
    return missing, skipped


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m pipeline.config",
                                     description="Check a profile: its schema, and that every source it names exists.")
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("check", help="validate the profile and list every missing source path at once")
    check.add_argument("profile", nargs="?", help=f"profile file (default: ${ENV_VAR}, else configs/toy.yaml)")
    check.add_argument("--remote", action="store_true", help="also check hf://, s3://... paths (needs the network)")
    args = parser.parse_args(argv)
    try:
        profile = load_profile(args.profile)
    except ConfigError as e:
        print(e)
        return 2
    where = profile_path(args.profile)
    missing, skipped = check_sources(profile, args.remote)
    for line in skipped:
        print(f"not checked (remote; --remote checks it): {line}")
    if missing:
        print(f"profile {where}: {len(missing)} source path(s) missing:")
        for line in missing:
            print(f"  - {line}")
        if profile.is_toy:
            print("  (the toy profile's sources are written by the toy_world asset: materialise it first)")
        return 1
    print(f"profile {where}: valid, every source path found")
    return 0




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
    data = _read_mapping(path, "overlay")
    return _merge_overlay(data, path, base if isinstance(base, Profile) else load_profile(base))


def _merge_overlay(data: dict, path: Path, base_profile: Profile) -> Profile:
    base_data = base_profile.model_dump(mode="json")
    for stage in base_data["model"]["stages"].values():
        stage.pop("mixture", None)  # copied from `stages` at load: the overlay's `stages` must win
    merged = deep_merge(base_data, data)
    merged.setdefault("name", base_profile.name)
    if "name" not in data:
        merged["name"] = f"{base_profile.name}+{path.stem}"
    try:
        return Profile.model_validate(merged)
    except ValidationError as e:
        raise ConfigError(_format_errors(e, path).replace(f"invalid profile {path}",
                                                          f"invalid overlay {path} (on profile {base_profile.name})", 1)
                          ) from None


if __name__ == "__main__":
    raise SystemExit(main())
