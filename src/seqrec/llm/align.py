"""SIREN Stage 2, hidden-state alignment: teacher CoT traces, teacher hidden states at the <answer> token, and LoRA
(k, v) training of the answer-only student to match them (spec §4). Everything is keyed by sample_id."""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from seqrec.config import check_finite
from seqrec.errors import ConfigError, SeqrecError, suggest
from seqrec.llm.inference import answer_only_prompt, model_device, predict_answer_only, predict_cot, rating_metrics
from seqrec.llm.lora import adapter_state, load_adapter_state, require_peft, trainable, wrap_lora
from seqrec.llm.model_setup import rating_token_ids
from seqrec.llm.progress import eval_mode, progress_bar
from seqrec.llm.prompts import ANSWER, DEFAULT_SCALE, END_THINK, RatingScale, parse_answer
from seqrec.llm.rows import RatingRow
from seqrec.training.callbacks import EarlyStopping, ProgressBar
from seqrec.training.loop import Loop, Record

ALIGN_LOSSES = ("cosine", "mse", "mse_zscore")


@dataclass(frozen=True)
class Trace:
    """The teacher's greedy CoT for one train row; `correct` (the paper's mask) iff prediction == label exactly."""

    sample_id: str
    thinking: str  # decoded text up to and including the last </think>; "" when the model wrote none
    prediction: float | None  # the number in the last <answer>…</answer> after the thinking; None if unparsable
    correct: bool
    completion: str = ""


@dataclass(frozen=True)
class AlignItem:
    """One student sample: the rendered chat prompt (the answer-only suffix is added for the student) and label."""

    sample_id: str
    prompt: str
    label: float


def align_items(rows: Sequence[RatingRow], prompts_by_id: Mapping[str, str]) -> list[AlignItem]:
    return [AlignItem(r.sample_id, prompts_by_id[r.sample_id], r.label) for r in rows]


def split_trace(sample_id: str, completion: str, label: float) -> Trace:
    """Split at the last </think>; the rating is parsed from the remainder only (as the original does)."""
    cut = completion.rfind(END_THINK)
    end = cut + len(END_THINK) if cut >= 0 else 0
    prediction = parse_answer(completion[end:])
    return Trace(sample_id, completion[:end], prediction, prediction is not None and prediction == label, completion)


def _prompt_list(rows: Sequence[RatingRow], prompts: Mapping[str, str] | Sequence[str]) -> list[str]:
    """Prompts in row order: looked up by sample_id from a mapping, or a list parallel to `rows`."""
    if isinstance(prompts, Mapping):
        missing = [r.sample_id for r in rows if r.sample_id not in prompts]
        if missing:
            raise SeqrecError(f"no prompt for {len(missing)} rows (e.g. {missing[0]!r})")
        return [prompts[r.sample_id] for r in rows]
    if len(prompts) != len(rows):
        raise SeqrecError(f"{len(prompts)} prompts for {len(rows)} rows; pass a dict keyed by sample_id")
    return list(prompts)


def teacher_traces(model: Any, tokenizer: Any, rows: Sequence[RatingRow], prompts: Mapping[str, str] | Sequence[str],
                   scale: RatingScale = DEFAULT_SCALE, max_new_tokens: int = 1024, batch_size: int = 8,
                   progress: bool = True) -> list[Trace]:
    """Greedy CoT of the frozen (GRPO) model for every train row, with the correctness mask, keyed by sample_id."""
    _unique([r.sample_id for r in rows], "rows")
    predictions = predict_cot(model, tokenizer, _prompt_list(rows, prompts), scale, max_new_tokens, batch_size,
                              progress)
    return [split_trace(r.sample_id, text, r.label) for r, text in zip(rows, predictions.completions, strict=True)]


def teacher_text(prompt: str, thinking: str) -> str:
    """prompt + "\\n" + thinking + "\\n" + "<answer>": the CoT context that ends exactly at the query token."""
    return f"{prompt}\n{thinking}\n{ANSWER}"


def last_position(model: Any, tokenizer: Any, texts: Sequence[str]) -> tuple[Any, Any]:
    """One forward pass with left padding: hidden states of the last token from every layer (the embedding row
    dropped) [B, L, d] and the next-token logits there [B, V]."""
    import torch

    if tokenizer.padding_side != "left":
        raise SeqrecError("last-position states need left padding; prepare the model with model_setup.prepare_lm")
    batch = tokenizer(list(texts), return_tensors="pt", padding=True, add_special_tokens=False)
    batch = batch.to(model_device(model))
    positions = (batch["attention_mask"].cumsum(-1) - 1).clamp(min=0)  # [B, T]; padding does not shift positions
    out = model(**batch, position_ids=positions, output_hidden_states=True, use_cache=False, logits_to_keep=1)
    hidden = torch.stack([h[:, -1] for h in out.hidden_states[1:]], dim=1)  # [B, L, d]
    return hidden, out.logits[:, -1]  # [B, V]


