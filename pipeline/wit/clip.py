"""NLLB-CLIP through open_clip, for both profiles: one model folder, one loader, one scorer.

The model lives in one folder that open_clip's own factory opens offline with `local-dir:` (REFERENCE 6):

    open_clip_config.json        {"model_cfg": ..., "preprocess_cfg": ...}; the text tower's hf_model_name
                                 and hf_tokenizer_name point at this folder
    open_clip_model.safetensors  the whole CLIP (image tower, NLLB encoder, projections, logit scale)
    config.json                  the text tower's transformers config (M2M100)
    tokenizer files              the NLLB tokenizer (open_clip reads them from the folder)

- `save_local_dir(...)`: writes such a folder (atomically: temporary sibling, then renamed). The toy
  trainer and `export_pretrained` (paper profile: `nllb-clip-base` / `-large`, tag `v1`, downloaded once
  and saved into the lake) both end here, so the filter loads the toy and the real model the same way.
- `model_fingerprint(folder)`: sha256 of the weights, tokenizer, text config and the CLIP config (paths
  left out, so a moved lake keeps its score cache).
- `NllbClip.load(folder)`: the model, its preprocessing and its tokenizer. `encode_texts(captions, lang)`
  tokenises in the captions' own language: it sets the NLLB tokenizer's `src_lang` (open_clip's
  `set_language` does nothing on transformers 5), so the first token, where the text tower pools, is the
  language tag. `scores(images, captions, lang)`: cosine of normalised embeddings, pair by pair.
- `ClipEngine`: opens the model once per process and again only when the folder changes.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import threading
from pathlib import Path
from typing import Any, Sequence

from pipeline.translation.nllb import local_path, replace_dir, tmp_sibling

__all__ = ["CONFIG_FILE", "WEIGHTS_FILE", "ModelMissing", "save_local_dir", "export_pretrained",
           "model_fingerprint", "NllbClip", "ClipEngine", "set_src_lang"]

CONFIG_FILE = "open_clip_config.json"
WEIGHTS_FILE = "open_clip_model.safetensors"
TEXT_CONFIG_FILE = "config.json"
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "sentencepiece.bpe.model", "special_tokens_map.json")


class ModelMissing(FileNotFoundError):
    """No NLLB-CLIP folder where the filter looks; the message says which asset makes it."""


# ---------------------------------------------------------------------------
# The folder
# ---------------------------------------------------------------------------


def _point_text_tower_at(model_cfg: dict[str, Any], folder: Path) -> dict[str, Any]:
    cfg = json.loads(json.dumps(model_cfg))  # deep copy, JSON-able
    text = cfg.setdefault("text_cfg", {})
    text["hf_model_name"] = text["hf_tokenizer_name"] = str(folder.resolve())
    return cfg


def save_local_dir(model, hf_tokenizer, model_cfg: dict[str, Any], preprocess_cfg: dict[str, Any],
                   out_dir: str | os.PathLike, extra_files: dict[str, str] | None = None) -> Path:
    """Write `model` (an open_clip CustomTextCLIP with an HF text tower) as a `local-dir:` folder.

    `hf_tokenizer` is the transformers tokenizer of the text tower; `model_cfg` the open_clip model config
    it was built from; `extra_files` (name -> text) are written beside (e.g. training info). The folder
    appears under its name only when complete."""
    from safetensors.torch import save_file

    final = local_path(out_dir, "NLLB-CLIP folder")
    tmp = tmp_sibling(final)
    try:
        tmp.mkdir(parents=True, exist_ok=True)
        # clones: tied or shared storage (embeddings) cannot be saved by safetensors as views
        state = {k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()}
        save_file(state, str(tmp / WEIGHTS_FILE))
        os.chmod(tmp / WEIGHTS_FILE, 0o644)  # a lake is shared; safetensors writes the file private
        model.text.config.save_pretrained(str(tmp))  # config.json of the text tower (no weights)
        hf_tokenizer.save_pretrained(str(tmp))
        for stray in tmp.glob("*.safetensors"):  # open_clip would take any of them as the CLIP checkpoint
            if stray.name != WEIGHTS_FILE:
                stray.unlink()
        config = {"model_cfg": _point_text_tower_at(model_cfg, final), "preprocess_cfg": dict(preprocess_cfg)}
        (tmp / CONFIG_FILE).write_text(json.dumps(config, indent=1), encoding="utf-8")
        for name, text in (extra_files or {}).items():
            (tmp / name).write_text(text, encoding="utf-8")
        replace_dir(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def export_pretrained(model_name: str, pretrained: str | None, out_dir: str | os.PathLike) -> Path:
    """Paper profile: download an open_clip NLLB-CLIP (`nllb-clip-base`, tag `v1`) and save it as a
    `local-dir:` folder in the lake, so every worker loads it offline. Needs the network once."""
    import open_clip

    folder = local_path(out_dir, "NLLB-CLIP folder")
    source = json.dumps({"open_clip": model_name, "pretrained": pretrained})
    try:
        if (folder / "source.json").read_text(encoding="utf-8") == source:
            _check_folder(folder)
            return folder  # exported before: nothing to download
    except (OSError, ModelMissing):
        pass
    model, _, _ = open_clip.create_model_and_transforms(model_name, pretrained=pretrained)
    model_cfg = open_clip.get_model_config(model_name)
    if model_cfg is None or "hf_model_name" not in model_cfg.get("text_cfg", {}):
        raise ValueError(f"open_clip model {model_name!r} has no Hugging Face text tower; the WIT filter "
                         f"expects an NLLB-CLIP such as 'nllb-clip-base' or 'nllb-clip-large'")
    tokenizer = open_clip.get_tokenizer(model_name)
    preprocess = dict(model.visual.preprocess_cfg)
    return save_local_dir(model, tokenizer.tokenizer, model_cfg, preprocess, folder, {"source.json": source})


def _check_folder(folder: Path) -> None:
    missing = [n for n in (CONFIG_FILE, WEIGHTS_FILE, TEXT_CONFIG_FILE) if not (folder / n).is_file()]
    if missing:
        raise ModelMissing(f"no NLLB-CLIP model in {folder} (missing {missing}); materialise the "
                           f"nllb_clip_model asset first")


def model_fingerprint(folder: str | os.PathLike) -> str:
    """sha256 over the files that decide the scores (weights, tokenizer, text config, CLIP config without
    its absolute paths); hex[:16]. The score cache's model key."""
    root = local_path(folder, "NLLB-CLIP folder")
    _check_folder(root)
    h = hashlib.sha256()
    config = json.loads((root / CONFIG_FILE).read_text(encoding="utf-8"))
    for key in ("hf_model_name", "hf_tokenizer_name"):
        config.get("model_cfg", {}).get("text_cfg", {}).pop(key, None)
    h.update(json.dumps(config, sort_keys=True).encode() + b"\0")
    for name in (WEIGHTS_FILE, TEXT_CONFIG_FILE, *_TOKENIZER_FILES):
        p = root / name
        if p.is_file():
            h.update(name.encode() + b"\0")
            with p.open("rb") as f:
                while block := f.read(1 << 20):
                    h.update(block)
    return h.hexdigest()[:16]


