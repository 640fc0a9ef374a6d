"""Settings of the SIREN stages (`seqrec llm sketch|grpo|align|evaluate`): one dataclass per stage.

Each is read like an experiment of `seqrec train`: a YAML file whose keys mirror the fields (nested sections for
`grpo`, `warmup` and `align`), then command-line options, then dotted `--set key=value` overrides. Unknown keys and
non-finite numbers are a `ConfigError` naming the key. A stage writes its config back into its run's config.yaml,
so a run's config.yaml is itself a valid stage file.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar

from seqrec.config import apply_overrides, check_finite, from_dict, read_yaml, to_dict, write_yaml
from seqrec.errors import ConfigError
from seqrec.llm.align import AlignSettings
from seqrec.llm.grpo import GRPOSettings
from seqrec.llm.rows import RatingData
from seqrec.llm.warmup import WarmupSettings
from seqrec.run_kinds import KIND_KEY

C = TypeVar("C", bound="StageConfig")


@dataclass
class StageConfig:
    """What every stage reads: the rating data (`data`: movies-tv, synthetic, a folder or a dataset name)."""

    stage: ClassVar[str] = ""
    data: str = "movies-tv"
    data_dir: str | None = None  # data root (default: $SEQREC_DATA or ./data)
    limit_users: int | None = None  # only the first N users of the data

    def __post_init__(self) -> None:
        check_finite(self, self.stage)
        if not self.data:
            raise ConfigError("data must name rating data: movies-tv, synthetic, a folder or a dataset")
        for key in ("limit_users", "limit"):
            value = getattr(self, key, None)
            if value is not None and value < 1:
                raise ConfigError(f"{key} must be >= 1 (or null for all), got {value}")
        max_history = getattr(self, "max_history", None)
        if max_history is not None and max_history < 1:
            raise ConfigError(f"max_history must be >= 1, got {max_history}")

    def load_data(self) -> RatingData:
        """The rating data this config names."""
        from seqrec.llm.sources import load_rating_data

        return load_rating_data(self.data, self.data_dir, self.limit_users)

    @classmethod
    def from_yaml(cls: type[C], path: str | Path | None, overrides: Sequence[str] = ()) -> C:
        """The config in a YAML file (None: the defaults) with `key.sub=value` overrides applied."""
        return read_stage_config(cls, path, overrides=overrides)

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict with `stage` first (what `from_yaml` reads back)."""
        return {"stage": self.stage, **to_dict(self)}

    def to_yaml(self, path: str | Path) -> None:
        write_yaml(self.to_dict(), path)


@dataclass
class SketchStageConfig(StageConfig):
    """Topics by k-means over item-text embeddings, named by key terms or an LLM."""

    stage: ClassVar[str] = "sketch"
    embedder: str = "all-MiniLM-L6-v2"  # sentence-transformers model name or folder
    clusters: int = 20  # topics
    top_k: int = 100  # items nearest each centroid used to name it
    theta: float = 4.0  # mean rating at or above which a topic is liked
    namer: str = "terms"  # terms (deterministic), or an LLM: smollm2, a model name or folder
    endpoint: str | None = None  # OpenAI-compatible base URL that names the topics
    endpoint_model: str | None = None  # model name at the endpoint (default: namer)
    api_key_env: str | None = None  # environment variable holding the endpoint's API key
    allow_http: bool = False  # plain http:// to a non-local endpoint
    tokenizer: str | None = "smollm2"  # counts prompt tokens; null: characters / 4
    max_history: int = 10
    seed: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        for key in ("clusters", "top_k"):
            if getattr(self, key) < 1:
                raise ConfigError(f"{key} must be >= 1, got {getattr(self, key)}")
        if (self.api_key_env or self.allow_http) and not self.endpoint:
            raise ConfigError("api_key_env and allow_http (--api-key-env, --allow-http) apply to --endpoint only; "
                              "set endpoint (--endpoint URL) or drop them")


