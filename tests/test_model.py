"""The model: chat template, label mask, 4-token merge and image splice, trainable-weights checks."""
from __future__ import annotations

import pytest
import torch

from pipeline.model import chat
from pipeline.model.minigpt import CheckpointMismatch, build_model
from pipeline.model.weights import load_trainable, save_trainable
from tests.training_world import model_settings

CONV = [{"from": "human", "value": "<image>\nWhat colour is the shape?"}, {"from": "gpt", "value": "It is red."},
        {"from": "human", "value": "Where is it?"}, {"from": "gpt", "value": "At the top left."},
        {"from": "human", "value": "How big is it?"}, {"from": "gpt", "value": "It is small."}]


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    torch.manual_seed(0)
    return build_model(model_settings(tmp_path_factory.getbasetemp() / "models"))


def test_chat_template_is_llama3_exactly():
    conv = [{"from": "human", "value": "Q?"}, {"from": "gpt", "value": "A."}]
    assert chat.render(conv) == ("<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nQ?<|eot_id|>"
                                 "<|start_header_id|>assistant<|end_header_id|>\n\nA.<|eot_id|>")
    assert chat.render(conv[:1], add_generation_prompt=True).endswith(
        "Q?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n")


def test_toy_tokenizer_template_and_specials(model):
    tok = model.tokenizer
    conv = [{"role": "user", "content": "Q?"}, {"role": "assistant", "content": "A."}]
    assert tok.apply_chat_template(conv, tokenize=False) == chat.render(
        [{"from": "human", "value": "Q?"}, {"from": "gpt", "value": "A."}])
    # reserved tokens as pad and image placeholder, no vocabulary resize, single tokens
    assert model.pad_id != model.image_id
    assert len(tok) == model.llm.get_input_embeddings().weight.shape[0]
    assert tok.convert_ids_to_tokens(model.pad_id) == "<|reserved_special_token_0|>"


def test_label_mask_supervises_every_answer_and_nothing_else(model):
    tok = model.tokenizer
    enc = chat.encode(tok, CONV, model.settings.image_token, model.n_image, True, max_tokens=1000)
    text = tok.decode(enc.input_ids)
    assert text == chat.render(CONV, model.settings.image_token, model.n_image)  # ids = the template string
    assert enc.input_ids.count(model.image_id) == model.n_image
    supervised = tok.decode([t for t, l in zip(enc.input_ids, enc.labels) if l != chat.IGNORE])
    assert supervised == "It is red.<|eot_id|>At the top left.<|eot_id|>It is small.<|eot_id|>"
    for t, l in zip(enc.input_ids, enc.labels):
        assert l in (chat.IGNORE, t)
    assert enc.labels[0] == chat.IGNORE and enc.input_ids[0] == tok.convert_tokens_to_ids("<|begin_of_text|>")
    assert enc.input_ids.count(tok.convert_tokens_to_ids("<|begin_of_text|>")) == 1  # no double BOS


