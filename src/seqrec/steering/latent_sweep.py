"""RecFTT latent analysis: amplify or suppress one SAE latent at a time and measure how each item attribute's
share of the top-N lists moves; choose the latents that regulate an attribute most.

For latent j and scale s, the users where j is active get u′ = x + (s − 1)·z_j·W_dec[j] (the `delta` form).
R_c(j, s) is the mean share of attribute c among their top-N items (seen items masked); the contribution
score is R_c(j, s_max) − R_c(j, s_min). All latents are swept together: every (user, active latent) pair is one
row of a batched scoring pass, so the cost is |users| · k rows per scale, never one pass per latent.
"""

from __future__ import annotations

import json
import re
import time
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from seqrec.data.splits import EvalSplit
from seqrec.errors import RunError, SeqrecError
from seqrec.evaluation.evaluate import mask_seen_items, require_finite
from seqrec.files import dumps_json, read_json
from seqrec.models.base import SequentialEncoder
from seqrec.run_folders import write_atomically
from seqrec.steering.activations import user_vectors
from seqrec.steering.interventions import ScaleLatents
from seqrec.steering.sae import TopKSAE
from seqrec.steering.steered import SteeredEncoder

DEFAULT_SCALES = (10.0, 0.1)
SWEEP_META, SWEEP_ARRAYS, SCORE_TABLE = "sweep.json", "sweep.npz", "latent_scores.csv"
# what np.load raises on a truncated, emptied or otherwise damaged .npz
NPZ_ERRORS = (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile, zlib.error)


@dataclass
class LatentSweep:
    """Attribute shares of top-N lists per latent and scale, over the users where the latent is active."""

    attributes: list[str]
    scales: tuple[float, ...]
    ratios: np.ndarray  # [S, H, C] R_c(j, s); 0 where the latent is never active
    base_ratios: np.ndarray  # [H, C] the same users' shares without intervention
    case_counts: np.ndarray  # [H] users where each latent is active
    top: int = 100
    split: str = "valid"
    mask_seen: bool = True
    seconds: float = 0.0
    path: Path | None = field(default=None, repr=False)

    @property
    def scores(self) -> np.ndarray:
        """Contribution score R(s_max) − R(s_min) per latent and attribute.  -> [H, C]"""
        return self.ratios[int(np.argmax(self.scales))] - self.ratios[int(np.argmin(self.scales))]

    def column(self, attribute: str) -> int:
        if attribute not in self.attributes:
            raise SeqrecError(f"the latent sweep at {self.path or '(memory)'} did not measure {attribute!r}; it "
                              f"has {', '.join(self.attributes)}. Run `seqrec sae sweep` with that attribute")
        return self.attributes.index(attribute)

    def regulation_scores(self, attribute: str) -> list[dict]:
        """RecFTT's `<attribute>_regulation_scores.json` entries, best score first."""
        c = self.column(attribute)
        hi, lo = int(np.argmax(self.scales)), int(np.argmin(self.scales))
        scores = self.scores[:, c]
        rows = []
        for j in np.argsort(-scores, kind="stable"):
            r_hi, r_lo = float(self.ratios[hi, j, c]), float(self.ratios[lo, j, c])
            if self.case_counts[j] == 0 or not (scores[j] or r_hi or r_lo):
                continue
            rows.append({"latent_id": int(j), "score": float(scores[j]), ratio_key(self.scales[hi]): r_hi,
                         ratio_key(self.scales[lo]): r_lo, "case_count": int(self.case_counts[j])})
        return rows


def ratio_key(scale: float) -> str:
    """10.0 -> avg_ratio_x10, 0.1 -> avg_ratio_x0_1 (RecFTT's field names)."""
    return "avg_ratio_x" + f"{scale:g}".replace(".", "_")


def file_stem(attribute: str) -> str:
    """Attribute name safe for a file name: Sci-Fi -> Sci_Fi."""
    return re.sub(r"\W", "_", attribute)


def controller_path(sweep_dir: str | Path, attribute: str) -> Path:
    """Where `sae choose` writes (and `tune` reads) an attribute's chosen latents: controller_<attribute>.json."""
    return Path(sweep_dir) / f"controller_{file_stem(attribute)}.json"


def check_scales(scales: tuple[float, ...]) -> tuple[float, ...]:
    scales = tuple(float(s) for s in scales)
    if len(scales) < 2 or min(scales) <= 0 or not all(np.isfinite(scales)) or max(scales) == min(scales):
        raise SeqrecError(f"need at least two different positive scales (amplify and suppress); got {scales}")
    return scales


