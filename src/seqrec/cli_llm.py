"""`seqrec llm sketch|grpo|align|evaluate`: SIREN rating prediction, one run directory per stage."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from seqrec.cli_utils import DataDir, console, interruptible

llm_app = typer.Typer(no_args_is_help=True, help="LLM rating prediction (SIREN): sketch, GRPO, alignment, eval.")

Data = Annotated[str, typer.Option("--data", help="movies-tv, synthetic, a folder of train/valid/test.jsonl[.gz], "
                                                  "or a dataset with ratings.")]
LimitUsers = Annotated[int | None, typer.Option(help="Only the first N users of the data (a subset).")]
Limit = Annotated[int | None, typer.Option(help="Only N rows of the split (train: a seeded sample).")]
Out = Annotated[Path | None, typer.Option(help="Run directory to write (default: runs/llm/<stage>; never "
                                               "overwritten).")]
Sketch = Annotated[str | None, typer.Option(help="none, shipped (the dataset's own) or a sketch run directory "
                                                 "(default: the parent run's).")]
MaxHistory = Annotated[int | None, typer.Option(help="Recent rated items shown in the prompt (default 10).")]


def _data(source: str, data_dir: str | None, limit_users: int | None):  # noqa: ANN202
    from seqrec.llm.sources import load_rating_data

    return load_rating_data(source, data_dir, limit_users)


def _out(out: Path | None, stage: str) -> contextlib.AbstractContextManager[Path]:
    """The stage's run folder: --out as given, else a new runs/llm/STAGE(-n), freed again if the stage fails."""
    from seqrec.runs import claimed_run_dir

    return contextlib.nullcontext(out) if out is not None else claimed_run_dir(Path("runs/llm"), stage)


def _print_metrics(path: Path, keys: tuple[str, ...]) -> None:
    from seqrec.llm.stage_runs import read_stage

    metrics = read_stage(path).metrics
    table = Table("metric", "value", title=str(path))
    for key in keys:
        if key in metrics:
            value = metrics[key]
            shown = "n/a (no valid answers)" if value is None else f"{value:.4f}" if isinstance(value, float) \
                else str(value)
            table.add_row(key, shown)
    console.print(table)


@llm_app.command("sketch")
def sketch(data: Data = "movies-tv", data_dir: DataDir = None, limit_users: LimitUsers = None, out: Out = None,
           embedder: Annotated[str, typer.Option(help="Sentence-transformers model name or folder.")]
           = "all-MiniLM-L6-v2",
           clusters: Annotated[int, typer.Option(help="Topics (k-means clusters).")] = 20,
           top_k: Annotated[int, typer.Option(help="Items nearest each centroid used to name it.")] = 100,
           theta: Annotated[float, typer.Option(help="Mean rating at or above which a topic is liked.")] = 4.0,
           namer: Annotated[str, typer.Option(help="terms (deterministic), or an LLM: smollm2, a model name or "
                                                   "folder.")] = "terms",
           endpoint: Annotated[str | None, typer.Option(help="OpenAI-compatible base URL for naming.")] = None,
           endpoint_model: Annotated[str | None, typer.Option(help="Model name at --endpoint.")] = None,
           api_key_env: Annotated[str | None, typer.Option(help="Environment variable holding the API key for "
                                                            "--endpoint (e.g. OPENAI_API_KEY); without it no key "
                                                            "is sent.")] = None,
           allow_http: Annotated[bool, typer.Option(help="Allow plain http:// to a non-local --endpoint (prompts "
                                                         "and key travel unencrypted).")] = False,
           tokenizer: Annotated[str, typer.Option(help="Model whose tokenizer counts prompt tokens.")] = "smollm2",
           seed: Annotated[int, typer.Option(help="k-means seed.")] = 0) -> None:
    """Cluster item texts into named topics; every prompt's sketch then uses only the history before its target."""
    from seqrec.llm.stage_sketch import sketch_stage

    rating_data = _data(data, data_dir, limit_users)
    with interruptible(), _out(out, "sketch") as target:
        path = sketch_stage(rating_data, target, embedder=embedder, n_clusters=clusters, top_k=top_k,
                            theta=theta, namer=namer, endpoint=endpoint, endpoint_model=endpoint_model,
                            api_key_env=api_key_env, allow_http=allow_http, tokenizer=tokenizer, seed=seed, source=data)
    _print_metrics(path, ("topics", "items", "prompt_tokens_sketch", "prompt_tokens_raw", "token_reduction",
                          "seconds"))


