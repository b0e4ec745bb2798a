"""The MiniGPT-v2-style model (next step): one factory that builds the tiny and the real model from
config (frozen EVA, 4-token merge and projection, Llama 3 with LoRA)."""
