"""The translation engine: NLLB on CTranslate2, batched by tokens, with guards against NLLB's failure modes.

- Sentences are sorted by length and packed into batches of at most `batch_tokens` source tokens,
  so padding is small; one batch may mix target languages (each example has its own target prefix).
- The output length is capped relative to the batch's longest source (NLLB can loop forever).
- Outputs that repeat themselves, whose length is far off the source's, or that lost or changed a
  number, currency amount, percentage or emoji of the source (`segment.must_survive`) are translated
  again with a repetition penalty, and counted.
- A sentence whose numbers / emoji are still not the source's after that is translated in pieces:
  the text between its must-survive tokens is translated piece by piece and the tokens are put back
  verbatim (`segment.split_must_survive` / `join_must_survive`), so they are guaranteed; counted as
  `numbers_fallback`. The price is fluency: the model sees fragments ("The price rose from", "to").
- `on_batch` receives each finished batch, so a caller can store it durably before the next one
  starts: a killed run loses at most the batch in flight.
- `overlap=True` submits the next batch before the finished one is checked and stored, so the
  engine never waits for Python (worth it on a GPU, where decoding is fast). The price: a killed
  run can lose two batches, the one being stored and the one being decoded.
"""
from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Sequence

from pipeline.translation.quality import is_suspect_sentence, must_survive_diff
from pipeline.translation.segment import join_must_survive, must_survive, split_must_survive


@dataclass(frozen=True)
class DecodingSettings:
    """Everything that changes the output; part of the translation memory's key."""

    beam_size: int = 1
    max_len_ratio: float = 2.5  # output tokens <= ratio * source tokens + max_len_extra
    max_len_extra: int = 10
    retry_repetition_penalty: float = 1.2
    # version of the output guard (retries, number fallback): outputs stored under an older guard are
    # translated again rather than served from the memory
    guard: int = 2

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class TranslationStats:
    segments: int = 0  # sentences sent to the model
    retried: int = 0  # of which translated again with a repetition penalty
    numbers_fallback: int = 0  # of which translated in pieces around their numbers / emoji (see the module doc)
    batches: int = 0
    src_tokens: int = 0
    tgt_tokens: int = 0
    seconds: float = 0.0

    @property
    def segments_per_s(self) -> float:
        return self.segments / self.seconds if self.seconds else 0.0

    @property
    def tokens_per_s(self) -> float:
        return self.tgt_tokens / self.seconds if self.seconds else 0.0

    def to_dict(self) -> dict:
        return {**asdict(self), "segments_per_s": round(self.segments_per_s, 2),
                "tokens_per_s": round(self.tokens_per_s, 1)}

    def add(self, other: "TranslationStats") -> None:
        for f in dataclasses.fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))