@llm_app.command("grpo")
def grpo(data: Data = "movies-tv", data_dir: DataDir = None, limit_users: LimitUsers = None, out: Out = None,
         model: Annotated[str, typer.Option(help="smollm2, a transformers model name or folder, or a grpo run.")]
         = "smollm2",
         sketch: Sketch = None, max_history: MaxHistory = None, limit: Limit = None,
         group_size: Annotated[int, typer.Option(help="Completions per prompt (G).")] = 8,
         prompts_per_step: Annotated[int, typer.Option(help="Prompts per optimizer step.")] = 4,
         beta: Annotated[float, typer.Option(help="KL coefficient to the initial model.")] = 0.001,
         lr: Annotated[float, typer.Option(help="Learning rate.")] = 1e-6,
         steps: Annotated[int, typer.Option(help="Optimizer steps (-1: --epochs over the rows; 0: no GRPO, "
                                                 "e.g. to save a --warmup-rows model).")] = -1,
         epochs: Annotated[float, typer.Option(help="Epochs when --steps is -1.")] = 2.0,
         max_completion: Annotated[int, typer.Option(help="Completion tokens per rollout.")] = 512,
         temperature: Annotated[float, typer.Option(help="Sampling temperature of rollouts.")] = 1.0,
         seed: Annotated[int, typer.Option(help="Seed (row sample and rollouts).")] = 0,
         warmup_rows: Annotated[int, typer.Option(help="Format warm-up first: supervised <think>…</think><answer>"
                                                       "label</answer> on N other train rows (0 = off). Small "
                                                       "models such as smollm2 need it: they never write the tags, "
                                                       "so every GRPO reward is equal and GRPO learns nothing.", min=0)]
         = 0,
         warmup_epochs: Annotated[float, typer.Option(help="Warm-up epochs over its rows.")] = 1.0,
         warmup_lr: Annotated[float, typer.Option(help="Warm-up learning rate.")] = 5e-5) -> None:
    """Train the LLM to reason in <think>…</think> and answer in <answer>…</answer> with GRPO (TRL).

    Small models need a format warm-up first (--warmup-rows 256, say); --steps 0 saves the warm-up alone.
    """
    from seqrec.llm.grpo import GRPOSettings
    from seqrec.llm.stage_grpo import grpo_stage
    from seqrec.llm.warmup import WarmupSettings

    settings = GRPOSettings(group_size=group_size, prompts_per_step=prompts_per_step, beta=beta, lr=lr,
                            steps=steps, epochs=epochs, max_completion_length=max_completion,
                            temperature=temperature, seed=seed)
    warmup = WarmupSettings(rows=warmup_rows, epochs=warmup_epochs, lr=warmup_lr, seed=seed) if warmup_rows else None
    rating_data = _data(data, data_dir, limit_users)
    with interruptible(), _out(out, "grpo") as target:
        path = grpo_stage(rating_data, model, target, settings, sketch=sketch or "none",
                          max_history=max_history or 10, limit=limit, source=data, warmup=warmup)
    _print_metrics(path, ("warmup_rows", "warmup_loss_first", "warmup_loss_last", "warmup_seconds", "rows", "steps",
                          "reward_first", "reward_last", "accuracy_reward_last", "format_reward_last", "seconds",
                          "seconds_per_step"))