def _repoint(folder: Path) -> None:
    """A lake that moved: point the text tower's paths at the folder where the model is now."""
    path = folder / CONFIG_FILE
    config = json.loads(path.read_text(encoding="utf-8"))
    text = config.get("model_cfg", {}).get("text_cfg", {})
    here = str(folder.resolve())
    if text.get("hf_model_name") != here or text.get("hf_tokenizer_name") != here:
        config["model_cfg"] = _point_text_tower_at(config["model_cfg"], folder)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(config, indent=1), encoding="utf-8")
        os.replace(tmp, path)


# ---------------------------------------------------------------------------
# Loaded model
# ---------------------------------------------------------------------------


def set_src_lang(hf_tokenizer, lang: str) -> None:
    """Tokenise in `lang`: the NLLB tokenizer then starts every caption with that language's tag.

    On transformers 5, open_clip's `set_language` (set_src_lang_special_tokens) changes nothing; the
    `src_lang` property does. An unknown code is an error, never a silent <unk> tag."""
    code = hf_tokenizer.convert_tokens_to_ids(lang)
    if code is None or code == hf_tokenizer.unk_token_id:
        raise ValueError(f"unknown language code {lang!r} for this NLLB-CLIP tokenizer (use FLORES-200 codes)")
    hf_tokenizer.src_lang = lang