@dataclass
class Translator:
    """A CTranslate2 NLLB model and its tokenizer; `translate()` is the only entry point."""

    model_dir: str
    device: str = "cpu"
    compute_type: str = "int8"
    inter_threads: int = 1
    intra_threads: int = 0
    batch_tokens: int = 2048
    settings: DecodingSettings = field(default_factory=DecodingSettings)
    overlap: bool = False  # decode batch i+1 while batch i is checked and stored (see the module doc)

    @classmethod
    def from_settings(cls, model_dir: str, s, batch_tokens: int | None = None) -> "Translator":
        """Build from anything with the profile's translation fields (TranslationSettings, the resource)."""
        return cls(model_dir, device=s.device, compute_type=s.compute_type, inter_threads=s.inter_threads,
                   intra_threads=s.intra_threads, batch_tokens=batch_tokens or s.batch_tokens,
                   settings=DecodingSettings(beam_size=s.beam_size), overlap=s.overlap_batches)

    def open_memory(self, url: str, src_lang: str = "eng_Latn"):
        """The translation memory for this model and these decoding settings (the source language included,
        so back-translation can share the same database)."""
        from pipeline.translation.memory import TranslationMemory

        return TranslationMemory(url, self.fingerprint, {**self.settings.as_dict(), "src_lang": src_lang})

    def __post_init__(self) -> None:
        from pipeline.translation.nllb import model_fingerprint

        self.fingerprint = model_fingerprint(self.model_dir)  # the memory's key: needs the files, not the model
        self.stats = TranslationStats()
        self._loaded: tuple | None = None

    def _load(self) -> tuple:
        # the model and its tokenizer (transformers, torch: seconds and hundreds of MB) are loaded on the
        # first sentence that really needs the model, so a run served by the memory never pays for them
        if self._loaded is None:
            from pipeline.translation.nllb import load_translator

            self._loaded = load_translator(self.model_dir, device=self.device, compute_type=self.compute_type,
                                           inter_threads=self.inter_threads, intra_threads=self.intra_threads)
        return self._loaded

    @property
    def engine(self):
        """The ctranslate2.Translator (loaded on first use)."""
        return self._load()[0]

    @property
    def tokenizer(self):
        """The NLLB tokenizer (loaded on first use)."""
        return self._load()[1]

    @property
    def loaded(self) -> bool:
        return self._loaded is not None

    def _tokenize(self, texts: Sequence[str], src_lang: str) -> list[list[str]]:
        self.tokenizer.src_lang = src_lang
        ids = self.tokenizer(list(texts), add_special_tokens=True)["input_ids"]
        return [self.tokenizer.convert_ids_to_tokens(x) for x in ids]

    def _detokenize(self, tokens: list[str]) -> str:
        ids = self.tokenizer.convert_tokens_to_ids(tokens[1:])  # drop the target language tag
        return self.tokenizer.decode(ids, skip_special_tokens=True).strip()

    def _batches(self, lengths: list[int]) -> list[list[int]]:
        """Indices sorted by length, packed so that (longest in batch) x (batch size) <= batch_tokens."""
        batches: list[list[int]] = [[]]
        for i in sorted(range(len(lengths)), key=lengths.__getitem__):
            # ascending order: the sentence being added is the batch's longest
            if batches[-1] and lengths[i] * (len(batches[-1]) + 1) > self.batch_tokens:
                batches.append([])
            batches[-1].append(i)
        return batches

    def _submit(self, tokens: list[list[str]], targets: list[str], penalty: float = 1.0,
                asynchronous: bool = False) -> list:
        longest = max(len(t) for t in tokens)
        cap = math.ceil(self.settings.max_len_ratio * longest) + self.settings.max_len_extra
        return self.engine.translate_batch(
            tokens, target_prefix=[[t] for t in targets], beam_size=self.settings.beam_size,
            max_decoding_length=cap, repetition_penalty=penalty, max_batch_size=0, asynchronous=asynchronous,
        )

    def _run(self, tokens: list[list[str]], targets: list[str], penalty: float = 1.0) -> list[list[str]]:
        return [r.hypotheses[0] for r in self._submit(tokens, targets, penalty)]

    def translate(
        self,
        items: Sequence[tuple[str, str]],
        src_lang: str = "eng_Latn",
        on_batch: Callable[[list[tuple[str, str, str]]], None] | None = None,
        stats: "TranslationStats | None" = None,
    ) -> list[str]:
        """Translate (sentence, target language) pairs; returns the translations in input order.

        `on_batch([(sentence, target, translation), ...])` runs after every batch. What this call did is
        added to `stats` (when given) and to the engine's lifetime totals `self.stats`."""
        if not items:
            return []
        call = TranslationStats()
        try:
            return self._translate(items, src_lang, on_batch, call)
        finally:
            self.stats.add(call)
            if stats is not None:
                stats.add(call)

    def _translate(self, items, src_lang, on_batch, call: "TranslationStats") -> list[str]:
        texts = [s for s, _ in items]
        if any(not s.strip() or not any(ch.isalpha() for ch in s) for s in texts):
            raise ValueError("empty or letter-free segment sent to the translator; segment the text first")
        tokens = self._tokenize(texts, src_lang)
        out: list[str | None] = [None] * len(items)
        order = self._batches([len(t) for t in tokens])
        ahead: dict[int, list] = {}  # overlap: batch number -> its asynchronous results

        def submit(number: int) -> None:
            if self.overlap and number < len(order):
                b = order[number]
                ahead[number] = self._submit([tokens[i] for i in b], [items[i][1] for i in b], asynchronous=True)

        submit(0)
        for number, batch in enumerate(order):
            started = time.perf_counter()
            if self.overlap:
                hyps = [r.result().hypotheses[0] for r in ahead.pop(number)]
                submit(number + 1)  # decoded while this batch is checked and stored
            else:
                hyps = self._run([tokens[i] for i in batch], [items[i][1] for i in batch])
            decoded = [self._detokenize(h) for h in hyps]
            redo = [k for k, i in enumerate(batch) if is_suspect_sentence(texts[i], decoded[k], items[i][1])]
            if redo and self.settings.retry_repetition_penalty > 1.0:
                again = self._run([tokens[batch[k]] for k in redo], [items[batch[k]][1] for k in redo],
                                  self.settings.retry_repetition_penalty)
                for k, h in zip(redo, again):
                    hyps[k], decoded[k] = h, self._detokenize(h)
                call.retried += len(redo)
            out_tokens = [len(h) - 1 for h in hyps]
            # numbers / emoji still not the source's (the guard may have retried for another reason, or
            # not at all): translate around them. A source without such tokens gains nothing from it.
            lost = [k for k in redo if must_survive(texts[batch[k]])
                    and must_survive_diff(texts[batch[k]], decoded[k]) != ([], [])]
            if lost:
                pieced, counts = self._translate_in_pieces(
                    [texts[batch[k]] for k in lost], [items[batch[k]][1] for k in lost], src_lang)
                for k, text, n in zip(lost, pieced, counts):
                    decoded[k], out_tokens[k] = text, n
                call.numbers_fallback += len(lost)
            for k, i in enumerate(batch):
                out[i] = decoded[k]
            call.batches += 1
            call.segments += len(batch)
            call.src_tokens += sum(len(tokens[i]) for i in batch)
            call.tgt_tokens += sum(out_tokens)
            call.seconds += time.perf_counter() - started
            if on_batch:
                on_batch([(texts[i], items[i][1], out[i]) for i in batch])
        return out  # type: ignore[return-value]

    def _translate_in_pieces(self, texts: list[str], targets: list[str], src_lang: str) -> tuple[list[str], list[int]]:
        """The fallback for sentences that keep losing their must-survive tokens: cut each around them
        (`split_must_survive`), translate the pieces with letters (guarded and retried like sentences;
        pieces without letters stay verbatim) and put the tokens back verbatim. Returns the sentences
        and the number of output tokens decoded for each."""
        cut = [split_must_survive(t) for t in texts]
        todo = [(j, p.text, targets[j]) for j, pieces in enumerate(cut) for p in pieces if p.translate]
        done: list[str] = [""] * len(todo)
        counts = [0] * len(texts)
        tokens = self._tokenize([p for _, p, _ in todo], src_lang) if todo else []
        for batch in self._batches([len(t) for t in tokens]) if tokens else ():
            hyps = self._run([tokens[i] for i in batch], [todo[i][2] for i in batch])
            decoded = [self._detokenize(h) for h in hyps]
            redo = [k for k, i in enumerate(batch) if is_suspect_sentence(todo[i][1], decoded[k], todo[i][2])]
            if redo and self.settings.retry_repetition_penalty > 1.0:
                again = self._run([tokens[batch[k]] for k in redo], [todo[batch[k]][2] for k in redo],
                                  self.settings.retry_repetition_penalty)
                for k, h in zip(redo, again):
                    hyps[k], decoded[k] = h, self._detokenize(h)
            for k, i in enumerate(batch):
                done[i] = decoded[k]
                counts[todo[i][0]] += len(hyps[k]) - 1
        it = iter(done)
        return [join_must_survive(pieces, [next(it) for p in pieces if p.translate]) for pieces in cut], counts