@torch.no_grad()
def latent_sweep(model: SequentialEncoder, sae: TopKSAE, split: EvalSplit, attributes: list[str],
                 membership: np.ndarray, scales: tuple[float, ...] = DEFAULT_SCALES, top: int = 100,
                 mask_seen: bool = True, chunk_size: int = 4096) -> LatentSweep:
    """Sweep every latent at every scale over `split`'s users.  membership [N+1, C] bool (attribute_matrix)."""
    scales = check_scales(scales)
    if top < 1:
        raise SeqrecError(f"the list length must be >= 1; got {top}")
    start = time.perf_counter()
    model.eval()
    sae.eval()
    device = model.device
    top = min(top, split.num_items)
    x = user_vectors(model, split.histories).to(device)  # [E, D]
    code = sae(x)
    pair_user, slot = (code.values > 0).nonzero(as_tuple=True)  # every (user, active latent)  [P]
    pair_latent = code.index[pair_user, slot]
    steered = SteeredEncoder(model, sae, "delta")
    items_t = model.item_embeddings().float().T  # [D, N+1]
    share = torch.from_numpy(membership).float().to(device)  # [N+1, C]
    H, C = sae.latents, share.shape[1]
    counts = torch.zeros(H, device=device).index_add_(0, pair_latent, torch.ones(len(pair_latent), device=device))

    def top_shares(users: torch.Tensor, vectors: torch.Tensor) -> torch.Tensor:  # -> [R, C]
        scores = vectors @ items_t  # [R, N+1]
        scores[:, 0] = float("-inf")
        require_finite(scores, split.users[users.cpu().numpy()])
        if mask_seen:
            mask_seen_items(scores, split.histories.take(users.cpu().numpy()))
        return share[scores.topk(top, dim=1).indices].mean(1)

    def by_latent(s: float | None) -> torch.Tensor:  # mean share per latent over its active users  [H, C]
        total = torch.zeros(H, C, device=device)
        for lo in range(0, len(pair_user), chunk_size):
            users, latents = pair_user[lo : lo + chunk_size], pair_latent[lo : lo + chunk_size]
            edits = [] if s is None else [ScaleLatents.one_per_row(latents, s)]  # row r scales latents[r] by s
            vectors = steered.steer(x[users], code.rows(users), edits)  # [R, D]
            total.index_add_(0, latents, top_shares(users, vectors))
        return total / counts.clamp_min(1)[:, None]

    ratios = torch.stack([by_latent(s) for s in scales])
    base = by_latent(None)
    return LatentSweep(list(attributes), scales, ratios.cpu().numpy(), base.cpu().numpy(),
                       counts.long().cpu().numpy(), top, split.name, mask_seen, time.perf_counter() - start)


def choose_latents(sweep: LatentSweep, attribute: str, x: int = 100) -> tuple[list[int], list[int]]:
    """The `x` latents with the largest positive and the `x` with the most negative contribution scores."""
    if x < 1:
        raise SeqrecError(f"the number of latents per direction must be >= 1; got {x}")
    c = sweep.column(attribute)
    scores, active = sweep.scores[:, c], sweep.case_counts > 0
    order = np.argsort(-scores, kind="stable")
    positive = [int(j) for j in order if active[j] and scores[j] > 0][:x]
    negative = [int(j) for j in order[::-1] if active[j] and scores[j] < 0][:x]
    return positive, negative


def save_sweep(sweep: LatentSweep, path: str | Path, item_counts: dict[str, int] | None = None) -> Path:
    """Write the sweep to the new directory `path`: arrays, RecFTT-format score files, a latent × attribute table
    and a heat map of the strongest latents."""

    def write(tmp: Path) -> None:
        meta = {"attributes": sweep.attributes, "scales": list(sweep.scales), "top": sweep.top, "split": sweep.split,
                "mask_seen": sweep.mask_seen, "seconds": round(sweep.seconds, 2)}
        (tmp / SWEEP_META).write_text(dumps_json(meta, str(Path(path) / SWEEP_META)))
        np.savez_compressed(tmp / SWEEP_ARRAYS, ratios=sweep.ratios, base_ratios=sweep.base_ratios,
                            case_counts=sweep.case_counts)
        for attribute in sweep.attributes:
            rows = sweep.regulation_scores(attribute)
            name = f"{file_stem(attribute)}_regulation_scores.json"
            (tmp / name).write_text(dumps_json(rows, str(Path(path) / name), 1))
        if item_counts is not None:
            ordered = dict(sorted(item_counts.items(), key=lambda kv: -kv[1]))
            (tmp / "category_counts.json").write_text(json.dumps(ordered, indent=1))
        header = "latent,case_count," + ",".join(file_stem(a) for a in sweep.attributes)
        lines = [f"{j},{sweep.case_counts[j]}," + ",".join(f"{v:.6f}" for v in sweep.scores[j])
                 for j in range(len(sweep.case_counts))]
        (tmp / SCORE_TABLE).write_text("\n".join([header, *lines]) + "\n")
        plot_strongest(sweep, tmp / "strongest_latents.png")

    sweep.path = write_atomically(Path(path), write)
    return sweep.path