def teacher_states(model: Any, tokenizer: Any, traces: Sequence[Trace], prompts_by_id: Mapping[str, str],
                   batch_size: int = 16, progress: bool = True) -> dict[str, Any]:
    """sample_id -> float32 [L, d] teacher vectors at the <answer> token, for the correct traces only."""
    import torch

    _unique([t.sample_id for t in traces], "traces")
    used = [t for t in traces if t.correct]
    missing = [t.sample_id for t in used if t.sample_id not in prompts_by_id]
    if missing:
        raise SeqrecError(f"no prompt for {len(missing)} traces (e.g. {missing[0]!r})")
    states: dict[str, Any] = {}
    with eval_mode(model), progress_bar("teacher states", len(used), progress) as advance:
        for lo in range(0, len(used), batch_size):
            chunk = used[lo:lo + batch_size]
            with torch.inference_mode():
                hidden, _ = last_position(model, tokenizer, [teacher_text(prompts_by_id[t.sample_id], t.thinking)
                                                             for t in chunk])
            for trace, vectors in zip(chunk, hidden.float().cpu(), strict=True):
                states[trace.sample_id] = vectors.clone()  # [L, d]
            advance(len(chunk))
    return states


def alignment_loss(student: Any, teacher: Any, kind: str = "cosine", layers: Sequence[int] | None = None) -> Any:
    """Mean over the batch of the mean over layers of a per-vector distance; inputs [B, L, d], teacher detached,
    computed in float32. cosine: 1 − cos (as ½‖ŝ − t̂‖², exactly 0 for identical inputs); mse; mse_zscore: mse after
    z-scoring every vector over d. `layers` picks layer indices (0-based over the L layers)."""
    import torch.nn.functional as F

    if kind not in ALIGN_LOSSES:
        raise ConfigError(f"unknown alignment loss {kind!r}; choose {suggest(ALIGN_LOSSES)}")
    if student.shape != teacher.shape:
        raise SeqrecError(f"student states {tuple(student.shape)} and teacher states {tuple(teacher.shape)} differ; "
                          "extract the teacher vectors with the same base model")
    s, t = student.float(), teacher.detach().float()  # [B, L, d]
    if layers is not None:
        s, t = s[:, list(layers)], t[:, list(layers)]
    if kind == "cosine":
        diff = F.normalize(s, dim=-1) - F.normalize(t, dim=-1)  # [B, L, d]
        return 0.5 * diff.pow(2).sum(-1).mean()
    if kind == "mse_zscore":
        s, t = _zscore(s), _zscore(t)
    return (s - t).pow(2).mean()


def _zscore(x: Any, eps: float = 1e-6) -> Any:
    return (x - x.mean(-1, keepdim=True)) / (x.std(-1, unbiased=False, keepdim=True) + eps)


def _unique(ids: Sequence[str], what: str) -> None:
    if len(set(ids)) != len(ids):
        raise SeqrecError(f"the {what} repeat sample ids; every sample needs its own id")


@dataclass
class AlignSettings:
    """Stage-2 hyper-parameters (paper defaults). Loss = (1 − ce_weight)·L_align + ce_weight·CE."""

    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    target_modules: tuple[str, ...] = ("k_proj", "v_proj")
    lr: float = 1e-4
    warmup_steps: int = 100
    weight_decay: float = 0.05
    epochs: int = 3
    batch_size: int = 4
    loss: str = "cosine"
    ce_weight: float = 0.0  # λ_CE: 0 = pure alignment (HA, the paper's method); 1 = pure CE (SFT); between = HA+CE
    training_ratio: float = 1.0  # seeded fraction of the usable (correct-trace) samples
    seed: int = 42
    eval_every: int = 50  # steps; the best checkpoint is picked by VALIDATION answer-only MAE
    max_length: int = 2048  # longest answer-only prompt in tokens; longer prompts raise instead of being truncated
    layers: tuple[int, ...] | None = None  # layers in L_align (None = all); small models may drop the last ones
    max_grad_norm: float = 1.0  # as the HF Trainer default
    eval_batch_size: int = 16

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        check_finite(self, "align")
        if self.loss not in ALIGN_LOSSES:
            raise ConfigError(f"unknown alignment loss align.loss={self.loss!r}; choose {suggest(ALIGN_LOSSES)}")
        if not 0.0 <= self.ce_weight <= 1.0:
            raise ConfigError(f"align.ce_weight must lie in [0, 1], got {self.ce_weight}")
        if not 0.0 < self.training_ratio <= 1.0:
            raise ConfigError(f"align.training_ratio must lie in (0, 1], got {self.training_ratio}")
        if not 0.0 <= self.lora_dropout < 1.0:
            raise ConfigError(f"align.lora_dropout must lie in [0, 1), got {self.lora_dropout}")
        for key in ("epochs", "batch_size", "eval_every", "lora_r", "lora_alpha", "max_length", "eval_batch_size"):
            if getattr(self, key) < 1:
                raise ConfigError(f"align.{key} must be >= 1, got {getattr(self, key)}")
        for key in ("warmup_steps", "weight_decay", "max_grad_norm"):
            if getattr(self, key) < 0:
                raise ConfigError(f"align.{key} must be >= 0, got {getattr(self, key)}")
        if self.lr <= 0:
            raise ConfigError(f"align.lr must be > 0, got {self.lr}")
        if not self.target_modules:
            raise ConfigError("align.target_modules must name at least one module (e.g. [k_proj, v_proj])")


