"""One model-agnostic trainer: index-slice batches on the device, loss terms, validation, the one loop, DDP."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from rich.progress import Progress

from seqrec.data.splits import SplitData
from seqrec.errors import ConfigError, NonFiniteError
from seqrec.models.base import SequentialEncoder, TrainingSet
from seqrec.models.losses import (
    ItemLoss,
    LossSum,
    chunked_softmax_ce,
    full_softmax_ce,
    negative_sampling_loss,
    sampled_softmax_ce,
)
from seqrec.models.terms import LossTerm, Step
from seqrec.training import distributed
from seqrec.training.callbacks import Checkpointing, EarlyStopping, EpochFunctions, ProgressBar, TimeBudget
from seqrec.training.checkpoint import Checkpoint, restore_rng_state, rng_state
from seqrec.training.config import TrainConfig, resolve_device
from seqrec.training.loop import Callback, Loop, Record

EpochCallback = Callable[[Record], None]
Validate = Callable[[SequentialEncoder], dict[str, float]]  # the model -> validation metrics (same on every rank)
RECOMMENDATION = "recommendation"  # the name of the model's own objective among the terms' means


def seed_everything(seed: int) -> None:
    np.random.seed(seed)
    torch.manual_seed(seed)


class Objective(torch.nn.Module):
    """The model's recommendation loss and the active loss terms of one batch, as a module (DDP can wrap it).

    (users [B], batch [B, W]) -> [1 + T] sums and [1 + T] counts: the recommendation loss first, then each term.
    """

    def __init__(self, model: SequentialEncoder, item_loss: ItemLoss, generator: torch.Generator,
                 terms: Sequence[LossTerm] = ()) -> None:
        super().__init__()
        self.model = model
        self.item_loss = item_loss
        self.generator = generator
        self.terms = torch.nn.ModuleList(terms)
        self.layered = any(term.layer is not None for term in terms)

    def forward(self, users: torch.Tensor, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        seen: dict[str, Any] = {}  # the tensors of the recommendation loss's own forward pass

        def encode(items: torch.Tensor) -> torch.Tensor:
            seen["layers"] = self.model.encode_layers(items) if self.layered else None
            seen["hidden"] = seen["layers"][-1] if self.layered else self.model.encode(items)
            seen["inputs"] = items
            return seen["hidden"]

        out, targets = self.model.recommendation_loss(batch, self.item_loss, self.generator, encode)
        step = Step(users, batch, seen["inputs"], targets, seen["hidden"], seen["layers"])
        parts = [out] + [term(step) for term in self.terms]
        return torch.stack([p.total.float() for p in parts]), torch.stack([p.count.float() for p in parts])


def combine_terms(totals: torch.Tensor, counts: torch.Tensor, sums: torch.Tensor, terms: Sequence[LossTerm],
                  world: int = 1) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The loss to back-propagate from this process's sums and counts and their global sums.

    totals, counts [1 + T] (the recommendation loss first, then `terms`); sums [2 + 2T] = global totals then
    global counts (detached). Each part is scaled by world / global count, so DDP's gradient average is the
    gradient of the global means; convex terms take their weight from the recommendation loss.
    -> (loss, each term's logged value)
    """
    global_totals, global_counts = sums[: len(totals)], sums[len(totals):].clamp(min=1)
    names = [RECOMMENDATION, *(t.name for t in terms)]
    means = dict(zip(names, global_totals / global_counts, strict=True))
    scaled = totals * world / global_counts  # [1 + T]
    share = 1.0 - sum(t.weight for t in terms if t.convex)
    loss = share * scaled[0] if share != 1.0 else scaled[0]
    for i, term in enumerate(terms, start=1):
        loss = loss + term.combine(scaled[i], means)
    return loss, {t.name: t.logged(means[t.name]) for t in terms}


@dataclass
class TrainResult:
    model: SequentialEncoder  # with the best validation weights restored
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    best_valid: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0


