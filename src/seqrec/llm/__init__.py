"""LLM rating prediction (SIREN): interest sketches, prompts, GRPO reasoning, hidden-state alignment, answer-only
inference. Needs the `llm` extra (transformers, trl, peft, faiss)."""
