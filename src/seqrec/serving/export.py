"""Model export: a recommender's user encoder as an ONNX graph, with its item vectors, item ids and a manifest.

An export folder is served without seqrec (onnxruntime and numpy are enough):

  user_encoder.onnx   items [B, L] int64, left-padded with 0  ->  user_vector [B, D] float32
  item_vectors.npy    [N+1, D] float32: row r scores internal item r; row 0 is padding
  item_ids.json       the external id of every row (null for row 0)
  manifest.json       model, max_len, sizes, padding convention, opset, scoring rule, export-time check

Scores are `user_vector @ item_vectors.T`, as in `SequentialEncoder.score`. The graph reads the last `max_len`
items of each row and left-pads them to `max_len`, which is what `Recommender.recommend` feeds the model, so
every batch size and sequence length runs the same computation.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import os
import shutil
import types
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from seqrec.errors import SeqrecError
from seqrec.files import dumps_json, read_json, temp_sibling
from seqrec.models.base import SequentialEncoder
from seqrec.models.gru4rec import GRU4Rec
from seqrec.recommender import Recommender
from seqrec.run_folders import check_output_dir, write_atomically

FORMATS = ("onnx",)
MANIFEST, ENCODER, ITEM_VECTORS, ITEM_IDS = "manifest.json", "user_encoder.onnx", "item_vectors.npy", "item_ids.json"
MANIFEST_FORMAT, MANIFEST_VERSION = "seqrec-export", 1
INSTALL_HINT = "pip install 'seqrec[export]'"
EXPORTABLE = ("trained models (sasrec, bert4rec, gru4rec, duorec; base and distilled runs) and SAE or tuned runs, "
              "whose steering is part of the user vector")
CHECK_USERS = 16  # histories replayed through onnxruntime before an export is kept
CHECK_TOLERANCE = 1e-3  # largest score difference accepted at export time, relative to the largest |score| (>= 1)


class ExportError(SeqrecError):
    """A recommender that cannot be exported, a missing exporter, or an export folder that is taken."""


# ---------------------------------------------------------------- the graph


class UserEncoder(nn.Module):
    """`model.user_vector` of the last `max_len` items, left-padded to `max_len`.  items [B, L] -> [B, D]"""

    def __init__(self, model: SequentialEncoder) -> None:
        super().__init__()
        self.model = model
        self.max_len = model.max_len

    def forward(self, items: torch.Tensor) -> torch.Tensor:
        # column c of the window is input column L - max_len + c; those before the first column are padding
        source = torch.arange(self.max_len, device=items.device) + (items.shape[1] - self.max_len)  # [max_len]
        window = items.gather(1, source.clamp(min=0).expand(items.shape[0], -1)) * (source >= 0)  # [B, max_len]
        return self.model.user_vector(window).float()


def unpacked_gru_encode(self: GRU4Rec, items: torch.Tensor) -> torch.Tensor:  # [B, L] -> [B, L, D]
    """`GRU4Rec.encode` without packing (packed sequences do not trace): the GRU runs over right-aligned rows, so
    every real position sees only the items before it, exactly as in the packed run; padding is zeroed after."""
    length = items.shape[1]
    lengths = (items != 0).sum(1).clamp(min=1)  # [B]
    cols = torch.arange(length, device=items.device)
    right = items.gather(1, (cols[None, :] + (length - lengths)[:, None]) % length)  # left- -> right-aligned
    out, _ = self.gru(self.dropout(self.input_vectors(right)))  # [B, L, S]
    back = (cols[None, :] - (length - lengths)[:, None]) % length  # right- -> left-aligned
    out = out.gather(1, back[..., None].expand(-1, -1, out.shape[-1]))
    return self.project(self.dropout(out)) * (items != 0).unsqueeze(-1)


# Models whose own `encode` does not trace get an equivalent one in the exported copy (see `graph_ready`).
GRAPH_FORMS: dict[type[nn.Module], Callable[..., torch.Tensor]] = {GRU4Rec: unpacked_gru_encode}


def graph_ready(model: SequentialEncoder) -> SequentialEncoder:
    """A CPU copy in eval mode whose submodules use their graph forms; `model` itself is not changed."""
    ready = copy.deepcopy(model).cpu().eval()
    for module in ready.modules():
        form = GRAPH_FORMS.get(type(module))
        if form is not None:
            module.encode = types.MethodType(form, module)
    return ready


def exportable_model(recommender: Recommender) -> SequentialEncoder:
    """The encoder of `recommender` if its scores are `user_vector @ item_embeddings.T`, else an `ExportError`."""
    model = getattr(recommender, "model", None)
    plain_scores = (isinstance(recommender, Recommender) and isinstance(model, SequentialEncoder)
                    and type(recommender).score is Recommender.score and type(model).score is SequentialEncoder.score)
    if not plain_scores:
        raise ExportError(f"{type(model).__name__} does not score items as user_vector @ item_vectors.T, so it has "
                          f"no user encoder to export; runs that export: {EXPORTABLE}")
    return model  # type: ignore[return-value]


@contextlib.contextmanager
def quiet_exporter() -> Iterator[None]:
    """Silence the exporter's warnings and log lines (missing optional packages, deprecations)."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def trace(encoder: UserEncoder) -> tuple[torch.export.ExportedProgram, dict[str, Any]]:
    """`encoder` as an exported program with a dynamic batch and length, and those dynamic shapes.

    Python-level tracing first, then dynamo's (which keeps sizes read with `len()` symbolic); a graph that only
    holds for the example's sizes is an `ExportError`, never a silently fixed batch.
    """
    example = torch.ones(2, 2, dtype=torch.long)  # sizes of 2 stay symbolic (0 and 1 would be specialised)
    shapes = {"items": {0: torch.export.Dim("batch"), 1: torch.export.Dim("length")}}
    failure: Exception | None = None
    for strict in (False, True):
        try:
            with quiet_exporter(), torch.no_grad():
                return torch.export.export(encoder, (example,), dynamic_shapes=shapes, strict=strict), shapes
        except Exception as exc:  # any failure to trace means the model has no graph of this form
            failure = exc
    summary = str(failure).strip().splitlines()[0] if str(failure).strip() else type(failure).__name__
    raise ExportError(f"{type(encoder.model).__name__} does not export to a graph with a dynamic batch and length "
                      f"({summary}); runs that export: {EXPORTABLE}") from failure


