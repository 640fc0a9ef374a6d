"""Run kinds: a new kind is one class plus `register_kind`; every built-in kind saves, is recognised and loads,
with and without the `kind` field older code did not write."""

from __future__ import annotations

import copy
import importlib.util
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
import torch

import seqrec
from helpers import TINY_EVAL, tiny_model_config, tiny_train_config
from seqrec.config import read_yaml, write_yaml
from seqrec.data.splits import SplitData
from seqrec.distill.config import DistillConfig
from seqrec.errors import RunError
from seqrec.experiment import ExperimentConfig
from seqrec.llm.stage_runs import STAGES, save_stage
from seqrec.retrieval.config import RetrievalConfig
from seqrec.run_folders import read_records
from seqrec.run_kinds import KIND_KEY, RUN_KINDS, find_kind, recommends, register_kind
from seqrec.runs import Run, load_run, save_run
from seqrec.steering.popsteer import NeuronStats
from seqrec.steering.sae import SAEConfig, TopKSAE
from seqrec.steering.sae_run import SAERun, save_sae_run
from seqrec.steering.steered_run import SteerConfig, SteeredRun, save_steered_run
from seqrec.steering.tuned_run import TunedRun, save_tuned_run
from seqrec.steering.tuning import LatentController, TuneConfig

RUNS_SOURCE = Path(seqrec.__file__).parent / "runs.py"


# ---------------------------------------------------------------- a kind defined here only


@dataclass
class ToyRun:
    note: str
    metrics: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    path: Path | None = None
    kind: ClassVar[str] = "toy"


class ToyKind:
    name = "toy"
    settings_file = "toy.yaml"
    extends: str | None = None
    label = ""

    def recognise(self, path: Path) -> bool:
        return (path / "note.txt").is_file()

    def save(self, run: ToyRun, folder: Path) -> dict[str, Any]:
        (folder / "note.txt").write_text(run.note)
        return {"length": len(run.note)}

    def load(self, path: Path, device: str = "cpu", **options: Any) -> ToyRun:
        metrics, history = read_records(path)
        return ToyRun((path / "note.txt").read_text(), metrics, history, path)


@pytest.fixture
def toy() -> Iterator[ToyKind]:
    kind = register_kind(ToyKind())
    yield kind
    RUN_KINDS.pop(kind.name)


def test_a_new_kind_is_one_class_and_a_registration(toy: ToyKind, tmp_path: Path) -> None:
    path = save_run(ToyRun("hello", {"score": 0.5}, [{"epoch": 1}]), tmp_path / "toy")
    assert sorted(p.name for p in path.iterdir()) == ["history.jsonl", "metrics.json", "note.txt", "toy.yaml"]
    assert read_yaml(path / "toy.yaml") == {KIND_KEY: "toy", "length": 5}
    loaded = load_run(path)
    assert isinstance(loaded, ToyRun) and loaded.note == "hello" and loaded.path == path
    assert loaded.metrics == {"score": 0.5} and loaded.history == [{"epoch": 1}]


def test_a_folder_without_the_kind_field_is_recognised_by_its_files(toy: ToyKind, tmp_path: Path) -> None:
    path = save_run(ToyRun("older"), tmp_path / "toy")
    (path / "toy.yaml").unlink()
    assert find_kind(path) is toy and load_run(path).note == "older"


def test_an_unregistered_kind_is_a_clear_error(toy: ToyKind, tmp_path: Path) -> None:
    path = save_run(ToyRun("orphan"), tmp_path / "toy")
    RUN_KINDS.pop(toy.name)
    try:
        with pytest.raises(RunError, match="not a complete seqrec run.*known kinds: .*base"):
            load_run(path)
    finally:
        register_kind(toy)