class Trainer:
    """Trains any `SequentialEncoder` on its own objective plus loss terms; selects epochs by `validate`.

    `terms` are added to the model's own (`model.loss_terms`). `validate` (e.g. ranking metrics on the valid split)
    gives the `valid_<name>` values of the history; `config.monitor` among them selects the best epoch. Without
    it the last epoch is kept. Inside a process group (`torchrun`), each rank takes its share of every global
    batch; gradients are averaged by DDP and every term is normalised by its global count, so N processes follow
    the same trajectory as one process with the same global batch.
    """

    def __init__(self, model: SequentialEncoder, data: SplitData, config: TrainConfig, *,
                 validate: Validate | None = None, terms: Sequence[LossTerm] = (),
                 callbacks: Sequence[EpochCallback | Callback] = (), progress: bool = True) -> None:
        self.config = config
        self.dist = distributed.current()
        self.device = distributed.rank_device(resolve_device(config.device))
        self.model = model.to(self.device)
        self.data = data
        self.validate = validate
        self.show_progress = progress and self.dist.is_main
        self.generator = torch.Generator().manual_seed(config.seed)
        self.rng = np.random.default_rng(config.seed)
        self.users, self.sequences, self.lengths = self._training_tensor()
        self.terms: list[LossTerm] = [t.to(self.device) for t in terms] + model.loss_terms(self._training_set())
        names = [t.name for t in self.terms]
        if len(set(names)) < len(names) or RECOMMENDATION in names:
            raise ConfigError(f"loss terms need distinct names other than {RECOMMENDATION!r}; got {names}")
        self.item_loss = self._item_loss()
        if config.compile:  # `encode` only (not `encode_layers`): the loss selects positions, so shapes vary
            self.model.encode = torch.compile(self.model.encode, dynamic=True)  # type: ignore[method-assign]
        self.active: list[LossTerm] = [t for t in self.terms if t.active(1)]
        self.objective = self._objective(self.active)
        self.epoch = 0
        opt = torch.optim.AdamW if config.optimizer == "adamw" else torch.optim.Adam
        self.optimizer = opt(self._parameter_groups(), lr=config.lr, weight_decay=config.weight_decay)
        self.selection = EarlyStopping(self.model, f"valid_{config.monitor}", "max", config.patience,
                                       warmup=max([config.warmup, *(t.last_epoch or 0 for t in self.terms)]))
        self.progress = ProgressBar(f"training {data.name}", self._status, self.show_progress)
        user = [c for c in callbacks if isinstance(c, Callback)]
        functions = [c for c in callbacks if not isinstance(c, Callback)]
        self._core: list[Callback] = [self.selection, TimeBudget(config.time_budget, self._agree)]
        self._functions = EpochFunctions(functions)
        self._extra = [self._functions, *user, self.progress]  # after the checkpoint: a callback may interrupt
        self.loop = Loop(config.epochs, self._core + self._extra)

    def add_callback(self, callback: EpochCallback | Callback) -> None:
        """Add a loop callback, or a function called with each epoch's record (before the progress bar)."""
        if isinstance(callback, Callback):
            self._extra.insert(-1, callback)
        else:
            self._functions.functions.append(callback)

    def _agree(self, flag: bool) -> bool:
        return self.dist.any(flag, self.device)  # ranks' clocks differ; stop together

    def _item_loss(self) -> ItemLoss:
        cfg, num_items = self.config, self.model.num_items
        if cfg.loss == "chunked":
            return chunked_softmax_ce(cfg.loss_chunk)
        if cfg.loss == "full":
            return full_softmax_ce
        counts = torch.bincount(self.sequences.flatten().cpu(), minlength=num_items + 1)[1:].double()
        probs = (counts + 1) / (counts + 1).sum()  # [N] popularity, smoothed
        if cfg.loss == "sampled":
            uniform = cfg.sampler_used == "uniform"
            return sampled_softmax_ce(torch.full_like(probs, 1 / num_items) if uniform else probs,
                                      cfg.negatives_used, self.generator)
        if cfg.loss == "gbce" and cfg.negatives_used >= num_items:
            raise ConfigError(f"train.negatives ({cfg.negatives_used}) must be below the {num_items} items for gbce")
        return negative_sampling_loss(cfg.loss, num_items, cfg.negatives_used, self.generator, cfg.gbce_t,
                                      probs if cfg.sampler_used == "popularity" else None)

    def _parameter_groups(self) -> list[dict]:
        """The model's groups (it may train parts at other rates), then the terms' own parameters."""
        groups = self.model.parameter_groups(self.config.lr)
        seen = {id(p) for group in groups for p in group["params"]}
        terms = torch.nn.ModuleList(self.terms)
        rest = [p for p in terms.parameters() if p.requires_grad and id(p) not in seen]
        return groups + ([{"params": rest}] if rest else [])

    def _training_set(self) -> TrainingSet:
        full = self.data.train.lengths[self.users.cpu().numpy()]
        return TrainingSet(self.users, self.sequences, full, self.generator)

    def _objective(self, terms: Sequence[LossTerm]) -> torch.nn.Module:
        objective: torch.nn.Module = Objective(self.model, self.item_loss, self.generator, terms)
        if self.dist.active:
            ids = [self.device.index] if self.device.type == "cuda" else None
            objective = torch.nn.parallel.DistributedDataParallel(objective, device_ids=ids)
        return objective

    def _training_tensor(self) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
        """Users with >= 2 training items and their left-padded sequences, kept on the device.

        -> users [U'], sequences [U', W], lengths [U']
        """
        width = self.model.training_width
        train = self.data.train
        usable = np.flatnonzero(train.lengths >= 2)  # train rows are internal user ids
        padded = torch.from_numpy(train.take(usable).padded(width)).to(self.device)
        return torch.from_numpy(usable).to(self.device), padded, np.minimum(train.lengths[usable], width)

    def batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Shuffled index-slice batches (this rank's share), trimmed to the longest sequence of the global batch.

        -> (users [B], sequences [B, W])
        """
        n, size = len(self.lengths), self.config.batch_size
        if self.config.length_buckets:
            jitter = 1.0 + 0.25 * self.rng.random(n)  # mixes users within ±25% of each other's length
            order = np.argsort(self.lengths * jitter, kind="stable")
            chunks = [order[i : i + size] for i in range(0, n, size)]
            chunks = [chunks[i] for i in self.rng.permutation(len(chunks))]
        else:
            order = self.rng.permutation(n)
            chunks = [order[i : i + size] for i in range(0, n, size)]
        if self.dist.active:  # a final batch smaller than the world would leave a rank without rows
            chunks = [rows for rows in chunks if len(rows) >= self.dist.world]
        for rows in chunks:
            width = max(int(self.lengths[rows].max()), 2)
            mine = torch.from_numpy(self.dist.shard(rows)).to(self.device)
            yield self.users[mine], self.sequences[mine][:, -width:]

    def loss(self, users: torch.Tensor, batch: torch.Tensor) -> torch.Tensor:
        """Mean recommendation loss of one batch (single process)."""
        totals, counts = self.objective(users, batch)
        return LossSum(totals[0], counts[0]).mean

    def _require_finite_step(self, loss: torch.Tensor, norm: torch.Tensor, batch: int, batches: int) -> None:
        """Stop before the optimiser step when the loss or the gradient is NaN or infinite (on any rank)."""
        bad = ~torch.isfinite(loss.detach()) | ~torch.isfinite(norm)
        if not self.dist.any(bool(bad), self.device):
            return
        causes = [f"a learning rate too high for this model (train.lr is {self.config.lr:g}; try a tenth)"]
        if self.config.grad_clip == 0:
            causes.append("no gradient clipping (set train.grad_clip, e.g. 1.0)")
        causes += [term.likely_cause for term in self.active if term.likely_cause]
        raise NonFiniteError(f"training diverged at epoch {self.epoch}, batch {batch} of {batches}: loss "
                             f"{float(loss.detach()):.4g}, gradient norm {float(norm):.4g}. Likely cause: "
                             f"{'; or '.join(causes)}. No run was saved from these weights")

    def train_epoch(self, progress: Progress | None = None) -> dict[str, float]:
        """One pass over the training users: mean loss per predicted position and each active term's mean."""
        self.model.train()
        total = torch.zeros((), device=self.device)
        count = torch.zeros((), device=self.device)
        logged = {t.name: torch.zeros((), device=self.device) for t in self.active}
        n_steps = 0
        n_batches = -(-len(self.lengths) // self.config.batch_size)
        task = progress.add_task("  batches", total=n_batches, status="") if progress else None
        for batch_number, (users, batch) in enumerate(self.batches(), start=1):
            with self._autocast():
                totals, counts = self.objective(users, batch)
            sums = self.dist.sum(torch.cat([totals.detach(), counts]))  # the one all-reduce of the step
            loss, values = combine_terms(totals, counts, sums, self.active, self.dist.world)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            clip = self.config.grad_clip if self.config.grad_clip > 0 else float("inf")  # inf: measure only
            norm = torch.nn.utils.clip_grad_norm_(self.objective.parameters(), clip)
            self._require_finite_step(loss, norm, batch_number, n_batches)
            self.optimizer.step()
            total += totals[0].detach()
            count += counts[0]
            for name, value in values.items():
                logged[name] += value.detach().float()
            n_steps += 1
            if progress is not None and task is not None:
                progress.advance(task)
        if progress is not None and task is not None:
            progress.remove_task(task)
        out = {"train_loss": (self.dist.sum(total) / self.dist.sum(count).clamp(min=1)).item()}
        return out | {name: (value / max(n_steps, 1)).item() for name, value in logged.items()}

    def _start_epoch(self, epoch: int) -> None:
        """Switch the objective when the set of active terms changes; a new phase restarts model selection."""
        active = [t for t in self.terms if t.active(epoch)]
        if [t.name for t in active] != [t.name for t in self.active]:
            self.active, self.objective = active, self._objective(active)
            self.selection.restart()

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.device.type == "cuda" and self.config.bf16:
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _run_epoch(self, epoch: int) -> Record:
        """Train one epoch, the terms' end of epoch (e.g. a knowledge-base refresh), then validate when due."""
        self.epoch = epoch
        self._start_epoch(epoch)
        t0 = time.perf_counter()
        record: Record = {"epoch": epoch, **self.train_epoch(self.progress.progress)}
        for term in self.terms:
            record |= term.end_epoch(epoch)
        record["train_seconds"] = time.perf_counter() - t0
        if self.validate is not None and (epoch % self.config.eval_every == 0 or epoch == self.config.epochs):
            self.model.eval()
            record |= {f"valid_{k}": v for k, v in self.validate(self.model).items()}
        return record

    def fit(self, checkpoint: Checkpoint | None = None) -> TrainResult:
        """Train until `epochs`, early stopping or the time budget; restore the best epoch's weights.

        With `checkpoint`, a saved state is resumed first (the result equals an uninterrupted run's) and the state
        is saved every `checkpoint.every` epochs and when training stops.
        """
        saving = [Checkpointing(checkpoint, self.state_dict)] if checkpoint is not None else []
        self.loop.epochs = self.config.epochs
        self.loop.callbacks = self._core + saving + self._extra
        saved = checkpoint.load() if checkpoint is not None else None
        if saved is not None:
            self.load_state_dict(saved)
        self.loop.run(self._run_epoch)
        for term in self.terms:
            term.end_training()
        best = self.selection.best_record
        return TrainResult(self.model, self.loop.history, self.selection.best_epoch,
                           {k[6:]: v for k, v in best.items() if k.startswith("valid_")}, self.loop.elapsed)

    def _status(self, record: Record) -> str:
        monitor, best = self.config.monitor, self.selection.best_score
        valid = record.get(f"valid_{monitor}")
        shown = f" valid {monitor} {valid:.4f}" if valid is not None else ""
        best_shown = f" (best {best:.4f})" if isinstance(best, float) and abs(best) != float("inf") else ""
        return f"loss {record['train_loss']:.4f}{shown}{best_shown}"

    def state_dict(self) -> dict[str, Any]:
        """Everything a resumed run needs: weights, optimiser, loss terms, random streams and the loop state."""
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "terms": {t.name: t.checkpoint_state() for t in self.terms},
            "rng": self.dist.gather_objects(rng_state(self.generator, self.rng)),
            "loop": self.loop.state_dict(),
        }

    def load_state_dict(self, saved: dict[str, Any]) -> None:
        """Continue from `state_dict()`'s output (random streams of this rank, or rank 0's on another world)."""
        self.model.load_state_dict(saved["model"])
        for term in self.terms:
            term.restore_checkpoint_state(saved["terms"][term.name])
        self.loop.load_state_dict(saved["loop"])
        self.active = [t for t in self.terms if t.active(max(self.loop.epoch, 1))]
        self.objective = self._objective(self.active)
        self.optimizer.load_state_dict(saved["optimizer"])  # the optimiser always holds every term's parameters
        streams = saved["rng"]
        restore_rng_state(streams[self.dist.rank] if len(streams) == self.dist.world else streams[0],
                          self.generator, self.rng)