def export_onnx(encoder: UserEncoder, path: Path) -> int:
    """Write `encoder` to `path` as ONNX with dynamic batch and length; returns the ONNX opset used."""
    program, shapes = trace(encoder)
    try:
        with quiet_exporter(), torch.no_grad():
            onnx_program = torch.onnx.export(program, dynamic_shapes=shapes, dynamo=True, input_names=["items"],
                                             output_names=["user_vector"], verbose=False)
            onnx_program.save(str(path))
    except torch.onnx.OnnxExporterError as exc:
        summary = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ExportError(f"{type(encoder.model).__name__} does not convert to ONNX ({summary}); runs that export: "
                          f"{EXPORTABLE}") from exc
    return next(op.version for op in onnx_program.model_proto.opset_import if op.domain in ("", "ai.onnx"))


# ---------------------------------------------------------------- checking the graph against PyTorch


def check_histories(recommender: Recommender) -> np.ndarray:
    """Internal ids of up to CHECK_USERS users spread over the histories, sorted by length (longest last)."""
    histories = recommender.histories
    users = np.unique(np.linspace(0, len(histories) - 1, num=min(CHECK_USERS, len(histories))).astype(np.int64))
    return users[np.argsort(histories.lengths[users], kind="stable")]


def score_difference(path: Path, recommender: Recommender, item_vectors: np.ndarray) -> float:
    """Largest |score| difference between the graph at `path` in onnxruntime and the recommender's model, over
    the check users' histories given trimmed to their longest and longer than the model's window."""
    import onnxruntime

    model, users = recommender.model, check_histories(recommender)
    if not len(users):
        return 0.0
    hist = recommender.histories.take(users)
    with torch.no_grad():
        full = torch.from_numpy(hist.padded(model.max_len)).to(model.device)
        expected = (model.user_vector(full).float() @ model.item_embeddings().float().T).cpu().numpy()
    longest, worst = int(hist.lengths.max()), 0.0
    try:
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        for width in (min(longest, model.max_len), model.max_len + 3):
            vectors = session.run(None, {"items": hist.padded(width)})[0]  # [C, D]
            worst = max(worst, float(np.abs(vectors @ item_vectors.T - expected).max()))
    except Exception as exc:  # onnxruntime's own error types
        raise ExportError(f"the exported graph of {type(model).__name__} fails in onnxruntime ({exc}); runs that "
                          f"export: {EXPORTABLE}") from exc
    scale = max(1.0, float(np.abs(expected).max()))
    if not worst <= CHECK_TOLERANCE * scale:  # NaN fails too
        raise ExportError(f"the exported graph of {type(model).__name__} does not reproduce its scores (largest "
                          f"difference {worst:.3g} for scores up to {scale:.3g}); the model does not export cleanly, "
                          f"runs that export: {EXPORTABLE}")
    return worst


# ---------------------------------------------------------------- the export folder


def require_exporter() -> None:
    """onnx, onnxruntime and onnxscript (the exporter of torch.onnx) are importable, else an `ExportError`."""
    for name in ("onnx", "onnxscript", "onnxruntime"):
        try:
            __import__(name)
        except ImportError:
            raise ExportError(f"exporting to ONNX needs the package {name}, which is not installed; install the "
                              f"exporter with: {INSTALL_HINT}") from None


