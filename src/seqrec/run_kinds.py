"""Kinds of run directory: each kind names itself, recognises its folders, and saves and loads its runs.

A kind registers itself when its module is imported; `seqrec.runs` imports every built-in one: `base`
(`seqrec.model_runs`; DuoRec is a plain model run), `distilled` (`seqrec.distill.run_kind`), `retrieval`
(`seqrec.retrieval.run_kind`), `sae`, `steered` and `tuned` (`seqrec.steering.sae_run`, `seqrec.steering.steered_run`,
`seqrec.steering.tuned_run`) and one per LLM stage, `llm-sketch`, `llm-grpo`, `llm-align`, `llm-evaluate`
(`seqrec.llm.stage_runs`). A saved run names its kind in the `kind` field of its settings file (config.yaml, sae.yaml,
...); folders written before that field existed are recognised by their files.

A kind that `recommends` loads into a run with `recommender`, `steering` and `model_run` (the protocol
`seqrec.steering.controls.RecommendingRun`); `load_recommending` loads only those, for `seqrec.load`, evaluation and
serving.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol, TypeVar

from seqrec.config import read_yaml, write_yaml
from seqrec.errors import ConfigError, RunError
from seqrec.files import write_file_atomically
from seqrec.run_folders import damaged, write_records

KIND_KEY = "kind"  # the field of a run's settings file that names its kind


class SavedRun(Protocol):
    """What a run of every kind has."""

    @property
    def kind(self) -> str: ...  # the name of its RunKind

    path: Path | None
    metrics: dict[str, Any]
    history: list[dict[str, Any]]


class RunKind(Protocol):
    """How one kind of run is saved, recognised and loaded."""

    name: str  # written to the settings file as `kind`
    settings_file: str  # the YAML file with the run's settings and its kind, e.g. config.yaml
    extends: str | None  # the kind whose files this kind adds to; it wins where both recognise a folder
    label: str  # how default run names start ("" = the model's name)
    recommends: bool  # whether its runs load into a RecommendingRun (recommender, steering, model_run)

    def recognise(self, path: Path) -> bool:
        """Whether `path`, a folder whose settings name no kind (written by older code), holds a run of this kind."""
        ...

    def save(self, run: Any, folder: Path) -> dict[str, Any]:
        """Write this kind's files of `run` into `folder` (a new folder beside the run's final place, or the run's
        own folder) and return its settings; the settings file, history.jsonl and metrics.json follow."""
        ...

    def load(self, path: Path, device: str = "cpu", **options: Any) -> Any:
        """Restore the run at `path`, with clear errors for missing or damaged files."""
        ...


RUN_KINDS: dict[str, RunKind] = {}
Kind = TypeVar("Kind", bound=RunKind)


def register_kind(kind: Kind) -> Kind:
    """Make `kind` known to `write_run`, `find_kind` and `load_any` (a later registration of a name replaces it)."""
    RUN_KINDS[kind.name] = kind
    return kind


def known_kind(name: str, where: Path | str) -> RunKind:
    """The registered kind called `name`; an unknown name is a `RunError` naming it and the known ones."""
    if name not in RUN_KINDS:
        raise RunError(f"{where} is a run of kind {name!r}, which this seqrec does not know (known kinds: "
                       f"{', '.join(sorted(RUN_KINDS))}); load it with the version or plug-in that wrote it")
    return RUN_KINDS[name]


def with_kind(name: str, settings: dict[str, Any]) -> dict[str, Any]:
    """A settings mapping that starts with its run's kind."""
    return {KIND_KEY: name, **{k: v for k, v in settings.items() if k != KIND_KEY}}


def write_run(run: SavedRun, folder: Path) -> None:
    """Every file of `run` into `folder`, each replaced in one step: the kind's own files, its settings with the
    kind, history.jsonl, and metrics.json last (it marks the run finished)."""
    kind = known_kind(run.kind, folder)
    settings = with_kind(kind.name, kind.save(run, folder))
    write_file_atomically(folder / kind.settings_file, lambda tmp: write_yaml(settings, tmp))
    write_records(folder, run.metrics, run.history)


def read_kind(path: Path) -> str | None:
    """The kind the settings file in `path` names, or None when none does (a run written by older code)."""
    for file in dict.fromkeys(kind.settings_file for kind in RUN_KINDS.values()):
        name = yaml_mapping(path / file).get(KIND_KEY)
        if name is not None:
            if not isinstance(name, str) or not name:
                raise damaged(path / file, f"{KIND_KEY} must be the name of a run kind, got {name!r}")
            return name
    return None


def find_kind(path: Path) -> RunKind:
    """The kind of the run at `path`: the one its settings name, or else the one whose files it has."""
    name = read_kind(path)
    if name is not None:
        return known_kind(name, path)
    matches = [kind for kind in RUN_KINDS.values() if kind.recognise(path)]
    extended = {kind.extends for kind in matches}
    matches = [kind for kind in matches if kind.name not in extended]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise RunError(f"{path} is not a complete seqrec run (its files fit none of the known kinds: "
                       f"{', '.join(sorted(RUN_KINDS))})")
    raise RunError(f"{path} could be a run of kind {' or '.join(k.name for k in matches)}; add `{KIND_KEY}: <name>` "
                   f"to its {matches[0].settings_file} to say which")


def load_any(path: str | Path, device: str = "cpu", **options: Any) -> Any:
    """Restore the run at `path`, whatever its kind; `options` go to the kind's `load`."""
    path = Path(path)
    if not path.is_dir():
        raise RunError(f"run directory not found: {path}")
    return find_kind(path).load(path, device=device, **options)


def recommends(kind: RunKind) -> bool:
    """Whether runs of `kind` recommend items (kinds that do not say, e.g. plug-ins written earlier, do not)."""
    return bool(getattr(kind, "recommends", False))


def load_recommending(path: str | Path, device: str = "cpu", **options: Any) -> Any:
    """Restore the run at `path` when its kind recommends (a `RecommendingRun`); any other kind is a `RunError`
    that names it and the kinds that do."""
    path = Path(path)
    if not path.is_dir():
        raise RunError(f"run directory not found: {path}")
    kind = find_kind(path)
    if not recommends(kind):
        serving = ", ".join(sorted(name for name, k in RUN_KINDS.items() if recommends(k)))
        raise RunError(f"{path} is a run of kind {kind.name}, which does not recommend items; pass a run that does "
                       f"(kinds: {serving}), or read this one with seqrec.runs.load_run")
    return kind.load(path, device=device, **options)


def is_kind_of(name: str, ancestor: str) -> bool:
    """Whether kind `name` is `ancestor` or extends it (directly or through other kinds)."""
    seen: set[str] = set()
    while name not in seen:
        if name == ancestor:
            return True
        seen.add(name)
        kind = RUN_KINDS.get(name)
        if kind is None or kind.extends is None:
            return False
        name = kind.extends
    return False


def yaml_mapping(file: Path) -> dict[str, Any]:
    """A YAML file's top-level mapping for recognising a folder; {} when it is missing, damaged or not a mapping."""
    try:
        data = read_yaml(file) if file.is_file() else {}
    except (ConfigError, OSError, UnicodeDecodeError):
        return {}
    return data if isinstance(data, dict) else {}
