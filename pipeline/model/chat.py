"""The Llama-3 chat template and the label mask (REFERENCE 2), as one function used by training and `generate`.

    <|begin_of_text|><|start_header_id|>user<|end_header_id|>\\n\\n{q}<|eot_id|>
    <|start_header_id|>assistant<|end_header_id|>\\n\\n{a}<|eot_id|> ...

A conversation is LLaVA-format: a list of ``{"from": "human"|"gpt", "value": str}`` turns (``user`` and
``assistant`` are accepted too). The ``<image>`` tag of a question becomes `n_image` copies of the image
placeholder token (a reserved special token: no vocabulary resize), which the model replaces with image
embeddings. Labels are -100 everywhere except every answer's tokens and its ``<|eot_id|>``.
Deliberately not copied from the authors' code: a ``$$`` pad, a double BOS, ``<|end_of_text|>`` as the end
marker, the Llama-2 ``[INST]`` template in stage 2.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

BOS = "<|begin_of_text|>"
EOT = "<|eot_id|>"
IMAGE_TAG = "<image>"
IGNORE = -100
_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant"}

#: Jinja form of the same template, stored in the toy tokenizer (``tokenizer.apply_chat_template``).
CHAT_TEMPLATE = (
    "{{ '<|begin_of_text|>' }}{% for m in messages %}"
    "{{ '<|start_header_id|>' + m['role'] + '<|end_header_id|>\n\n' + m['content'] + '<|eot_id|>' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)


def header(role: str) -> str:
    return f"<|start_header_id|>{role}<|end_header_id|>\n\n"


class ConversationError(ValueError):
    """A conversation the template cannot render (unknown role, no answer, question/answer out of order)."""


def turns(conversation: Sequence[dict]) -> list[tuple[str, str]]:
    """(role, text) pairs in Llama-3 roles; system turns are dropped, roles checked."""
    out = []
    for i, turn in enumerate(conversation):
        who = turn.get("from") if isinstance(turn, dict) else None
        if who == "system":
            continue
        if who not in _ROLES:
            raise ConversationError(f"turn {i}: unknown role {who!r}; expected one of {sorted(_ROLES)}")
        out.append((_ROLES[who], str(turn.get("value", ""))))
    return out


def render(conversation: Sequence[dict], image_token: str = "", n_image: int = 0,
           add_generation_prompt: bool = False) -> str:
    """The prompt string; `<image>` becomes `n_image` image tokens (dropped when n_image is 0)."""
    text = BOS
    for role, value in turns(conversation):
        text += header(role) + _image(value, image_token, n_image) + EOT
    if add_generation_prompt:
        text += header("assistant")
    return text


def _image(value: str, image_token: str, n_image: int) -> str:
    if IMAGE_TAG not in value:
        return value
    return value.replace(IMAGE_TAG, image_token * n_image, 1).replace(IMAGE_TAG, "")


@dataclass
class Encoded:
    input_ids: list[int]
    labels: list[int]
    has_image: bool


def encode(tokenizer, conversation: Sequence[dict], image_token: str, n_image: int, has_image: bool,
           max_tokens: int, for_generation: bool = False) -> Encoded:
    """Token ids and labels of a conversation, segment by segment, so labels fall exactly on the answers.

    With an image and no `<image>` tag, the image goes at the start of the first question (as LLaVA does).
    `for_generation` drops the last answer (if any) and ends with the assistant header.
    Truncation keeps the image whole: a conversation cut inside its image tokens raises.
    """
    pairs = turns(conversation)
    if for_generation and pairs and pairs[-1][0] == "assistant":
        pairs = pairs[:-1]
    if not pairs or pairs[0][0] != "user":
        raise ConversationError("a conversation starts with a user (human) turn")
    if not for_generation and not any(r == "assistant" for r, _ in pairs):
        raise ConversationError("a training conversation needs at least one answer")
    if has_image and not any(IMAGE_TAG in v for _, v in pairs):
        pairs[0] = (pairs[0][0], IMAGE_TAG + "\n" + pairs[0][1])

    def ids(text: str) -> list[int]:
        return tokenizer(text, add_special_tokens=False)["input_ids"]

    input_ids, labels = ids(BOS), [IGNORE]
    for role, value in pairs:
        value = _image(value, image_token, n_image if has_image else 0)
        head = ids(header(role))
        body = ids(value) + ids(EOT)
        input_ids += head + body
        labels += [IGNORE] * len(head) + (body if role == "assistant" else [IGNORE] * len(body))
    if for_generation:
        head = ids(header("assistant"))
        input_ids += head
        labels += [IGNORE] * len(head)
    if len(input_ids) > max_tokens:
        image_id = tokenizer.convert_tokens_to_ids(image_token)
        if image_id in input_ids[max_tokens:]:
            raise ConversationError(f"max_text_tokens {max_tokens} cuts the image tokens; raise it")
        input_ids, labels = input_ids[:max_tokens], labels[:max_tokens]
    return Encoded(input_ids, labels, has_image)