def select_items(items: Sequence[AlignItem], teacher: Mapping[str, Any] | None,
                 settings: AlignSettings) -> list[AlignItem]:
    """Items with a teacher vector (all of them without a teacher), then a `training_ratio` subset drawn with the
    seed; sorted by sample_id first, so the choice does not depend on the input order."""
    _unique([i.sample_id for i in items], "train items")
    pool = sorted((i for i in items if teacher is None or i.sample_id in teacher), key=lambda i: i.sample_id)
    k = max(1, int(len(pool) * settings.training_ratio)) if pool else 0
    chosen = sorted(random.Random(settings.seed).sample(pool, k), key=lambda i: i.sample_id)
    if len(chosen) < settings.batch_size:
        raise SeqrecError(f"{len(chosen)} usable train samples (with a teacher vector and after training_ratio) "
                          f"for batch_size {settings.batch_size}; lower batch_size or use more rows")
    return chosen


def label_token_ids(tokenizer: Any, scale: RatingScale, labels: Sequence[float]) -> dict[float, int]:
    """Rating -> its single token id; a label that is not one token raises (CE and answer-only need one)."""
    ids = rating_token_ids(tokenizer, scale)
    bad = sorted({float(y) for y in labels} - set(ids))
    if bad:
        raise SeqrecError(f"ratings {bad} are not single tokens of the tokenizer (single-token ratings: "
                          f"{sorted(ids)}); answer-only prediction needs one token per rating")
    return ids


def check_lengths(tokenizer: Any, items: Sequence[AlignItem], max_length: int) -> None:
    """Answer-only prompts longer than `max_length` tokens raise (truncation would cut the query token)."""
    lengths = [len(ids) for ids in tokenizer([answer_only_prompt(i.prompt) for i in items],
                                             add_special_tokens=False)["input_ids"]]
    longest = max(range(len(items)), key=lengths.__getitem__, default=None)
    if longest is not None and lengths[longest] > max_length:
        raise SeqrecError(f"sample {items[longest].sample_id!r}: the answer-only prompt has {lengths[longest]} tokens "
                          f"> max_length {max_length}; shorten the history (max_history) or raise max_length")


