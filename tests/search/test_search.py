"""A tiny model search end to end: trials are runs, a planted bad trial is pruned and leaves only a record, the
objective is a validation metric, best.yaml trains as is; resume, interruption, and the errors a user can cause."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

import seqrec
from helpers import TINY_SYNTHETIC
from seqrec.errors import ConfigError, Interrupted, SeqrecError
from seqrec.experiment import ExperimentConfig
from seqrec.runs import METRICS, load_run
from seqrec.search import SearchSettings, run_search
from seqrec.search.results import BEST_CONFIG, BEST_SUMMARY

optuna = pytest.importorskip("optuna")

TINY = {
    "name": "tiny",
    "data": {"name": "synthetic", "synthetic": TINY_SYNTHETIC},
    "model": {"name": "sasrec", "max_len": 10, "hidden": 16, "blocks": 1},
    "train": {"epochs": 3, "batch_size": 32, "patience": 0, "warmup": 0, "device": "cpu", "seed": 0},
    "eval": {"ks": [5, 10]},
}
SPACE = {"train.lr": {"low": 1e-6, "high": 1e-2, "log": True}}
PLANTED = [{"train.lr": 1e-2}, {"train.lr": 5e-3}, {"train.lr": 1e-6}]  # two good trials, then one that cannot learn


def search(out: Path, trials: int = 3, config: dict | None = None, space: dict | None = None, **options: object):
    options.setdefault("settings", SearchSettings(seed=0, startup_trials=2))
    return run_search(config or TINY, space or SPACE, trials, output_dir=out, progress=False, enqueue=PLANTED,
                      **options)


def states(study: optuna.Study) -> list[str]:
    return [t.state.name for t in study.get_trials()]


def test_a_tiny_search_end_to_end(tmp_path: Path) -> None:
    outcome = search(tmp_path)
    folder = tmp_path / "tiny-search"
    assert outcome.folder == folder and outcome.metric == "NDCG@10"
    assert states(outcome.study) == ["COMPLETE", "COMPLETE", "PRUNED"]
    good, better, bad = outcome.study.get_trials()

    # finished trials are normal runs; the objective is their validation NDCG@10, never a test number
    for trial in (good, better):
        run = load_run(folder / trial.user_attrs["run"])
        assert run.config.train.lr == trial.params["train.lr"]
        assert trial.value == run.metrics["valid"]["NDCG@10"] != run.metrics["test"]["NDCG@10"]
        assert trial.user_attrs["test"] == run.metrics["test"]

    # the planted trial stopped after its first validation: a small record, no run
    assert not (folder / "trial-0002").exists()
    record = json.loads((folder / "pruned" / "trial-0002.json").read_text())
    assert record["epochs_run"] == 1 and record["epochs_planned"] == 3
    assert record["values"] == {"1": bad.intermediate_values[1]}
    assert bad.intermediate_values[1] < min(good.intermediate_values[1], better.intermediate_values[1])

    # the best config trains with `seqrec train` as it is, to the best trial's validation score
    best = max((good, better), key=lambda t: t.value)
    assert outcome.best.number == best.number
    raw = yaml.safe_load((folder / BEST_CONFIG).read_text())
    assert raw == {**TINY, "train": {**TINY["train"], "lr": best.params["train.lr"]}}
    again = seqrec.run_experiment(ExperimentConfig.from_dict(raw), tmp_path / "again", progress=False)
    assert again.metrics["valid"]["NDCG@10"] == pytest.approx(best.value, abs=1e-6)
    summary = json.loads((folder / BEST_SUMMARY).read_text())
    assert summary["test"] == best.user_attrs["test"] and summary["value"] == best.value
    assert summary["trials"] == {"complete": 2, "pruned": 1, "failed": 0, "running": 0}
    assert summary["pruning"]["pruned"] == 1 and summary["pruning"]["epochs_saved"] == 2.0


def test_rerunning_continues_the_study(tmp_path: Path) -> None:
    first = search(tmp_path, trials=3).study
    started = [t.datetime_start for t in first.get_trials()]
    second = search(tmp_path, trials=5).study  # the planted trials are not queued again
    assert len(second.get_trials()) == 5 and [t.datetime_start for t in second.get_trials()[:3]] == started
    assert [t.params for t in second.get_trials()[:3]] == PLANTED
    third = search(tmp_path, trials=4).study  # the study already holds 4 or more: nothing to do
    assert len(third.get_trials()) == 5
    runs = sorted(p.name for p in (tmp_path / "tiny-search").glob("trial-*"))
    assert runs == sorted(t.user_attrs["run"] for t in third.get_trials() if t.state.name == "COMPLETE")


def test_an_interrupted_search_loses_only_the_running_trial(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import seqrec.search.trials as trials

    real, calls = trials.train, []

    def train_then_interrupt(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt  # Ctrl-C during the second trial
        return real(*args, **kwargs)

    monkeypatch.setattr(trials, "train", train_then_interrupt)
    with pytest.raises(Interrupted, match="1 finished trials are kept .* rerun the same command"):
        search(tmp_path)
    folder = tmp_path / "tiny-search"
    assert sorted(p.name for p in folder.iterdir() if p.name.startswith(("trial-", "."))) == ["trial-0000"]
    monkeypatch.setattr(trials, "train", real)
    study = search(tmp_path).study
    assert states(study)[:2] == ["COMPLETE", "FAIL"] and len(study.get_trials()) == 4  # the lost trial is redone
    assert sum(s in ("COMPLETE", "PRUNED") for s in states(study)) == 3


def test_a_study_made_for_another_search_is_refused(tmp_path: Path) -> None:
    search(tmp_path, trials=1)
    other_model = {**TINY, "model": {**TINY["model"], "blocks": 2}}
    with pytest.raises(ConfigError, match=r"created for another search \(model.blocks: 1 there, 2 here\); give a "
                                          r"new study name \(--study\)"):
        search(tmp_path, trials=1, config=other_model, study="tiny-search")
    with pytest.raises(ConfigError, match="metric 'NDCG@10' there, 'HR@10' here"):
        search(tmp_path, trials=1, settings=SearchSettings(metric="HR@10"))
    with pytest.raises(ConfigError, match="space .* there"):
        search(tmp_path, trials=1, space={"train.lr": {"low": 1e-5, "high": 1e-2, "log": True}})
    elsewhere = {**TINY, "train": {**TINY["train"], "threads": 1, "checkpoint_every": 3}}  # settings of a machine
    assert states(search(tmp_path, trials=2, config=elsewhere).study) == ["COMPLETE", "COMPLETE", "WAITING"]


def test_the_metric_must_be_a_validation_metric_the_config_measures(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"metric 'NDCG@20' needs a cut-off among eval.ks \(\[5, 10\]\)"):
        search(tmp_path, settings=SearchSettings(metric="NDCG@20"))
    with pytest.raises(ConfigError, match="metric 'loss@10' is not a ranking metric"):
        search(tmp_path, settings=SearchSettings(metric="loss@10"))
    assert not (tmp_path / "tiny-search").exists()  # refused before the study folder is made


def test_storages_that_cannot_be_opened(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="storage 'study.db' is not a database URL; use e.g. sqlite:///study.db"):
        search(tmp_path, storage="study.db")
    with pytest.raises(SeqrecError, match="cannot open the study storage sqlite:////no/such/folder/s.db: .*unable to "
                                          "open database file"):
        search(tmp_path, storage="sqlite:////no/such/folder/s.db")
    with pytest.raises(SeqrecError) as exc:
        search(tmp_path, storage="postgresql://me:secret@localhost:1/studies")
    assert "secret" not in str(exc.value) and "postgresql://me:***@localhost:1/studies" in str(exc.value)


def test_a_setting_the_model_refuses_is_a_failed_trial_and_the_search_goes_on(tmp_path: Path) -> None:
    config = {**TINY, "model": {**TINY["model"], "hidden": 12}}
    space = {"model.heads": [1, 3], "model.hidden": [16, 12]}  # each value fits alone; 16 with 3 heads does not
    outcome = run_search(config, space, 3, output_dir=tmp_path, progress=False, settings=SearchSettings(pruner="none"),
                         enqueue=[{"model.heads": 3, "model.hidden": 16}, {"model.heads": 1, "model.hidden": 16},
                                  {"model.heads": 3, "model.hidden": 12}])
    first = outcome.study.get_trials()[0]
    assert first.state.name == "FAIL" and "must be divisible by model.heads (3)" in first.user_attrs["error"]
    assert states(outcome.study) == ["FAIL", "COMPLETE", "COMPLETE"]  # the failed trial counts toward the 3


def test_seqrec_search_runs_a_search_and_returns_the_study(tmp_path: Path) -> None:
    study = seqrec.search(TINY, SPACE, trials=1, output_dir=tmp_path, progress=False, enqueue=PLANTED[:1])
    assert isinstance(study, optuna.Study) and study.study_name == "tiny-search"
    assert study.best_trial.params == PLANTED[0] and (tmp_path / "tiny-search" / "trial-0000" / METRICS).is_file()
    assert seqrec.search.run_search is run_search  # the package stays a package


def test_more_processes_need_a_module_level_on_trial(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="on_trial must be a function defined at module level"):
        search(tmp_path, jobs=2, on_trial=lambda trial: None)
    assert not (tmp_path / "tiny-search" / "study.db").exists()  # refused before the study is made


def test_pruning_savings_by_hand() -> None:
    """Finished trials ran 4 and 6 epochs (mean 5); pruned ones stopped after 1 and 2: 2 x 5 - 3 = 7 epochs saved,
    of the 7 + 13 the trials would have run without pruning."""
    import optuna
    from optuna.distributions import FloatDistribution
    from optuna.trial import TrialState, create_trial

    from seqrec.search import pruning_savings

    lr = {"train.lr": FloatDistribution(1e-4, 1e-2)}
    finished = [create_trial(state=TrialState.COMPLETE, value=0.1, params={"train.lr": 1e-3}, distributions=lr,
                             user_attrs={"epochs": n}) for n in (4, 6)]
    pruned = [create_trial(state=TrialState.PRUNED, params={"train.lr": 1e-3}, distributions=lr,
                           intermediate_values={e: 0.01 for e in range(1, n + 1)}) for n in (1, 2)]
    assert all(isinstance(t, optuna.trial.FrozenTrial) for t in finished + pruned)
    savings = pruning_savings(finished + pruned)
    assert (savings.pruned, savings.pruned_epochs, savings.mean_finished_epochs) == (2, 3, 5.0)
    assert savings.epochs_saved == 7.0 and savings.epochs_run == 13
    assert savings.share_saved == pytest.approx(7 / 20)