class NllbClip:
    """An NLLB-CLIP loaded for scoring: model (eval mode), image preprocessing, tokenizer."""

    def __init__(self, model, preprocess, tokenizer, fingerprint: str, device: str = "cpu"):
        self.model, self.preprocess, self.tokenizer = model, preprocess, tokenizer
        self.fingerprint, self.device = fingerprint, device
        self._lock = threading.Lock()  # the tokenizer's src_lang is state: one language at a time

    @classmethod
    def load(cls, folder: str | os.PathLike, device: str = "cpu") -> "NllbClip":
        import open_clip
        import torch

        root = local_path(folder, "NLLB-CLIP folder")
        _check_folder(root)
        _repoint(root)
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        model, _, preprocess = open_clip.create_model_and_transforms(f"local-dir:{root}", device=device)
        model.eval()
        tokenizer = open_clip.get_tokenizer(f"local-dir:{root}")
        return cls(model, preprocess, tokenizer, model_fingerprint(root), device)

    @property
    def hf_tokenizer(self):
        return self.tokenizer.tokenizer

    def image_pipeline(self):
        """(decode, collate) for scoring many images: `decode(jpeg_bytes)` runs in worker threads and does
        only the PIL part of the preprocessing (decode, resize, crop, RGB), which releases the GIL;
        `collate(decoded)` makes the batch tensor in the calling thread with one vectorised ToTensor +
        Normalize. Per-image torch work in the workers would fight the model's thread for the GIL (with a
        tiny model, each of its many small ops then waits for the interpreter lock). Same pixels as
        `preprocess`; a preprocessing of another shape falls back to it, image by image."""
        import numpy as np
        import torch
        from PIL import Image

        steps = list(getattr(self.preprocess, "transforms", []))
        cut = next((i for i, t in enumerate(steps) if "ToTensor" in type(t).__name__), None)
        tail = steps[cut:] if cut is not None else []
        if len(tail) != 2 or type(tail[1]).__name__ != "Normalize":
            def decode_full(data: bytes):
                with Image.open(io.BytesIO(data)) as im:
                    return self.preprocess(im.convert("RGB"))
            return decode_full, torch.stack
        head = steps[:cut]
        mean = torch.tensor(tail[1].mean, dtype=torch.float32).view(1, -1, 1, 1)
        std = torch.tensor(tail[1].std, dtype=torch.float32).view(1, -1, 1, 1)

        def decode(data: bytes):
            with Image.open(io.BytesIO(data)) as im:
                image = im.convert("RGB")
            for t in head:
                image = t(image)
            return np.asarray(image.convert("RGB"), dtype=np.uint8)

        def collate(arrays):
            x = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float().div_(255)
            return (x - mean) / std

        return decode, collate

    def tokenize(self, captions: Sequence[str], lang: str):
        with self._lock:
            set_src_lang(self.hf_tokenizer, lang)
            return self.tokenizer(list(captions))

    def encode_texts(self, captions: Sequence[str], lang: str):
        import torch
        import torch.nn.functional as F

        ids = self.tokenize(captions, lang).to(self.device)
        with torch.inference_mode():
            return F.normalize(self.model.encode_text(ids).float(), dim=-1)

    def encode_images(self, pixels):
        """`pixels`: a batch of preprocessed images (N, 3, H, W)."""
        import torch
        import torch.nn.functional as F

        with torch.inference_mode():
            return F.normalize(self.model.encode_image(pixels.to(self.device)).float(), dim=-1)

    def scores(self, pixels, captions: Sequence[str], lang: str) -> list[float]:
        """Cosine similarity of each image with its own caption (row i with caption i)."""
        if len(captions) != len(pixels):
            raise ValueError(f"{len(pixels)} images but {len(captions)} captions")
        if not captions:
            return []
        img, txt = self.encode_images(pixels), self.encode_texts(captions, lang)
        return (img * txt).sum(-1).tolist()


class ClipEngine:
    """The NLLB-CLIP of one lake folder, opened on first use and kept for the process; opened again
    only when the weights on disk change (a retrained toy model, a new export)."""

    def __init__(self, folder: str | os.PathLike, device: str = "cpu", torch_threads: int = 0):
        self.folder, self.device, self.torch_threads = folder, device, torch_threads
        self._model: NllbClip | None = None
        self._stamp: tuple | None = None
        self._fingerprint: tuple[tuple | None, str] | None = None

    def _current(self) -> tuple[Path, tuple | None]:
        root = local_path(self.folder, "NLLB-CLIP folder")
        try:
            st = os.stat(root / WEIGHTS_FILE)
            return root, (st.st_mtime_ns, st.st_size)
        except FileNotFoundError:
            return root, None  # NllbClip.load / model_fingerprint raise the clear error

    def fingerprint(self) -> str:
        """The model's fingerprint without loading it (an all-cached run never opens the model)."""
        root, stamp = self._current()
        if self._fingerprint is None or stamp != self._fingerprint[0]:
            self._fingerprint = (stamp, model_fingerprint(root))
        return self._fingerprint[1]

    def model(self) -> NllbClip:
        root, stamp = self._current()
        if self._model is None or stamp != self._stamp:
            if self.torch_threads:
                import torch

                torch.set_num_threads(self.torch_threads)
            self._model = NllbClip.load(root, self.device)
            self._stamp = stamp
        return self._model