@dataclass
class GRPOStageConfig(StageConfig):
    """GRPO on rating prompts, after an optional format warm-up (`warmup.rows > 0`)."""

    stage: ClassVar[str] = "grpo"
    model: str = "smollm2"  # smollm2, a transformers model name or folder, or a grpo run
    sketch: str = "none"  # none, shipped or a sketch run directory
    max_history: int = 10  # recent rated items shown in the prompt
    limit: int | None = None  # a seeded sample of N train rows
    valid_limit: int = 0  # validation rows scored every grpo.eval_steps steps; 0 = none
    logging_dir: str | None = None  # loggers' files (report_to); null: logs/ inside the run directory
    grpo: GRPOSettings = field(default_factory=GRPOSettings)
    warmup: WarmupSettings = field(default_factory=WarmupSettings)

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.model:
            raise ConfigError("model must name a model (smollm2, a name or folder) or a grpo run")
        if self.valid_limit < 0:
            raise ConfigError(f"valid_limit must be >= 0, got {self.valid_limit}")


@dataclass
class AlignStageConfig(StageConfig):
    """Hidden-state alignment of the answer-only student to a grpo run's reasoning, or SFT (`align.ce_weight: 1`)."""

    stage: ClassVar[str] = "align"
    model: str = ""  # a grpo run (teacher and start of the student), or any model with align.ce_weight 1
    sketch: str | None = None  # default: the parent run's
    max_history: int | None = None  # default: the parent run's
    limit: int | None = None  # a seeded sample of N train rows to trace
    valid_limit: int = 200  # validation rows for checkpoint selection
    trace_tokens: int = 512  # longest teacher reasoning trace
    trace_batch_size: int = 8  # prompts per generation call when tracing
    align: AlignSettings = field(default_factory=AlignSettings)

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.model:
            raise ConfigError("model must name the base: a grpo run, or any model with align.ce_weight 1")
        for key in ("valid_limit", "trace_tokens", "trace_batch_size"):
            if getattr(self, key) < 1:
                raise ConfigError(f"{key} must be >= 1, got {getattr(self, key)}")


@dataclass
class EvaluateStageConfig(StageConfig):
    """Rating metrics of a model, a grpo/align run or a mean baseline on one split."""

    stage: ClassVar[str] = "evaluate"
    predictor: str = ""  # a grpo/align run, a model, or global-mean, user-mean, item-mean
    split: Literal["train", "valid", "test"] = "test"
    mode: Literal["answer-only", "cot"] = "answer-only"  # one answer token, or reasoning then the answer
    limit: int | None = None  # only the first N rows of the split
    sketch: str | None = None  # default: the predictor run's
    max_history: int | None = None  # default: the predictor run's
    batch_size: int = 8  # prompts per generation call
    max_new_tokens: int = 512  # cot: reasoning + answer token limit

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.predictor:
            raise ConfigError("predictor must name a grpo/align run, a model, or global-mean, user-mean, item-mean")
        if self.split not in ("train", "valid", "test"):
            raise ConfigError(f"split must be one of train, valid, test; got {self.split!r}")
        if self.mode not in ("answer-only", "cot"):
            raise ConfigError(f"mode must be one of answer-only, cot; got {self.mode!r}")
        for key in ("batch_size", "max_new_tokens"):
            if getattr(self, key) < 1:
                raise ConfigError(f"{key} must be >= 1, got {getattr(self, key)}")


def read_stage_config(cls: type[C], path: str | Path | None = None, options: Mapping[str, Any] | None = None,
                      overrides: Sequence[str] = ()) -> C:
    """`cls` from the YAML at `path` (None: the defaults), then `options` (dotted key -> value; None = not given),
    then `key.sub=value` overrides; a `stage:` key, as in a run's config.yaml, must be `cls`'s stage."""
    raw = read_yaml(path) if path is not None else {}
    raw.pop(KIND_KEY, None)  # a run's config.yaml also names its run kind
    stage = raw.pop("stage", cls.stage)
    if stage != cls.stage:
        raise ConfigError(f"{path} is a {stage} config, not a {cls.stage} config")
    for key, value in (options or {}).items():
        if value is not None:
            _set(raw, key, list(value) if isinstance(value, tuple) else value)
    apply_overrides(raw, list(overrides))
    return from_dict(cls, raw)


def _set(raw: dict[str, Any], dotted: str, value: Any) -> None:
    *sections, last = dotted.split(".")
    node = raw
    for key in sections:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise ConfigError(f"{dotted}: {key} is not a section")
    node[last] = value
