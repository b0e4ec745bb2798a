"""The MiniGPT-v2-style model: one factory (`build_model`) that builds the tiny and the real model from
`Profile.model` (frozen EVA, 4-token merge and projection, Llama 3 with LoRA); `chat` holds the Llama-3
template and label mask; `weights` saves and loads the trainable weights."""