def test_an_unknown_kind_names_it_and_the_known_ones(tmp_path: Path) -> None:
    (tmp_path / "run").mkdir()
    write_yaml({KIND_KEY: "hologram", "name": "x"}, tmp_path / "run" / "config.yaml")
    known = ", ".join(sorted(RUN_KINDS))
    with pytest.raises(RunError, match=rf"kind 'hologram'.*\(known kinds: {re.escape(known)}\)"):
        load_run(tmp_path / "run")


def test_runs_py_knows_no_kind_by_name() -> None:
    source = RUNS_SOURCE.read_text()
    assert "isinstance(" not in source
    assert not [name for name in RUN_KINDS if f'"{name}"' in source or f"'{name}'" in source]


# ---------------------------------------------------------------- every built-in kind


@pytest.fixture(scope="module")
def base_run(tiny_data: SplitData, tmp_path_factory: pytest.TempPathFactory) -> Run:
    run = seqrec.train(tiny_model_config("sasrec"), tiny_data, tiny_train_config(epochs=1), TINY_EVAL, progress=False)
    save_run(run, tmp_path_factory.mktemp("kinds") / "base")
    return run


def _variant(run: Run, **sections: Any) -> Run:
    """`run`'s trained model under a config with other sections."""
    config = ExperimentConfig(data=run.config.data, model=run.config.model, train=run.config.train,
                              eval=run.config.eval, **sections)
    return Run(config, run.recommender, dict(run.metrics), list(run.history))


def _distilled(base: Run, folder: Path) -> Path:
    return save_run(_variant(base, distill=DistillConfig(profiles="profiles.json")), folder)


def _retrieval(base: Run, folder: Path) -> Path:
    pytest.importorskip("faiss")
    from seqrec.retrieval.augmented import RetrievalAugmented

    config = RetrievalConfig(base_run=str(base.path), top_k=2)
    model = RetrievalAugmented(seqrec.load(base.path).model, config)  # type: ignore[arg-type]
    rng = np.random.default_rng(0)
    n, hidden, items = 30, base.config.model.hidden, len(base.recommender.item_map)
    model.use_knowledge(rng.normal(size=(n, hidden)).astype(np.float32), rng.integers(1, items + 1, n),
                        rng.integers(0, 5, n), rng.integers(1, 6, n))
    run = _variant(base, retrieval=config)
    run.recommender = copy.copy(base.recommender)  # the shared base run keeps its own model
    run.recommender.model = model.eval()
    return save_run(run, folder)


def _sae_run(base: Run) -> SAERun:
    torch.manual_seed(0)
    return SAERun(SAEConfig(k=4, scale=4), TopKSAE(base.config.model.hidden, 4 * base.config.model.hidden, 4), base,
                  {"valid_fvu": 0.5})


def _sae(base: Run, folder: Path) -> Path:
    return save_sae_run(_sae_run(base), base.path / folder.name)  # type: ignore[operator]


def _tuned(base: Run, folder: Path) -> Path:
    sae_run = _sae_run(base)
    save_sae_run(sae_run, base.path / f"sae-for-{folder.name}")  # type: ignore[operator]
    run = TunedRun(TuneConfig(targets=["Comedy"]), LatentController([1, 3], sae_run.sae.latents), sae_run,
                   {"valid_NDCG@10": 0.1})
    return save_tuned_run(run, sae_run.path / "tuned")  # type: ignore[operator]


def _steered(base: Run, folder: Path) -> Path:
    sae_run = _sae_run(base)
    save_sae_run(sae_run, base.path / f"sae-for-{folder.name}")  # type: ignore[operator]
    rng = np.random.default_rng(0)
    h = sae_run.sae.latents
    stats = NeuronStats(rng.normal(size=h), rng.uniform(0.5, 1, h), rng.normal(size=h), rng.uniform(0.5, 1, h), 16)
    run = SteeredRun(SteerConfig(alpha=1.0, neurons=8), stats, sae_run, {"test": {"NDCG@10": 0.1}})
    return save_steered_run(run, sae_run.path / "steered")  # type: ignore[operator]


