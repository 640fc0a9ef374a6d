"""`seqrec llm sketch|grpo|align|evaluate`: SIREN rating prediction, one run directory per stage."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.table import Table

from seqrec.cli.common import DataDir, console, interruptible, out_option, set_option

llm_app = typer.Typer(no_args_is_help=True, help="LLM rating prediction (SIREN): sketch, GRPO, alignment, eval.")

Data = Annotated[str | None, typer.Option("--data", help="movies-tv, synthetic, a folder of train/valid/"
                                                         "test.jsonl[.gz], or a dataset with ratings.",
                                          show_default="movies-tv")]
LimitUsers = Annotated[int | None, typer.Option(help="Only the first N users of the data (a subset).")]
Limit = Annotated[int | None, typer.Option(help="Only N rows of the split (train: a seeded sample).")]
Out = Annotated[Path | None, out_option("Run directory to write (default: runs/llm/<stage>; never overwritten).")]
Sketch = Annotated[str | None, typer.Option(help="none, shipped (the dataset's own) or a sketch run directory "
                                                 "(default: the parent run's).")]
MaxHistory = Annotated[int | None, typer.Option(help="Recent rated items shown in the prompt (default 10).")]
ConfigFile = Annotated[Path | None, typer.Option("--config", "-c", help="Stage settings as YAML (keys: "
                                                                  "docs/siren.md); options given here override "
                                                                  "it, and --set overrides both.")]
Overrides = Annotated[list[str] | None, set_option("Stage setting, e.g. grpo.lr=1e-5 or limit=100")]
C = TypeVar("C")


def register(app: typer.Typer) -> None:
    """Add the `llm` group to the root app."""
    app.add_typer(llm_app, name="llm")


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


def _config(cls: type[C], config_file: Path | None, options: dict[str, Any], overrides: list[str] | None) -> C:
    """The stage config: the YAML (or the defaults), then the options given, then `--set` overrides."""
    from seqrec.llm.stage_config import read_stage_config

    return read_stage_config(cls, config_file, options, list(overrides or []))


@llm_app.command("sketch")
def sketch(config_file: ConfigFile = None, overrides: Overrides = None,
           data: Data = None, data_dir: DataDir = None, limit_users: LimitUsers = None, out: Out = None,
           embedder: Annotated[str | None, typer.Option(help="Sentence-transformers model name or folder.",
                                                        show_default="all-MiniLM-L6-v2")] = None,
           clusters: Annotated[int | None, typer.Option(help="Topics (k-means clusters).", show_default="20")]
           = None,
           top_k: Annotated[int | None, typer.Option(help="Items nearest each centroid used to name it.",
                                                     show_default="100")] = None,
           theta: Annotated[float | None, typer.Option(help="Mean rating at or above which a topic is liked.",
                                                       show_default="4.0")] = None,
           namer: Annotated[str | None, typer.Option(help="terms (deterministic), or an LLM: smollm2, a model name "
                                                          "or folder.", show_default="terms")] = None,
           endpoint: Annotated[str | None, typer.Option(help="OpenAI-compatible base URL for naming.")] = None,
           endpoint_model: Annotated[str | None, typer.Option(help="Model name at --endpoint.")] = None,
           api_key_env: Annotated[str | None, typer.Option(help="Environment variable holding the API key for "
                                                            "--endpoint (e.g. OPENAI_API_KEY); without it no key "
                                                            "is sent.")] = None,
           allow_http: Annotated[bool | None, typer.Option(
               "--allow-http/--no-allow-http", help="Allow plain http:// to a non-local --endpoint (prompts and key "
                                                     "travel unencrypted).", show_default="no-allow-http")] = None,
           tokenizer: Annotated[str | None, typer.Option(help="Model whose tokenizer counts prompt tokens "
                                                              "(--set tokenizer=null: characters / 4).",
                                                         show_default="smollm2")] = None,
           seed: Annotated[int | None, typer.Option(help="k-means seed.", show_default="0")] = None) -> None:
    """Cluster item texts into named topics; every prompt's sketch then uses only the history before its target."""
    from seqrec.llm.stage_config import SketchStageConfig
    from seqrec.llm.stage_sketch import sketch_stage

    settings = _config(SketchStageConfig, config_file, {
        "data": data, "data_dir": data_dir, "limit_users": limit_users, "embedder": embedder, "clusters": clusters,
        "top_k": top_k, "theta": theta, "namer": namer, "endpoint": endpoint, "endpoint_model": endpoint_model,
        "api_key_env": api_key_env, "allow_http": allow_http, "tokenizer": tokenizer, "seed": seed}, overrides)
    rating_data = settings.load_data()
    with interruptible(), _out(out, "sketch") as target:
        path = sketch_stage(settings, target, rating_data)
    _print_metrics(path, ("topics", "items", "prompt_tokens_sketch", "prompt_tokens_raw", "token_reduction",
                          "seconds"))