def _optimizer(model: Any, settings: AlignSettings, total_steps: int) -> tuple[Any, Any]:
    """AdamW over the LoRA weights and HF's constant-with-warmup schedule (factor step/warmup, then 1). The warm-up
    is at most a tenth of the run, so a short run is not spent almost entirely below its learning rate."""
    import torch

    optimizer = torch.optim.AdamW(list(trainable(model).values()), lr=settings.lr, weight_decay=settings.weight_decay)
    warmup = min(settings.warmup_steps, total_steps // 10)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: step / warmup if step < warmup else 1.0)
    return optimizer, schedule


def _batches(items: Sequence[AlignItem], settings: AlignSettings) -> list[list[AlignItem]]:
    """Seeded shuffles per epoch, full batches only (drop_last as in the original)."""
    rng, order, batches = random.Random(settings.seed), list(items), []
    for _ in range(settings.epochs):
        rng.shuffle(order)
        usable = len(order) - len(order) % settings.batch_size
        batches += [order[lo:lo + settings.batch_size] for lo in range(0, usable, settings.batch_size)]
    return batches


def _step(model: Any, tokenizer: Any, batch: Sequence[AlignItem], teacher: Mapping[str, Any] | None,
          label_ids: Mapping[float, int], optimizer: Any, schedule: Any, settings: AlignSettings) -> dict[str, Any]:
    """One optimiser step; the query is the last prompt token (<answer>), so position −1 under left padding."""
    import torch
    import torch.nn.functional as F

    model.train()
    hidden, logits = last_position(model, tokenizer, [answer_only_prompt(i.prompt) for i in batch])  # [B,L,d] [B,V]
    targets = torch.tensor([label_ids[float(i.label)] for i in batch], device=logits.device)  # [B]
    ce = F.cross_entropy(logits.float(), targets)
    loss, align = ce, None
    if teacher is not None:
        vectors = torch.stack([teacher[i.sample_id] for i in batch]).to(hidden.device)  # [B, L, d]
        align = alignment_loss(hidden, vectors, settings.loss, settings.layers)
        loss = (1.0 - settings.ce_weight) * align + settings.ce_weight * ce
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(list(trainable(model).values()), settings.max_grad_norm)
    lr = optimizer.param_groups[0]["lr"]
    optimizer.step()
    schedule.step()
    return {"loss": loss.item(), "align": None if align is None else align.item(), "ce": ce.item(), "lr": lr,
            "valid_mae": None, "valid_invalid_rate": None}


def _validate(model: Any, tokenizer: Any, valid: Sequence[AlignItem], scale: RatingScale,
              settings: AlignSettings) -> dict[str, float]:
    predictions = predict_answer_only(model, tokenizer, [i.prompt for i in valid], scale,
                                      batch_size=settings.eval_batch_size, progress=False)
    metrics = rating_metrics(predictions, [i.label for i in valid], scale)
    return {"valid_mae": metrics["mae"], "valid_invalid_rate": metrics["invalid_rate"],
            "valid_mae_invalid_as_max": metrics["mae_invalid_as_max"]}


def checkpoint_score(row: Mapping[str, Any]) -> tuple[float, float]:
    """Checkpoint order: lower valid MAE with invalid outputs counted at the top rating (so a checkpoint cannot win
    by answering rarely), ties → lower invalid rate."""
    mae = row["valid_mae_invalid_as_max"]
    return (math.inf if mae is None else mae, row["valid_invalid_rate"])


def _check_inputs(teacher: Mapping[str, Any] | None, valid: Sequence[AlignItem], settings: AlignSettings) -> None:
    settings.validate()
    if teacher is None and settings.ce_weight < 1.0:
        raise SeqrecError(f"alignment without teacher vectors: ce_weight {settings.ce_weight} < 1 needs a teacher; "
                          "pass teacher=teacher_states(...) or set ce_weight=1 for the CE (SFT) baseline")
    if not valid:
        raise SeqrecError("validation items are needed to pick the best checkpoint (never the test split)")


def train_alignment(model: Any, tokenizer: Any, train_items: Sequence[AlignItem], valid_items: Sequence[AlignItem],
                    settings: AlignSettings | None = None, teacher: Mapping[str, Any] | None = None, *,
                    scale: RatingScale = DEFAULT_SCALE, progress: bool = True) -> tuple[Any, list[dict[str, Any]]]:
    """LoRA(k, v) on the answer-only student; loss (1 − λ_CE)·L_align(student, teacher) + λ_CE·CE(label token) at
    the <answer> position. teacher=None is the CE/SFT baseline (λ_CE must be 1, all train items used). Validation
    answer-only MAE before training (step 0, the unaligned model), every `eval_every` steps and at the end; the
    best LoRA state is restored, so a run that only hurts validation returns the model it started from. Returns the PEFT
    model (wrapping `model` in place) and one history row per step."""
    import torch

    settings = settings or AlignSettings()
    _check_inputs(teacher, valid_items, settings)
    require_peft()
    items = select_items(train_items, teacher, settings)
    label_ids = label_token_ids(tokenizer, scale, [i.label for i in items])
    check_lengths(tokenizer, [*items, *valid_items], settings.max_length)
    torch.manual_seed(settings.seed)  # the LoRA A initialisation
    peft_model = wrap_lora(model, settings.lora_r, settings.lora_alpha, settings.lora_dropout,
                           settings.target_modules)
    batches = _batches(items, settings)
    optimizer, schedule = _optimizer(peft_model, settings, len(batches))
    start = {"step": 0, **_validate(peft_model, tokenizer, valid_items, scale, settings)}  # LoRA B = 0: the base

    def run_step(step: int) -> Record:
        row = {"step": step, **_step(peft_model, tokenizer, batches[step - 1], teacher, label_ids, optimizer,
                                     schedule, settings)}
        if step % settings.eval_every == 0 or step == len(batches):
            row.update(_validate(peft_model, tokenizer, valid_items, scale, settings))
        return row

    selection = EarlyStopping(None, lambda r: None if r["valid_invalid_rate"] is None else checkpoint_score(r),
                              "min", snapshot=lambda: adapter_state(peft_model),
                              restore=lambda state: load_adapter_state(peft_model, state))
    selection.start_from(checkpoint_score(start), start)  # alignment must beat not aligning
    bar = ProgressBar("alignment", lambda r: f"loss {r['loss']:.4f} best MAE {selection.best_score[0]:.3f}",
                      enabled=progress, every=settings.eval_every)
    loop = Loop(len(batches), [selection, bar])
    loop.run(run_step)
    peft_model.eval()
    return peft_model, [start, *loop.history]