def is_export(path: Path) -> bool:
    """Whether `path` is a folder holding an export's manifest (the only folders `force` may replace)."""
    try:
        manifest = read_json(path / MANIFEST, "")
    except SeqrecError:
        return False
    return isinstance(manifest, dict) and manifest.get("format") == MANIFEST_FORMAT


def check_destination(out: Path, force: bool) -> None:
    """`out` is free, or an earlier export that `force` replaces; its parent folder is writable."""
    if out.exists() or out.is_symlink():
        if not force:
            raise ExportError(f"{out} already exists; choose another --out, or pass --force to replace an earlier "
                              "export")
        if not out.is_dir() or out.is_symlink() or not is_export(out):
            raise ExportError(f"{out} exists and is not a seqrec export (no {MANIFEST} of one); --force only "
                              "replaces an export, so choose another --out")
    check_output_dir(out.parent)


def check_exporter(format: str) -> None:
    """A known format whose exporter's packages are installed, else an `ExportError`."""
    if format not in FORMATS:
        raise ExportError(f"unknown export format {format!r}; choose one of: {', '.join(FORMATS)}")
    require_exporter()


def write_folder(out: Path, write: Callable[[Path], None], force: bool) -> Path:
    """Fill a temporary folder with `write` and move it to `out`; with `force`, an earlier export there is
    replaced only once the new one is complete."""
    if not (force and out.exists()):
        return write_atomically(out, write)
    fresh = write_atomically(temp_sibling(out), write)
    old = temp_sibling(out)
    os.rename(out, old)
    os.rename(fresh, out)
    shutil.rmtree(old, ignore_errors=True)
    return out


def item_rows(recommender: Recommender) -> list[str | None]:
    """The external id of every row of the item table; row 0 (padding) has none."""
    num_items = recommender.model.num_items
    return [None, *recommender.item_map.to_external(range(1, num_items + 1))]


def manifest(recommender: Recommender, item_vectors: np.ndarray, opset: int, difference: float,
             run: str | None) -> dict[str, Any]:
    """What a server needs to know to feed the graph and rank with its outputs."""
    model = recommender.model
    rows, dim = item_vectors.shape
    return {
        "format": MANIFEST_FORMAT, "version": MANIFEST_VERSION, "runtime": "onnx", "opset": opset,
        "model": model.config.name, "encoder": type(model).__name__, "run": run,
        "max_len": model.max_len, "hidden": dim, "num_items": rows - 1,
        "files": {"user_encoder": ENCODER, "item_vectors": ITEM_VECTORS, "item_ids": ITEM_IDS},
        "input": {"name": "items", "dtype": "int64", "shape": ["batch", "length"],
                  "values": f"item rows 1..{rows - 1} (item_ids.json), 0 = padding",
                  "padding": "left: the most recent item in the last column",
                  "window": f"only the last {model.max_len} columns are read; any batch size and length"},
        "output": {"name": "user_vector", "dtype": "float32", "shape": ["batch", dim]},
        "scoring": {"rule": "score = user_vector @ item_vectors.T", "padding_row": 0,
                    "padding": "row 0 is padding: set its score to -inf, never recommend it",
                    "seen_items": "masking items the user has seen is the caller's job",
                    "run_masked_seen_items": recommender.mask_seen},
        "check": {"users": int(len(check_histories(recommender))), "max_abs_score_difference": difference},
        "torch": torch.__version__,
    }


def export_recommender(recommender: Recommender, out: str | Path, format: str = "onnx", force: bool = False,
                       run: str | None = None) -> Path:
    """Export `recommender`'s user encoder, item vectors and item ids to the new folder `out`; returns it.

    The graph is replayed in onnxruntime on some users' histories before the folder is kept. An existing `out`
    is refused, unless `force` and it holds an earlier export. `run` is recorded in the manifest.
    """
    out = Path(out)
    check_exporter(format)
    check_destination(out, force)
    model = exportable_model(recommender).eval()  # no dropout in the graph, nor in the scores it is checked against
    encoder = UserEncoder(graph_ready(model)).eval()
    with torch.no_grad():
        item_vectors = model.item_embeddings().detach().float().cpu().numpy()  # [N+1, D]

    def write(folder: Path) -> None:
        opset = export_onnx(encoder, folder / ENCODER)
        difference = score_difference(folder / ENCODER, recommender, item_vectors)
        np.save(folder / ITEM_VECTORS, item_vectors)
        (folder / ITEM_IDS).write_text(json.dumps(item_rows(recommender)), encoding="utf-8")
        info = manifest(recommender, item_vectors, opset, difference, run)
        (folder / MANIFEST).write_text(dumps_json(info, str(out / MANIFEST)), encoding="utf-8")

    return write_folder(out, write, force)