@llm_app.command("grpo")
def grpo(config_file: ConfigFile = None, overrides: Overrides = None,
         data: Data = None, data_dir: DataDir = None, limit_users: LimitUsers = None, out: Out = None,
         model: Annotated[str | None, typer.Option(help="smollm2, a transformers model name or folder, or a grpo "
                                                        "run.", show_default="smollm2")] = None,
         sketch: Sketch = None, max_history: MaxHistory = None, limit: Limit = None,
         group_size: Annotated[int | None, typer.Option(help="Completions per prompt (G).", show_default="8")]
         = None,
         prompts_per_step: Annotated[int | None, typer.Option(help="Prompts per optimizer step.", show_default="4")]
         = None,
         beta: Annotated[float | None, typer.Option(help="KL coefficient to the initial model.",
                                                    show_default="0.001")] = None,
         lr: Annotated[float | None, typer.Option(help="Learning rate.", show_default="1e-06")] = None,
         steps: Annotated[int | None, typer.Option(help="Optimizer steps (-1: --epochs over the rows; 0: no GRPO, "
                                                        "e.g. to save a --warmup-rows model).", show_default="-1")]
         = None,
         epochs: Annotated[float | None, typer.Option(help="Epochs when --steps is -1.", show_default="2.0")] = None,
         max_completion: Annotated[int | None, typer.Option(help="Completion tokens per rollout.",
                                                            show_default="512")] = None,
         temperature: Annotated[float | None, typer.Option(help="Sampling temperature of rollouts.",
                                                           show_default="1.0")] = None,
         seed: Annotated[int | None, typer.Option(help="Seed (row sample, warm-up and rollouts).", show_default="0")]
         = None,
         warmup_rows: Annotated[int | None, typer.Option(help="Format warm-up first: supervised <think>…</think>"
                                                              "<answer>label</answer> on N other train rows (0 = "
                                                              "off). Small models such as smollm2 need it: they "
                                                              "never write the tags, so every GRPO reward is equal "
                                                              "and GRPO learns nothing.", min=0, show_default="0")]
         = None,
         warmup_epochs: Annotated[float | None, typer.Option(help="Warm-up epochs over its rows.",
                                                             show_default="1.0")] = None,
         warmup_lr: Annotated[float | None, typer.Option(help="Warm-up learning rate.", show_default="5e-05")]
         = None,
         report_to: Annotated[list[str] | None, typer.Option(help="Logger of the warm-up and GRPO trainers "
                                                                  "(repeatable): tensorboard, mlflow, wandb, …, all "
                                                                  "or none.", show_default="none")] = None,
         logging_dir: Annotated[str | None, typer.Option(help="Folder for the loggers' files (default: logs/ in "
                                                              "the run).")] = None) -> None:
    """Train the LLM to reason in <think>…</think> and answer in <answer>…</answer> with GRPO (TRL).

    Small models need a format warm-up first (--warmup-rows 256, say); --steps 0 saves the warm-up alone.
    """
    from seqrec.llm.stage_config import GRPOStageConfig
    from seqrec.llm.stage_grpo import grpo_stage

    loggers = tuple(report_to) if report_to else None
    settings = _config(GRPOStageConfig, config_file, {
        "data": data, "data_dir": data_dir, "limit_users": limit_users, "model": model, "sketch": sketch,
        "max_history": max_history, "limit": limit, "logging_dir": logging_dir,
        "grpo.group_size": group_size, "grpo.prompts_per_step": prompts_per_step, "grpo.beta": beta, "grpo.lr": lr,
        "grpo.steps": steps, "grpo.epochs": epochs, "grpo.max_completion_length": max_completion,
        "grpo.temperature": temperature, "grpo.seed": seed, "grpo.report_to": loggers,
        "warmup.rows": warmup_rows, "warmup.epochs": warmup_epochs, "warmup.lr": warmup_lr, "warmup.seed": seed,
        "warmup.report_to": loggers}, overrides)
    rating_data = settings.load_data()
    with interruptible(), _out(out, "grpo") as target:
        path = grpo_stage(settings, target, rating_data)
    _print_metrics(path, ("warmup_rows", "warmup_loss_first", "warmup_loss_last", "warmup_seconds", "rows", "steps",
                          "reward_first", "reward_last", "accuracy_reward_last", "format_reward_last", "seconds",
                          "seconds_per_step"))


