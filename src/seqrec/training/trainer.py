"""One model-agnostic trainer: index-slice batches on the device, early stopping, best-checkpoint restore, DDP."""

from __future__ import annotations

import contextlib
import copy
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from seqrec.data.splits import EvalSplit, SplitData
from seqrec.distill.guide import ProfileGuide, guide_objective
from seqrec.errors import ConfigError, NonFiniteError, suggest
from seqrec.evaluation.evaluate import evaluate
from seqrec.evaluation.metrics import ACCURACY
from seqrec.models.base import AuxiliaryLoss, SequentialEncoder, TrainingSet
from seqrec.training import distributed
from seqrec.training.checkpoint import Checkpoint, restore_rng_state, rng_state
from seqrec.training.config import EvalConfig, TrainConfig, resolve_device
from seqrec.training.losses import (
    LossSum,
    SoftmaxLoss,
    chunked_softmax_ce,
    cloze_loss,
    full_softmax_ce,
    next_item_loss,
    sampled_softmax_ce,
)

EpochCallback = Callable[[dict[str, float]], None]


def seed_everything(seed: int) -> None:
    np.random.seed(seed)
    torch.manual_seed(seed)


class Objective(torch.nn.Module):
    """The training loss as a module, so DDP and torch.compile can wrap it.

    (users [B], batch) -> (recommendation sum, positions, guide sum, profiled users, auxiliary loss); the guide
    terms are zero without a profile guide, the auxiliary loss (a weighted mean) zero without a model-specific term.
    """

    def __init__(self, model: SequentialEncoder, softmax: SoftmaxLoss, generator: torch.Generator,
                 guide: ProfileGuide | None = None, auxiliary: AuxiliaryLoss | None = None) -> None:
        super().__init__()
        self.model = model
        self.softmax = softmax
        self.generator = generator
        self.guide = guide
        self.auxiliary = auxiliary

    def forward(self, users: torch.Tensor, batch: torch.Tensor) -> tuple[torch.Tensor, ...]:
        cfg = self.model.config
        kept: dict[str, torch.Tensor] = {}  # tensors of the loss's own forward pass, for the guide and auxiliary

        def encode(items: torch.Tensor) -> torch.Tensor:
            if self.guide is not None:
                layers = self.model.encode_layers(items)
                kept["guide"], hidden = layers[self.guide.layer], layers[-1]
            else:
                hidden = self.model.encode(items)
            kept["hidden"], kept["items"] = hidden, items
            return hidden

        if cfg.objective == "cloze":
            out = cloze_loss(self.model, batch, cfg.mask_prob, self.generator,  # type: ignore[attr-defined]
                             softmax=self.softmax, encode=encode)
        else:
            last_only = getattr(cfg, "loss_positions", "all") == "last"
            out = next_item_loss(self.model, batch, last_only=last_only, softmax=self.softmax, encode=encode)
        zero = out.total.new_zeros(())
        auxiliary = (zero if self.auxiliary is None
                     else self.auxiliary(users, kept["items"], batch[:, 1:], kept["hidden"]))
        if self.guide is None:
            return out.total, out.count, zero, out.count.new_zeros(()), auxiliary
        return out.total, out.count, *self.guide(kept["guide"], kept["items"] != 0, users), auxiliary


@dataclass
class LoopState:
    """Where the epoch loop stands: what a checkpoint must hold besides weights, optimiser and random streams."""

    epoch: int = 0  # epochs finished
    history: list[dict[str, float]] = field(default_factory=list)
    best_score: float = -1.0
    best_epoch: int = 0
    best_valid: dict[str, float] = field(default_factory=dict)
    best_state: dict[str, torch.Tensor] | None = None  # the model's weights at the best epoch
    stale: int = 0  # epochs since the last improvement
    elapsed: float = 0.0  # training seconds so far (a resumed run continues the count)
    stopped: bool = False  # early stopping or the time budget ended training after `epoch`
    fine_tuning: bool = False  # distillation's second phase has started