def load_sweep(path: str | Path, latents: int | None = None) -> LatentSweep:
    """Read a sweep written by `save_sweep`; a damaged or inconsistent one (or one over another number of
    latents than `latents`) raises RunError naming the file."""
    path = Path(path)
    if not (path / SWEEP_META).is_file() or not (path / SWEEP_ARRAYS).is_file():
        raise RunError(f"{path} is not a latent sweep (expected {SWEEP_META} and {SWEEP_ARRAYS}); "
                       "create one with `seqrec sae sweep RUN --attribute …`")
    fix = f"delete {path} and run `seqrec sae sweep` again"
    meta = read_json(path / SWEEP_META, fix)
    try:
        if not isinstance(meta, dict) or not isinstance(meta.get("attributes"), list) or not meta["attributes"]:
            raise ValueError("expected a mapping with a non-empty list of attributes")
        attributes, scales = [str(a) for a in meta["attributes"]], check_scales(tuple(meta["scales"]))
        top, split, mask_seen = int(meta["top"]), str(meta["split"]), meta["mask_seen"]
        seconds = float(meta["seconds"])
        if top < 1 or split not in ("valid", "test") or not isinstance(mask_seen, bool):
            raise ValueError(f"top={top}, split={split!r}, mask_seen={mask_seen!r}")
    except (KeyError, TypeError, ValueError, SeqrecError) as exc:
        raise RunError(f"{path / SWEEP_META} is damaged ({exc}); {fix}") from None
    try:
        with np.load(path / SWEEP_ARRAYS) as z:
            ratios, base, counts = z["ratios"], z["base_ratios"], z["case_counts"]
    except NPZ_ERRORS as exc:
        raise RunError(f"{path / SWEEP_ARRAYS} is damaged or truncated ({type(exc).__name__}: {exc}); {fix}") from None
    h = len(counts) if counts.ndim == 1 else -1
    problem = ""
    if ratios.shape != (len(scales), h, len(attributes)) or base.shape != (h, len(attributes)) or h < 1:
        problem = (f"ratios {ratios.shape}, base_ratios {base.shape} and case_counts {counts.shape} do not fit "
                   f"{len(scales)} scales × latents × {len(attributes)} attributes in {SWEEP_META}")
    elif latents is not None and h != latents:
        problem = f"it sweeps {h} latents, the SAE has {latents}"
    elif not np.issubdtype(counts.dtype, np.integer) or (counts < 0).any():
        problem = "case_counts must be counts (integers >= 0)"
    elif not all(np.issubdtype(a.dtype, np.floating) and np.isfinite(a).all() and ((a > -1e-6) & (a < 1 + 1e-5)).all()
                 for a in (ratios, base)):
        problem = "the attribute shares must be finite numbers between 0 and 1"
    if problem:
        raise RunError(f"{path / SWEEP_ARRAYS} is inconsistent ({problem}); {fix}")
    return LatentSweep(attributes, scales, ratios, base, counts, top, split, mask_seen, seconds, path)


def plot_strongest(sweep: LatentSweep, file: Path, per_attribute: int = 3) -> None:
    """Heat map of contribution scores: rows = each attribute's strongest positive latents, columns = attributes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows: list[int] = []
    for attribute in sweep.attributes:
        rows += [j for j in choose_latents(sweep, attribute, per_attribute)[0] if j not in rows]
    if not rows:
        return
    values = sweep.scores[rows]  # [R, C]
    limit = max(float(np.abs(values).max()), 1e-9)
    fig, ax = plt.subplots(figsize=(1.0 + 0.7 * len(sweep.attributes), 1.0 + 0.3 * len(rows)))
    image = ax.imshow(values, cmap="RdBu_r", vmin=-limit, vmax=limit, aspect="auto")
    ax.set_xticks(range(len(sweep.attributes)), sweep.attributes, rotation=45, ha="right")
    ax.set_yticks(range(len(rows)), [f"latent {j}" for j in rows])
    fig.colorbar(image, ax=ax, label=f"share change ×{max(sweep.scales):g} vs ×{min(sweep.scales):g}")
    ax.set_title(f"strongest latents per attribute (top-{sweep.top}, {sweep.split})")
    fig.tight_layout()
    fig.savefig(file, dpi=120)
    plt.close(fig)