@llm_app.command("align")
def align(base: Annotated[str | None, typer.Argument(help="A grpo run (the teacher and the student's start), or a "
                                                           "model for --ce-weight 1 (SFT on the rating); config "
                                                           "key: model.", show_default=False)] = None,
          config_file: ConfigFile = None, overrides: Overrides = None,
          data: Data = None, data_dir: DataDir = None, limit_users: LimitUsers = None, out: Out = None,
          sketch: Sketch = None, max_history: MaxHistory = None, limit: Limit = None,
          valid_limit: Annotated[int | None, typer.Option(help="Validation rows for checkpoint selection.",
                                                          show_default="200")] = None,
          ce_weight: Annotated[float | None, typer.Option(help="0 = pure alignment (SIREN), 1 = SFT on the "
                                                               "rating.", show_default="0.0")] = None,
          loss: Annotated[str | None, typer.Option(help="cosine, mse or mse_zscore.", show_default="cosine")] = None,
          epochs: Annotated[int | None, typer.Option(help="Epochs over the kept samples.", show_default="3")] = None,
          lr: Annotated[float | None, typer.Option(help="LoRA learning rate.", show_default="0.0001")] = None,
          batch_size: Annotated[int | None, typer.Option(help="Samples per step.", show_default="4")] = None,
          trace_tokens: Annotated[int | None, typer.Option(help="Max tokens of each teacher reasoning trace.",
                                                           show_default="512")] = None,
          eval_every: Annotated[int | None, typer.Option(help="Validate every N steps (and at the end).",
                                                         show_default="50")] = None,
          seed: Annotated[int | None, typer.Option(help="Seed.", show_default="42")] = None) -> None:
    """Internalize the reasoning: LoRA on k/v aligns answer-only hidden states with the teacher's at <answer>."""
    from seqrec.llm.stage_align import align_stage
    from seqrec.llm.stage_config import AlignStageConfig

    settings = _config(AlignStageConfig, config_file, {
        "data": data, "data_dir": data_dir, "limit_users": limit_users, "model": base, "sketch": sketch,
        "max_history": max_history, "limit": limit, "valid_limit": valid_limit, "trace_tokens": trace_tokens,
        "align.ce_weight": ce_weight, "align.loss": loss, "align.epochs": epochs, "align.lr": lr,
        "align.batch_size": batch_size, "align.eval_every": eval_every, "align.seed": seed}, overrides)
    rating_data = settings.load_data()
    with interruptible(), _out(out, "align") as target:
        path = align_stage(settings, target, rating_data)
    _print_metrics(path, ("traced", "teacher_correct", "teacher_mae", "kept", "steps", "best_valid_mae",
                          "best_valid_invalid_rate", "seconds"))


@llm_app.command("evaluate")
def evaluate(predictor: Annotated[str | None, typer.Argument(help="A grpo/align run, a model (smollm2, name or "
                                                                  "folder), or global-mean, user-mean, item-mean; "
                                                                  "config key: predictor.", show_default=False)]
             = None,
             config_file: ConfigFile = None, overrides: Overrides = None,
             data: Data = None, data_dir: DataDir = None, limit_users: LimitUsers = None, out: Out = None,
             split: Annotated[str | None, typer.Option(help="train, valid or test.", show_default="test")] = None,
             mode: Annotated[str | None, typer.Option(help="answer-only (one token) or cot (reason, then answer).",
                                                      show_default="answer-only")] = None,
             limit: Annotated[int | None, typer.Option(help="Only the first N rows of the split.")] = None,
             sketch: Sketch = None, max_history: MaxHistory = None,
             batch_size: Annotated[int | None, typer.Option(help="Prompts per generation call.", show_default="8")]
             = None,
             max_new_tokens: Annotated[int | None, typer.Option(help="cot: reasoning + answer token limit.",
                                                                show_default="512")] = None) -> None:
    """MAE, RMSE, invalid-output rate, generated tokens and latency per sample on a split."""
    from seqrec.llm.stage_config import EvaluateStageConfig
    from seqrec.llm.stage_evaluate import evaluate_stage

    settings = _config(EvaluateStageConfig, config_file, {
        "data": data, "data_dir": data_dir, "limit_users": limit_users, "predictor": predictor, "split": split,
        "mode": mode, "limit": limit, "sketch": sketch, "max_history": max_history, "batch_size": batch_size,
        "max_new_tokens": max_new_tokens}, overrides)
    rating_data = settings.load_data()
    with interruptible(), _out(out, "evaluate") as target:
        path = evaluate_stage(settings, target, rating_data)
    _print_metrics(path, ("n", "mae", "rmse", "invalid_rate", "mae_invalid_as_max", "rmse_invalid_as_max",
                          "prompt_tokens", "generated_tokens", "seconds_per_sample"))