def _stage(stage: str) -> Callable[[Run, Path], Path]:
    def save(base: Run, folder: Path) -> Path:
        return save_stage(folder, stage, {"data": "synthetic", "seed": 1}, {"mae": 0.7},
                          files=lambda tmp: (tmp / "extra.txt").write_text(stage))
    return save


BUILT_IN: dict[str, Callable[[Run, Path], Path]] = {
    "base": lambda base, folder: save_run(_variant(base), folder),
    "distilled": _distilled,
    "retrieval": _retrieval,
    "sae": _sae,
    "steered": _steered,
    "tuned": _tuned,
    **{f"llm-{stage}": _stage(stage) for stage in STAGES},
}


def test_every_built_in_kind_is_registered() -> None:
    assert set(BUILT_IN) <= set(RUN_KINDS)


@pytest.mark.parametrize("kind", sorted(BUILT_IN))
def test_every_built_in_kind_round_trips(kind: str, base_run: Run, tmp_path: Path) -> None:
    path = BUILT_IN[kind](base_run, tmp_path / f"run-{kind}")
    settings = path / RUN_KINDS[kind].settings_file
    assert read_yaml(settings)[KIND_KEY] == kind
    first = load_run(path)
    assert first.kind == kind and first.path == path and first.metrics
    meta = read_yaml(settings)
    del meta[KIND_KEY]  # as written before runs recorded their kind
    write_yaml(meta, settings)
    older = load_run(path)
    assert find_kind(path).name == kind and older.kind == kind and older.metrics == first.metrics
    if recommends(RUN_KINDS[kind]):
        items = torch.from_numpy(np.array([[0, 1, 2, 3], [2, 3, 4, 5]]))
        with torch.no_grad():
            assert torch.equal(first.recommender.model.score(items), older.recommender.model.score(items))


def test_duorec_is_a_plain_model_run(tiny_data: SplitData, tmp_path: Path) -> None:
    run = seqrec.train(tiny_model_config("duorec"), tiny_data, tiny_train_config(epochs=1), TINY_EVAL, progress=False)
    assert run.kind == "base" and load_run(save_run(run, tmp_path / "duorec")).kind == "base"


def test_the_run_name_starts_with_the_kind_label() -> None:
    config = ExperimentConfig(retrieval=RetrievalConfig(base_run="runs/duorec"))
    assert config.kind == "retrieval" and config.run_name.startswith("ftragrec-")
    assert ExperimentConfig().run_name.startswith("sasrec-")


def test_seqrec_load_restores_every_kind_that_recommends(base_run: Run, tmp_path: Path) -> None:
    recommending = sorted(name for name in BUILT_IN if recommends(RUN_KINDS[name]))
    assert recommending == ["base", "distilled", "retrieval", "sae", "steered", "tuned"]
    for kind in recommending:
        if kind == "retrieval" and importlib.util.find_spec("faiss") is None:
            continue
        loaded = seqrec.load(BUILT_IN[kind](base_run, tmp_path / f"load-{kind}"))
        assert loaded.kind == kind and loaded.model_run.kind in ("base", "distilled", "retrieval")
        assert loaded.recommender.item_map == base_run.recommender.item_map


@pytest.mark.parametrize("stage", STAGES)
def test_seqrec_load_refuses_a_kind_that_does_not_recommend(stage: str, base_run: Run, tmp_path: Path) -> None:
    path = _stage(stage)(base_run, tmp_path / f"stage-{stage}")
    with pytest.raises(RunError, match=rf"is a run of kind llm-{stage}, which does not recommend items; pass a run "
                                       r"that does \(kinds: base, distilled, retrieval, sae, steered, tuned\)"):
        seqrec.load(path)
    assert load_run(path).kind == f"llm-{stage}"


def test_a_kind_that_does_not_say_does_not_recommend(toy: ToyKind, tmp_path: Path) -> None:
    path = save_run(ToyRun("quiet"), tmp_path / "toy")
    with pytest.raises(RunError, match="kind toy, which does not recommend items"):
        seqrec.load(path)
