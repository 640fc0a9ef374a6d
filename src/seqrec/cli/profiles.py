"""`seqrec profiles write|embed`: user profile texts from training histories, and their embeddings."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from seqrec.cli.common import DataDir, console, info, out_option, progress
from seqrec.errors import SeqrecError

if TYPE_CHECKING:
    from seqrec.distill.chat import ChatBackend

ApiKeyEnv = Annotated[str | None, typer.Option(
    help="Environment variable holding the API key for --endpoint (e.g. OPENAI_API_KEY); without it no key is sent.")]
AllowHttp = Annotated[bool, typer.Option(
    help="Allow plain http:// to a non-local --endpoint (prompts and key travel unencrypted).")]

profiles_app = typer.Typer(no_args_is_help=True, help="User profiles for distillation: texts and embeddings.")
WRITERS = ("deterministic", "llm")


def register(app: typer.Typer) -> None:
    """Add the `profiles` group to the root app."""
    app.add_typer(profiles_app, name="profiles")


def per_thousand(seconds: float, users: int) -> str:
    return f"{1000 * seconds / users:.2f} s per 1,000 users" if users else "no users"


@profiles_app.command("write")
def profiles_write(
    dataset: str,
    out: Annotated[Path, out_option("Profile text file (JSONL); appended to, users in it are skipped.")],
    writer: Annotated[str, typer.Option(help="deterministic (statistics, no model) or llm.")] = "deterministic",
    model: Annotated[str, typer.Option(help="llm: smollm2, a model name or a local folder.")] = "smollm2",
    gguf_file: Annotated[str | None, typer.Option(help="llm: GGUF file inside the --model folder.")] = None,
    endpoint: Annotated[str | None, typer.Option(help="llm: OpenAI-compatible base URL (instead of --model).")]
    = None,
    endpoint_model: Annotated[str | None, typer.Option(help="llm: model name at --endpoint.")] = None,
    api_key_env: ApiKeyEnv = None,
    allow_http: AllowHttp = False,
    prompt: Annotated[str, typer.Option(help="llm: short, long or aspects (several profiles per user).")] = "short",
    batch_size: Annotated[int, typer.Option(help="llm: conversations per generation call.")] = 8,
    max_new_tokens: Annotated[int, typer.Option(help="llm: reply length limit in tokens.")] = 300,
    limit: Annotated[int | None, typer.Option(help="Only the first N users.")] = None,
    split: Annotated[str | None, typer.Option(help="data.split, e.g. loo or temporal (default: the dataset's).")]
    = None,
    data_dir: DataDir = None,
) -> None:
    """Write a profile per user of DATASET from its training interactions (never validation or test targets)."""
    import numpy as np

    from seqrec.data.config import DataConfig
    from seqrec.data.registry import DATASETS, get_spec, load
    from seqrec.distill.llm_profiles import write_llm_profiles
    from seqrec.distill.profile_text import write_profile_file
    from seqrec.distill.prompts import aspect_prompts

    if writer not in WRITERS:
        raise SeqrecError(f"unknown --writer {writer!r}; choose deterministic or llm")
    aspect_prompts(prompt)  # an unknown prompt fails before data and model are loaded
    if limit is not None and limit < 1:
        raise SeqrecError("--limit must be >= 1")
    default_split = {"split": get_spec(dataset).default_split} if dataset in DATASETS else {}  # yours: its entry's
    data = load(DataConfig(name=dataset, data_dir=data_dir, **({"split": split} if split else default_split)))
    users = np.arange(min(limit, data.num_users)) if limit else None
    backend = None
    if writer == "llm":
        backend = chat_backend(model, gguf_file, endpoint, endpoint_model, api_key_env, allow_http)
    with interrupted_says(f"profiles written so far are kept in {out}; rerun to resume"):
        if backend is None:
            report = write_profile_file(data, out, users)
        else:
            report = write_llm_profiles(data, backend, out, users, prompt=prompt, max_new_tokens=max_new_tokens,
                                        batch_size=batch_size, progress=progress())
    console.print(f"{report.written:,} profiles written to [bold]{out}[/], {report.cached:,} already there, "
                  f"{report.skipped:,} users skipped (no training interactions); {report.seconds:.1f} s, "
                  f"{per_thousand(report.seconds, report.written)}")
    if report.calls:
        info(f"{report.calls:,} model calls (long histories are split and merged)")
    if report.empty:
        console.print(f"[yellow]{report.empty:,} replies were empty[/]")


@contextlib.contextmanager
def interrupted_says(message: str) -> Iterator[None]:
    """Ctrl-C: print what happened to the output and exit 130."""
    try:
        yield
    except KeyboardInterrupt:
        Console(stderr=True).print(f"[yellow]interrupted; {message}[/]")
        raise typer.Exit(130) from None


def chat_backend(model: str, gguf_file: str | None, endpoint: str | None, endpoint_model: str | None,
                 api_key_env: str | None = None, allow_http: bool = False) -> ChatBackend:
    """An OpenAI-compatible endpoint when --endpoint is given, else a local transformers model."""
    from seqrec.distill.chat import OpenAICompatibleChat, TransformersChat

    if endpoint:
        if not endpoint_model:
            raise SeqrecError("--endpoint needs --endpoint-model (the model name the server serves)")
        return OpenAICompatibleChat(endpoint, endpoint_model, api_key_env=api_key_env, allow_http=allow_http)
    if api_key_env or allow_http:
        raise SeqrecError("--api-key-env and --allow-http apply to --endpoint only; add --endpoint URL or drop them")
    info(f"loading chat model {model} ...")
    return TransformersChat(model, gguf_file=gguf_file)


@profiles_app.command("embed")
def profiles_embed(
    profiles: Path,
    out: Annotated[Path, out_option("JSON file {user_id: [floats]}; OUT.<aspect>.json for several aspects.")],
    model: Annotated[str, typer.Option(help="Sentence-transformers model name or folder.")] = "all-MiniLM-L6-v2",
    reduce: Annotated[str, typer.Option(help="none, pca or umap.")] = "none",
    dim: Annotated[int, typer.Option(help="Dimension after --reduce pca|umap.")] = 64,
    max_tokens: Annotated[int, typer.Option(help="Truncate texts to this many tokens (0 = the model's own).")] = 0,
    force: Annotated[bool, typer.Option(help="Replace existing output files.")] = False,
) -> None:
    """Embed the profile texts of PROFILES (from `seqrec profiles write`) for `distill.profiles`."""
    from seqrec.distill.embed import embed_profiles

    with interrupted_says("no embedding file was written"):
        report = embed_profiles(profiles, out, model=model, reduce=reduce, dim=dim, overwrite=force,
                                max_tokens=max_tokens or None)
    for aspect, path in report.paths.items():
        users, size = report.shapes[aspect]
        console.print(f"{aspect}: {users:,} users × {size} -> [bold]{path}[/]")
    total = sum(s[0] for s in report.shapes.values())
    console.print(f"{report.seconds:.1f} s, {per_thousand(report.seconds, total)}")