def test_merge_concatenates_four_consecutive_patches(model):
    b, n, d = 2, 16, 3
    patches = torch.arange(b * n * d, dtype=torch.float32).reshape(b, n, d)
    merged = model.merge_tokens(patches)
    assert merged.shape == (b, n // 4, 4 * d)
    assert torch.equal(merged[1, 2], torch.cat([patches[1, 8], patches[1, 9], patches[1, 10], patches[1, 11]]))


def test_splice_puts_image_embeddings_at_the_placeholders_in_batch_order(model):
    k, h = model.n_image, model.llm.config.hidden_size
    ids = torch.tensor([[5, 6] + [model.image_id] * k + [7], [8] + [model.image_id] * k + [9, model.pad_id]])
    img = torch.randn(2, k, h)
    out = model.splice(ids, img)
    table = model.llm.get_input_embeddings().weight
    assert torch.equal(out[0, 2:2 + k], img[0]) and torch.equal(out[1, 1:1 + k], img[1])
    assert torch.equal(out[0, 0], table[5]) and torch.equal(out[1, k + 1], table[9])
    with pytest.raises(ValueError, match="placeholder"):
        model.splice(ids, img[:1])


def test_image_changes_the_loss_and_vision_stays_frozen(model):
    enc = chat.encode(model.tokenizer, CONV, model.settings.image_token, model.n_image, True, 1000)
    ids = torch.tensor([enc.input_ids])
    size = model.settings.vision.image_size
    model.train()
    assert not model.vision.training and not any(p.requires_grad for p in model.vision.parameters())
    trainable = set(model.trainable_state())
    assert trainable and all(n.startswith("proj.") or "lora_" in n for n in trainable)
    model.eval()
    with torch.no_grad():
        a = model(ids, torch.ones_like(ids), torch.tensor([enc.labels]), torch.zeros(1, 3, size, size))
        b = model(ids, torch.ones_like(ids), torch.tensor([enc.labels]), torch.ones(1, 3, size, size))
    assert float(a) != float(b)


def test_generate_answers(model):
    out = model.generate([CONV[:1]], [None], max_new_tokens=4)
    assert len(out) == 1 and isinstance(out[0], str)


def test_weights_from_another_shape_are_refused_naming_the_file(model, tmp_path):
    state = {k: v.clone() for k, v in model.trainable_state().items()}
    path = tmp_path / "good.safetensors"
    save_trainable(state, path)
    load_trainable(model, path)
    name = next(n for n in state if "lora_A" in n)
    state[name] = torch.zeros(state[name].shape[0] + 1, state[name].shape[1])
    bad = tmp_path / "other-shape.safetensors"
    save_trainable(state, bad)
    with pytest.raises(CheckpointMismatch, match="other-shape.safetensors.*shape mismatch"):
        load_trainable(model, bad)


def test_instruct_conversations_give_the_scene_in_words_and_ask_multiple_choice_in_english():
    from pipeline.languages import LANGS
    from pipeline.model.chat import turns
    from pipeline.toy import lexicon
    from pipeline.toy.world import MC_INSTRUCTION, instruct_conversations

    convs = instruct_conversations(66, seed=0)
    assert convs == instruct_conversations(66, seed=0)  # deterministic
    assert all(turns(c)[0][0] == "user" and turns(c)[-1][0] == "assistant" for c in convs)
    assert all("<image>" not in t["value"] for c in convs for t in c)  # text only
    mc = [c for c in convs if "\n(A) " in c[0]["value"]]
    assert 20 <= len(mc) <= 46 and any(MC_INSTRUCTION in c[0]["value"] for c in mc)  # about half
    english_mc = {s["eng_Latn"] for k in ("mc_colour", "mc_shape", "mc_size", "mc_position") for s in lexicon.all_sentences(k)}
    assert all(c[0]["value"].split("\n")[1].replace("<image 1>", "").strip() in english_mc
               or c[0]["value"].split("\n")[2] in english_mc for c in mc)  # multiple choice: English only
    widened = instruct_conversations(66, seed=0, mc_langs=("fra_Latn", "hin_Deva"))
    assert any("\n(A) " in c[0]["value"] and "(A) rouge" in c[0]["value"] for c in widened)
    for c in mc:  # the answer is `(X) option`, and that line is among the options
        letter, option = c[1]["value"][1], c[1]["value"][4:]
        assert f"({letter}) {option}" in c[0]["value"].splitlines()
    captions = {lang: {s[lang] for s in lexicon.all_sentences("caption")} for lang in LANGS}
    first_lines = [c[0]["value"].split("\n")[0] for c in convs]
    assert len(set(first_lines)) > 50 and all(f in captions["eng_Latn"] for f in first_lines)  # told in English
    last = [c[-1]["value"] for c in convs]
    for lang in LANGS:  # asked and answered in every language
        assert any(a in {s[lang] for s in lexicon.all_sentences(k)} for a in last for k in ("a_colour", "a_shape", "a_size", "a_position", "caption"))
    native = instruct_conversations(66, seed=0, scene_lang=None)
    for lang in LANGS:  # or told in the language asked in
        assert any(c[0]["value"].split("\n")[0] in captions[lang] for c in native)
