"""The MiniGPT-v2-style model and its one factory, `build_model(settings)`, for the tiny and the real model.

frozen EVA (`VisionTower`) -> every `merge_tokens` consecutive patch tokens concatenated (raster order) ->
one trainable `nn.Linear` into the LLM width -> spliced into `inputs_embeds` at the image placeholder
tokens of the Llama-3 prompt -> `LlamaForCausalLM` with LoRA (peft). Trainable: the projection and LoRA.
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import Sequence

import torch
from torch import nn

from pipeline.config import ConfigError, ModelSettings
from pipeline.model import chat
from pipeline.model.vision import MEAN, STD, VisionTower, build_vision


class CheckpointMismatch(ValueError):
    """A trainable-weights file that does not fit this model (another shape, other keys)."""


def resolve_dtype(setting: str) -> torch.dtype:
    if setting == "bf16" or (setting == "auto" and torch.cuda.is_available()):
        return torch.bfloat16
    return torch.float32


class MiniGPT(nn.Module):
    def __init__(self, vision: VisionTower, llm: nn.Module, tokenizer, settings: ModelSettings):
        super().__init__()
        merge = settings.vision.merge_tokens
        if vision.num_patches % merge:
            raise ConfigError(f"model.vision.merge_tokens {merge} does not divide {vision.num_patches} patches")
        self.vision = vision
        self.merge = merge
        self.n_image = vision.num_patches // merge
        self.proj = nn.Linear(vision.width * merge, llm.config.hidden_size)
        self.llm = llm
        self.tokenizer = tokenizer
        self.settings = settings
        ids = {}
        for key in ("pad_token", "image_token"):
            token = getattr(settings, key)
            tid = tokenizer.convert_tokens_to_ids(token)
            if tid is None or tid == tokenizer.unk_token_id or token not in tokenizer.get_vocab():
                raise ConfigError(f"model.{key}: {token!r} is not a token of the tokenizer at {settings.llm}")
            ids[key] = tid
        self.pad_id, self.image_id = ids["pad_token"], ids["image_token"]
        self.eot_id = tokenizer.convert_tokens_to_ids(chat.EOT)

    # -- images ------------------------------------------------------------------------------------
    def merge_tokens(self, patches: torch.Tensor) -> torch.Tensor:
        """[B, N, D] -> [B, N/m, m*D]: each group of m consecutive patch tokens concatenated."""
        b, n, d = patches.shape
        return patches.reshape(b, n // self.merge, self.merge * d)

    def encode_images(self, pixels: torch.Tensor) -> torch.Tensor:
        patches = self.vision(pixels.to(self.proj.weight.dtype))
        return self.proj(self.merge_tokens(patches))

    def splice(self, input_ids: torch.Tensor, image_embeds: torch.Tensor | None) -> torch.Tensor:
        """Token embeddings with the image placeholders replaced, image by image in batch order."""
        embeds = self.llm.get_input_embeddings()(input_ids)
        mask = input_ids == self.image_id
        found = int(mask.sum())
        expected = 0 if image_embeds is None else image_embeds.shape[0] * image_embeds.shape[1]
        if found != expected:
            raise ValueError(f"{found} image placeholder tokens in the batch for {expected} image embeddings")
        if image_embeds is None:
            return embeds
        return embeds.masked_scatter(mask.unsqueeze(-1), image_embeds.to(embeds.dtype))

    # -- training ----------------------------------------------------------------------------------
    def forward(self, input_ids, attention_mask, labels=None, pixel_values=None):
        image_embeds = self.encode_images(pixel_values) if pixel_values is not None else None
        embeds = self.splice(input_ids, image_embeds)
        out = self.llm(inputs_embeds=embeds, attention_mask=attention_mask, labels=labels)
        return out.loss if labels is not None else out.logits

    def trainable_state(self) -> dict[str, torch.Tensor]:
        return {n: p for n, p in self.named_parameters() if p.requires_grad}

    # -- evaluation --------------------------------------------------------------------------------
    @torch.no_grad()
    def generate(self, conversations: Sequence[Sequence[dict]], images: Sequence[bytes | None],
                 max_new_tokens: int = 32) -> list[str]:
        """Greedy answers to the last question of each conversation (left-padded batch)."""
        was_training = self.training
        self.eval()
        encs = [chat.encode(self.tokenizer, c, self.settings.image_token, self.n_image, img is not None,
                            max_tokens=10 ** 9, for_generation=True) for c, img in zip(conversations, images)]
        width = max(len(e.input_ids) for e in encs)
        ids = torch.tensor([[self.pad_id] * (width - len(e.input_ids)) + e.input_ids for e in encs])
        mask = torch.tensor([[0] * (width - len(e.input_ids)) + [1] * len(e.input_ids) for e in encs])
        pix = [load_image(img, self.settings.vision.image_size) for img in images if img is not None]
        device = self.proj.weight.device
        image_embeds = self.encode_images(torch.stack(pix).to(device)) if pix else None
        embeds = self.splice(ids.to(device), image_embeds)
        out = self.llm.generate(inputs_embeds=embeds, attention_mask=mask.to(device), max_new_tokens=max_new_tokens,
                                do_sample=False, eos_token_id=self.eot_id, pad_token_id=self.pad_id)
        self.train(was_training)
        return [self.tokenizer.decode(row, skip_special_tokens=True) for row in out]


def load_image(data: bytes, size: int) -> torch.Tensor:
    """JPEG bytes -> normalised [3, size, size] (bicubic resize, as EVA-CLIP's preprocessing)."""
    import numpy as np
    from PIL import Image

    img = Image.open(io.BytesIO(data)).convert("RGB")
    if img.size != (size, size):
        img = img.resize((size, size), Image.BICUBIC)
    x = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0).permute(2, 0, 1)
    return (x - torch.tensor(MEAN)[:, None, None]) / torch.tensor(STD)[:, None, None]


def build_model(settings: ModelSettings, gradient_checkpointing: bool = False) -> MiniGPT:
    """The one factory: paper (EVA01-g-14 + Llama-3-8B-Instruct) and toy (registered tiny Eva + toy Llama)."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoTokenizer, LlamaForCausalLM

    dtype = resolve_dtype(settings.dtype)
    llm_dir = settings.llm
    if (llm_dir.startswith((".", "/")) or Path(llm_dir).exists()) and not (Path(llm_dir) / "config.json").is_file():
        raise ConfigError(f"model.llm: {llm_dir} holds no Llama checkpoint (config.json missing)")
    vision = build_vision(settings.vision)
    tokenizer = AutoTokenizer.from_pretrained(llm_dir)  # never trust_remote_code
    llm = LlamaForCausalLM.from_pretrained(llm_dir, dtype=dtype)
    llm.requires_grad_(False)
    if gradient_checkpointing:
        llm.gradient_checkpointing_enable()
        llm.enable_input_require_grads()
    lora = settings.lora
    llm = get_peft_model(llm, LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                                         target_modules=list(lora.target_modules), task_type="CAUSAL_LM"))
    model = MiniGPT(vision, llm, tokenizer, settings)
    return model.to(dtype)