@llm_app.command("align")
def align(base: Annotated[str, typer.Argument(help="A grpo run (the teacher and the student's start), or a "
                                                    "model for --ce-weight 1 (SFT on the rating).")],
          data: Data = "movies-tv", data_dir: DataDir = None, limit_users: LimitUsers = None, out: Out = None,
          sketch: Sketch = None, max_history: MaxHistory = None, limit: Limit = None,
          valid_limit: Annotated[int, typer.Option(help="Validation rows for checkpoint selection.")] = 200,
          ce_weight: Annotated[float, typer.Option(help="0 = pure alignment (SIREN), 1 = SFT on the rating.")]
          = 0.0,
          loss: Annotated[str, typer.Option(help="cosine, mse or mse_zscore.")] = "cosine",
          epochs: Annotated[int, typer.Option(help="Epochs over the kept samples.")] = 3,
          lr: Annotated[float, typer.Option(help="LoRA learning rate.")] = 1e-4,
          batch_size: Annotated[int, typer.Option(help="Samples per step.")] = 4,
          trace_tokens: Annotated[int, typer.Option(help="Max tokens of each teacher reasoning trace.")] = 512,
          eval_every: Annotated[int, typer.Option(help="Validate every N steps (and at the end).")] = 50,
          seed: Annotated[int, typer.Option(help="Seed.")] = 42) -> None:
    """Internalize the reasoning: LoRA on k/v aligns answer-only hidden states with the teacher's at <answer>."""
    from seqrec.llm.align import AlignSettings
    from seqrec.llm.stage_align import align_stage

    settings = AlignSettings(ce_weight=ce_weight, loss=loss, epochs=epochs, lr=lr, batch_size=batch_size,
                             eval_every=eval_every, seed=seed)
    rating_data = _data(data, data_dir, limit_users)
    with interruptible(), _out(out, "align") as target:
        path = align_stage(rating_data, base, target, settings, sketch=sketch, max_history=max_history,
                           limit=limit, valid_limit=valid_limit, trace_tokens=trace_tokens, source=data)
    _print_metrics(path, ("traced", "teacher_correct", "teacher_mae", "kept", "steps", "best_valid_mae",
                          "best_valid_invalid_rate", "seconds"))


@llm_app.command("evaluate")
def evaluate(predictor: Annotated[str, typer.Argument(help="A grpo/align run, a model (smollm2, name or folder), "
                                                         "or global-mean, user-mean, item-mean.")],
             data: Data = "movies-tv", data_dir: DataDir = None, limit_users: LimitUsers = None, out: Out = None,
             split: Annotated[str, typer.Option(help="train, valid or test.")] = "test",
             mode: Annotated[str, typer.Option(help="answer-only (one token) or cot (reason, then answer).")]
             = "answer-only",
             limit: Annotated[int | None, typer.Option(help="Only the first N rows of the split.")] = None,
             sketch: Sketch = None, max_history: MaxHistory = None,
             batch_size: Annotated[int, typer.Option(help="Prompts per generation call.")] = 8,
             max_new_tokens: Annotated[int, typer.Option(help="cot: reasoning + answer token limit.")] = 512) -> None:
    """MAE, RMSE, invalid-output rate, generated tokens and latency per sample on a split."""
    from seqrec.llm.stage_evaluate import evaluate_stage

    rating_data = _data(data, data_dir, limit_users)
    with interruptible(), _out(out, "evaluate") as target:
        path = evaluate_stage(rating_data, predictor, target, split=split, mode=mode, limit=limit,
                              sketch=sketch, max_history=max_history, batch_size=batch_size,
                              max_new_tokens=max_new_tokens, source=data)
    _print_metrics(path, ("n", "mae", "rmse", "invalid_rate", "mae_invalid_as_max", "rmse_invalid_as_max",
                          "prompt_tokens", "generated_tokens", "seconds_per_sample"))