@dataclass
class TrainResult:
    model: SequentialEncoder  # with the best validation weights restored
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    best_valid: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0


class Trainer:
    """Trains any `SequentialEncoder` on its objective; validates with `evaluate()` on the valid split.

    Inside a process group (`torchrun`), each rank takes its share of every global batch and of the validation
    users; gradients are averaged by DDP and the loss is normalised by the global number of predicted positions,
    so N processes follow the same trajectory as one process with the same global batch.
    """

    def __init__(self, model: SequentialEncoder, data: SplitData, config: TrainConfig,
                 eval_config: EvalConfig | None = None, callbacks: Sequence[EpochCallback] = (),
                 progress: bool = True, guide: ProfileGuide | None = None) -> None:
        self.config = config
        self.eval_config = eval_config or EvalConfig()
        name, _, k = config.monitor.partition("@")
        if name not in ACCURACY or not k.isdigit() or int(k) < 1:
            raise ConfigError(f"train.monitor must be a validation accuracy metric at a cut-off, one of "
                              f"{suggest([f'{n}@k' for n in ACCURACY])} (e.g. NDCG@10); got {config.monitor!r}")
        self.valid_ks = tuple(sorted({*self.eval_config.ks, int(k)}))  # the monitor's k even if not in eval.ks
        self.dist = distributed.current()
        self.device = distributed.rank_device(resolve_device(config.device))
        self.model = model.to(self.device)
        self.data = data
        self.callbacks = list(callbacks)
        self.show_progress = progress and self.dist.is_main
        self.generator = torch.Generator().manual_seed(config.seed)
        self.rng = np.random.default_rng(config.seed)
        self.users, self.sequences, self.lengths = self._training_tensor()
        self.valid = self._validation_split()
        self.guide = guide.to(self.device) if guide is not None else None
        self.auxiliary = model.auxiliary_loss(self._training_set())
        self.softmax = self._softmax()
        if config.compile:  # `encode` only (not `encode_layers`): the loss selects positions, so shapes vary
            self.model.encode = torch.compile(self.model.encode, dynamic=True)  # type: ignore[method-assign]
        self.objective = self._objective(self.guide)
        self.state, self.epoch = LoopState(), 0
        opt = torch.optim.AdamW if config.optimizer == "adamw" else torch.optim.Adam
        self.optimizer = opt(self._parameter_groups(), lr=config.lr, weight_decay=config.weight_decay)

    def _softmax(self) -> SoftmaxLoss:
        cfg = self.config
        if cfg.loss == "chunked":
            return chunked_softmax_ce(cfg.loss_chunk)
        if cfg.loss == "sampled":
            counts = torch.bincount(self.sequences.flatten(), minlength=self.model.num_items + 1)[1:].double()
            if cfg.negative_sampler == "uniform":
                counts = torch.ones_like(counts)
            return sampled_softmax_ce((counts + 1) / (counts + 1).sum(), cfg.negatives, self.generator)
        return full_softmax_ce

    def _parameter_groups(self) -> list[dict]:
        """The model's groups (it may train parts at other rates), then the guide's and auxiliary's own."""
        groups = self.model.parameter_groups(self.config.lr)
        seen = {id(p) for group in groups for p in group["params"]}
        rest = [p for p in self.objective.parameters() if p.requires_grad and id(p) not in seen]
        return groups + ([{"params": rest}] if rest else [])

    def _training_set(self) -> TrainingSet:
        full = self.data.train.lengths[self.users.cpu().numpy()]
        return TrainingSet(self.users, self.sequences, full, self.generator)

    def _objective(self, guide: ProfileGuide | None) -> torch.nn.Module:
        objective: torch.nn.Module = Objective(self.model, self.softmax, self.generator, guide, self.auxiliary)
        if self.dist.active:
            ids = [self.device.index] if self.device.type == "cuda" else None
            objective = torch.nn.parallel.DistributedDataParallel(objective, device_ids=ids)
        return objective

    def _training_tensor(self) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
        """Users with >= 2 training items and their left-padded sequences, kept on the device.

        -> users [U'], sequences [U', L(+1)], lengths [U']
        """
        width = self.model.max_len + (1 if self.model.config.objective == "next_item" else 0)
        train = self.data.train
        usable = np.flatnonzero(train.lengths >= 2)  # train rows are internal user ids
        padded = torch.from_numpy(train.take(usable).padded(width)).to(self.device)
        return torch.from_numpy(usable).to(self.device), padded, np.minimum(train.lengths[usable], width)

    def _validation_split(self) -> EvalSplit:
        """The validation users of this rank: a fixed random subset when asked, sharded across ranks."""
        valid, n = self.data.valid, self.config.valid_users
        rows = np.arange(len(valid))
        if 0 < n < len(valid):
            rows = np.sort(np.random.default_rng(self.config.seed).choice(len(valid), n, replace=False))
        rows = self.dist.shard(rows)
        if len(rows) == len(valid):
            return valid
        return EvalSplit(valid.name, valid.users[rows], valid.histories.take(rows), valid.targets[rows],
                         valid.num_items, valid.item_stats, valid.catalog)

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
        return LossSum(*self.objective(users, batch)[:2]).mean  # recommendation loss only

    def _require_finite_step(self, loss: torch.Tensor, norm: torch.Tensor, batch: int, batches: int) -> None:
        """Stop before the optimiser step when the loss or the gradient is NaN or infinite (on any rank)."""
        bad = ~torch.isfinite(loss.detach()) | ~torch.isfinite(norm)
        if not self.dist.any(bool(bad), self.device):
            return
        causes = [f"a learning rate too high for this model (train.lr is {self.config.lr:g}; try a tenth)"]
        if self.config.grad_clip == 0:
            causes.append("no gradient clipping (set train.grad_clip, e.g. 1.0)")
        if self.guide is not None:
            causes.append("non-finite or huge values in the profile file (distill.profiles)")
        raise NonFiniteError(f"training diverged at epoch {self.epoch}, batch {batch} of {batches}: loss "
                             f"{float(loss.detach()):.4g}, gradient norm {float(norm):.4g}. Likely cause: "
                             f"{'; or '.join(causes)}. No run was saved from these weights")

    def train_epoch(self, progress: Progress | None = None) -> dict[str, float]:
        """One pass over the training users: mean loss per predicted position (and the guide's mean, if on)."""
        self.model.train()
        total = torch.zeros((), device=self.device)
        count = torch.zeros((), dtype=torch.long, device=self.device)
        guide_sum, guide_batches = torch.zeros((), device=self.device), 0
        auxiliary_sum = torch.zeros((), device=self.device)
        n_steps = 0
        n_batches = -(-len(self.lengths) // self.config.batch_size)
        task = progress.add_task("  batches", total=n_batches, status="") if progress else None
        for batch_number, (users, batch) in enumerate(self.batches(), start=1):
            with self._autocast():
                step_total, step_count, guide_total, guide_count, auxiliary = self.objective(users, batch)
            if self.distilling:
                sums = self.dist.sum(torch.stack([step_total.detach().float(), step_count.float(),
                                                  guide_total.detach().float(), guide_count.float()]))
                loss, guide_value = guide_objective(step_total, guide_total, sums, self.dist.world,
                                                    self.guide.config)  # type: ignore[union-attr]
                guide_sum += guide_value.detach()
                guide_batches += 1
            else:  # DDP averages gradients over ranks, so scale by world / global count to get the global mean
                loss = step_total * self.dist.world / self.dist.sum(step_count).clamp(min=1)
            loss = loss + auxiliary  # a per-rank mean; DDP's average makes it the mean over ranks
            auxiliary_sum += auxiliary.detach().float()
            n_steps += 1
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            clip = self.config.grad_clip if self.config.grad_clip > 0 else float("inf")  # inf: measure only
            norm = torch.nn.utils.clip_grad_norm_(self.objective.parameters(), clip)
            self._require_finite_step(loss, norm, batch_number, n_batches)
            self.optimizer.step()
            total += step_total.detach().float()
            count += step_count
            if progress is not None and task is not None:
                progress.advance(task)
        if progress is not None and task is not None:
            progress.remove_task(task)
        out = {"train_loss": (self.dist.sum(total) / self.dist.sum(count).clamp(min=1)).item()}
        if guide_batches:
            out["guide_loss"] = (guide_sum / guide_batches).item()
        if self.auxiliary is not None and n_steps:
            out[self.auxiliary.name] = (self.dist.sum(auxiliary_sum) / (n_steps * self.dist.world)).item()
        return out

    @property
    def distilling(self) -> bool:
        """Whether the current objective includes the profile guide (the first phase)."""
        return getattr(self.objective, "module", self.objective).guide is not None  # DDP wraps the module

    def start_fine_tuning(self) -> None:
        """Second phase: the recommendation loss only (the guide's parameters keep their optimiser slots)."""
        self.objective = self._objective(None)

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.device.type == "cuda" and self.config.bf16:
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def validate(self) -> dict[str, float]:
        ec = self.eval_config
        metrics = evaluate(self.model, self.valid, ks=self.valid_ks, metrics="accuracy", mask_seen=ec.mask_seen,
                           chunk_size=ec.chunk_size)
        return self.dist.weighted_mean(metrics, len(self.valid), self.device)

    def _train_record(self, epoch: int, progress: Progress | None) -> dict[str, float]:
        """Train one epoch, then the auxiliary's end of epoch (e.g. a knowledge-base refresh), timed together."""
        t0 = time.perf_counter()
        record: dict[str, float] = {"epoch": epoch, **self.train_epoch(progress)}
        if self.auxiliary is not None:
            record |= self.auxiliary.end_epoch(epoch)
        record["train_seconds"] = time.perf_counter() - t0
        return record

    def fit(self, checkpoint: Checkpoint | None = None) -> TrainResult:
        """Train until `epochs`, early stopping or the time budget; restore the best epoch's weights.

        With `checkpoint`, a saved state is resumed first (the result equals an uninterrupted run's) and the state
        is saved every `checkpoint.every` epochs and when training stops.
        """
        cfg = self.config
        self.state = LoopState()
        saved = checkpoint.load() if checkpoint is not None else None
        if saved is not None:
            self.load_state_dict(saved)
        clock = time.perf_counter() - self.state.elapsed
        with self._progress() as progress:
            epochs = progress.add_task("training", total=cfg.epochs, completed=self.state.epoch, status="") \
                if progress else None
            while not self.state.stopped and self.state.epoch < cfg.epochs:
                record = self._run_epoch(self.state.epoch + 1, clock, progress)
                final = self.state.stopped or self.state.epoch >= cfg.epochs
                if checkpoint is not None and checkpoint.due(self.state.epoch, final):
                    checkpoint.save(self.state_dict(), self.state.epoch, cfg.epochs)
                for callback in self.callbacks:  # after the checkpoint: a callback may interrupt
                    callback(record)
                if progress is not None and epochs is not None:
                    self._show(progress, epochs, record)
        return self._result()

    def _run_epoch(self, epoch: int, clock: float, progress: Progress | None) -> dict[str, float]:
        """Train and (when due) validate one epoch; update the loop state, including whether to stop."""
        cfg, state = self.config, self.state
        self.epoch = epoch
        if self.distilling and epoch >= self.guide.config.fine_tune_epoch:  # type: ignore[union-attr]
            self.start_fine_tuning()
            state.best_score, state.stale = -1.0, 0  # keep the best fine-tuned epoch, as the original keeps the last
        record = self._train_record(epoch, progress)
        if epoch % cfg.eval_every == 0 or epoch == cfg.epochs:
            record |= {f"valid_{k}": v for k, v in self.validate().items()}
            score = record[f"valid_{cfg.monitor}"]
            if score > state.best_score:
                state.best_score, state.stale, state.best_epoch = score, 0, epoch
                state.best_state = copy.deepcopy(self.model.state_dict())
                state.best_valid = {k[6:]: v for k, v in record.items() if k.startswith("valid_")}
            else:
                state.stale += cfg.eval_every
        record["elapsed_seconds"] = time.perf_counter() - clock
        state.epoch, state.elapsed = epoch, record["elapsed_seconds"]
        state.history.append(record)
        state.stopped = self._stopping() and epoch < cfg.epochs
        return record

    def _stopping(self) -> bool:
        """Early stopping (never during distillation's first phase) or the time budget; ranks decide together."""
        cfg, state = self.config, self.state
        patience = bool(cfg.patience) and state.stale >= cfg.patience and not self.distilling
        over_budget = bool(cfg.time_budget) and state.elapsed >= cfg.time_budget
        return patience or self.dist.any(over_budget, self.device)  # ranks' clocks differ; stop together

    def _result(self) -> TrainResult:
        state = self.state
        if state.best_state is not None:
            self.model.load_state_dict(state.best_state)
        if self.auxiliary is not None:
            self.auxiliary.end_training()
        return TrainResult(self.model, state.history, state.best_epoch, state.best_valid, state.elapsed)

    def _show(self, progress: Progress, task: TaskID, record: dict[str, float]) -> None:
        status = _status(record, self.state.best_score, self.config.monitor)
        progress.update(task, advance=1, status=status)
        if not progress.console.is_terminal:  # logs get one line per epoch
            progress.console.print(f"epoch {record['epoch']}: {status} [{record['elapsed_seconds']:.0f} s]")

    def state_dict(self) -> dict[str, Any]:
        """Everything a resumed run needs: weights, optimiser, loss terms, random streams and the loop state."""
        state = self.state
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "guide": self.guide.state_dict() if self.guide is not None else {},
            "auxiliary": self.auxiliary.checkpoint_state() if self.auxiliary is not None else {},
            "rng": self.dist.gather_objects(rng_state(self.generator, self.rng)),
            "loop": {"epoch": state.epoch, "history": state.history, "best_score": state.best_score,
                     "best_epoch": state.best_epoch, "best_valid": state.best_valid, "best_state": state.best_state,
                     "stale": state.stale, "elapsed": state.elapsed, "stopped": state.stopped,
                     "fine_tuning": not self.distilling and self.guide is not None},
        }

    def load_state_dict(self, saved: dict[str, Any]) -> None:
        """Continue from `state_dict()`'s output (random streams of this rank, or rank 0's on another world)."""
        self.model.load_state_dict(saved["model"])
        if self.guide is not None:
            self.guide.load_state_dict(saved["guide"])
        if self.auxiliary is not None:
            self.auxiliary.restore_checkpoint_state(saved["auxiliary"])
        loop = dict(saved["loop"])
        if loop.pop("fine_tuning"):
            self.start_fine_tuning()
        self.optimizer.load_state_dict(saved["optimizer"])  # after the objective: its parameters are the same
        self.state = LoopState(**loop, fine_tuning=not self.distilling and self.guide is not None)
        streams = saved["rng"]
        restore_rng_state(streams[self.dist.rank] if len(streams) == self.dist.world else streams[0],
                          self.generator, self.rng)

    def _progress(self) -> contextlib.AbstractContextManager:
        if not self.show_progress:
            return contextlib.nullcontext()
        return Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                        TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                        TextColumn("{task.fields[status]}"), transient=False)


def _status(record: dict[str, float], best: float, monitor: str) -> str:
    valid = record.get(f"valid_{monitor}")
    shown = f" valid {monitor} {valid:.4f}" if valid is not None else ""
    return f"loss {record['train_loss']:.4f}{shown} (best {best:.4f})"
