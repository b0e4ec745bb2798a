"""Training batches: each batch from ONE dataset, chosen by the stage mixture's weights (MiniGPT-v2's
`sample_ratio`), rows in the shard row schema (id, dataset, source, lang, conversations, image, caption).

The interface is small on purpose: a mapping dataset name -> `RowSource` (any re-iterable of row dicts,
e.g. a list, or the shard reader once it is merged) plus the weights. A `Sequence` source is reshuffled each
epoch (seeded); a plain iterable is read in its own order. The loader's position (picker RNG, per-dataset
epoch and offset) is part of the checkpoint, so a resumed run sees exactly the batches it would have seen.
"""
from __future__ import annotations

import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Iterator

import torch

from pipeline.model import chat
from pipeline.model.minigpt import load_image

from pipeline.shards.mixture import MixtureError  # noqa: F401  (one error type for a mixture that cannot train)

RowSource = Iterable[dict]


def check_mixture(mixture: Mapping[str, float], datasets: Mapping[str, RowSource], where: str) -> None:
    missing = sorted(set(mixture) - set(datasets))
    if missing:
        raise MixtureError(f"{where}: the mixture names dataset(s) {missing} that are not available; "
                           f"available: {sorted(datasets)}")


class _Stream:
    """Endless rows of one dataset: epoch e is a seeded permutation (Sequence) or the source order."""

    def __init__(self, name: str, source: RowSource, seed: int, epoch: int = 0, offset: int = 0):
        self.name, self.source, self.seed = name, source, seed
        self.epoch, self.offset = epoch, offset
        self._it: Iterator[dict] | None = None

    def _open(self) -> Iterator[dict]:
        if isinstance(self.source, Sequence):
            order = list(range(len(self.source)))
            random.Random(f"{self.seed}/{self.name}/{self.epoch}").shuffle(order)
            it = (self.source[i] for i in order[self.offset:])
        else:
            it = iter(self.source)
            for _ in range(self.offset):  # resume: skip what was consumed (streams cannot seek)
                next(it)
        return it

    def next(self) -> dict:
        for _ in range(2):
            if self._it is None:
                self._it = self._open()
            try:
                row = next(self._it)
                self.offset += 1
                return row
            except StopIteration:
                if self.offset == 0:
                    break
                self.epoch, self.offset, self._it = self.epoch + 1, 0, None
        raise MixtureError(f"dataset {self.name!r} has no rows")


class MixtureLoader:
    """Micro-batches of `batch_size` rows, each from one dataset drawn by weight. `state()`/`load_state()`."""

    def __init__(self, datasets: Mapping[str, RowSource], weights: Mapping[str, float], batch_size: int,
                 seed: int, where: str = "mixture"):
        check_mixture(weights, datasets, where)
        self.names = sorted(weights)
        self.weights = [float(weights[n]) for n in self.names]
        self.batch_size, self.seed = batch_size, seed
        self.rng = random.Random(seed)
        self.streams = {n: _Stream(n, datasets[n], seed) for n in self.names}

    def next_batch(self) -> tuple[str, list[dict]]:
        name = self.rng.choices(self.names, self.weights)[0]
        stream = self.streams[name]
        return name, [stream.next() for _ in range(self.batch_size)]

    def state(self) -> dict[str, Any]:
        return {"rng": self.rng.getstate(),
                "streams": {n: [s.epoch, s.offset] for n, s in self.streams.items()}}

    def load_state(self, state: dict[str, Any]) -> None:
        rng = state["rng"]
        self.rng.setstate((rng[0], tuple(rng[1]), rng[2]))
        for n, (epoch, offset) in state["streams"].items():
            if n in self.streams:
                s = self.streams[n]
                s.epoch, s.offset, s._it = epoch, offset, None


@dataclass
class Collator:
    """Rows -> tensors for `MiniGPT.forward`: Llama-3 template, answer-only labels, right padding, images."""

    tokenizer: Any
    image_token: str
    n_image: int
    pad_id: int
    image_size: int
    max_tokens: int

    def __call__(self, rows: list[dict]) -> dict[str, torch.Tensor]:
        encs, pixels = [], []
        for row in rows:
            image = row.get("image")
            conv = row.get("conversations") or _caption_conversation(row)
            try:
                encs.append(chat.encode(self.tokenizer, conv, self.image_token, self.n_image, image is not None,
                                        self.max_tokens))
            except chat.ConversationError as err:
                raise chat.ConversationError(f"row {row.get('id')!r} of {row.get('dataset')!r}: {err}") from None
            if image is not None:
                pixels.append(load_image(image, self.image_size))
        width = max(len(e.input_ids) for e in encs)
        ids = torch.tensor([e.input_ids + [self.pad_id] * (width - len(e.input_ids)) for e in encs])
        labels = torch.tensor([e.labels + [chat.IGNORE] * (width - len(e.labels)) for e in encs])
        mask = torch.tensor([[1] * len(e.input_ids) + [0] * (width - len(e.input_ids)) for e in encs])
        out = {"input_ids": ids, "attention_mask": mask, "labels": labels}
        if pixels:
            out["pixel_values"] = torch.stack(pixels)
        return out


def _caption_conversation(row: dict) -> list[dict]:
    """A caption row (stage 1) as one turn: MiniGPT-v2's caption instruction, the caption as the answer.

    No lowercasing and no 50-word cut (wrong for CJK text, REFERENCE 2)."""
    caption = row.get("caption")
    if not caption:
        raise chat.ConversationError(f"row {row.get('id')!r}: neither conversations nor caption")
    return [{"from": "human", "value": "<image>\n[caption] Briefly describe this image."},
            {"from": "gpt", "value": caption}]
