"""Run directories: save/load parity, never overwriting, atomic writes, clear errors for broken runs."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import seqrec
from helpers import TINY_EVAL, tiny_model_config, tiny_train_config
from seqrec.config import read_yaml, to_dict, write_yaml
from seqrec.data.splits import SplitData
from seqrec.errors import RunError, SeqrecError
from seqrec.runs import (
    CATALOG,
    CONFIG,
    HISTORIES,
    HISTORY,
    ID_MAPS,
    METRICS,
    WEIGHTS,
    Run,
    is_claimed,
    load_run,
    save_run,
    unique_run_dir,
    write_atomically,
)


@pytest.fixture(scope="module")
def runs(tiny_data: SplitData) -> dict[str, Run]:
    """One briefly trained run per registered model."""
    from seqrec.models.base import MODEL_REGISTRY

    return {name: seqrec.train(tiny_model_config(name), tiny_data, tiny_train_config(epochs=1), TINY_EVAL,
                               progress=False) for name in sorted(MODEL_REGISTRY)}


@pytest.fixture(scope="module")
def saved_sasrec(runs: dict[str, Run], tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_run(runs["sasrec"], tmp_path_factory.mktemp("saved") / "sasrec")


def copy_run(src: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(src, tmp_path / "copy"))


def test_save_load_gives_identical_scores_and_recommendations(model_name: str, runs: dict[str, Run],
                                                              tiny_data: SplitData, tmp_path: Path) -> None:
    run = runs[model_name]
    path = save_run(run, tmp_path / "run")
    assert {p.name for p in path.iterdir()} == {CONFIG, WEIGHTS, METRICS, HISTORY, ID_MAPS, HISTORIES, CATALOG}
    loaded = seqrec.load(path)
    assert loaded.path == path and loaded.config.to_dict() == run.config.to_dict()
    assert loaded.metrics == run.metrics and loaded.history == run.history
    histories = torch.from_numpy(tiny_data.test.histories.padded(run.model.max_len))
    run.model.eval()
    with torch.no_grad():
        assert torch.equal(loaded.model.score(histories), run.model.score(histories))
    users = tiny_data.user_map.external[:5]
    assert loaded.recommender.recommend(users, k=5) == run.recommender.recommend(users, k=5)


def test_unique_run_dir_never_reuses_a_path(tmp_path: Path) -> None:
    assert unique_run_dir(tmp_path, "exp") == tmp_path / "exp"  # claimed: created with this process's mark
    (tmp_path / "exp-2").mkdir()
    (tmp_path / "exp-4").mkdir()
    assert unique_run_dir(tmp_path, "exp") == tmp_path / "exp-3"
    (tmp_path / "other").write_text("a file also counts")
    assert unique_run_dir(tmp_path, "other") == tmp_path / "other-2"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exp", "exp-2", "exp-3", "exp-4", "other", "other-2"]
    assert is_claimed(tmp_path / "exp") and not is_claimed(tmp_path / "exp-2")


def test_a_claimed_folder_is_filled_and_a_failed_write_frees_it(tmp_path: Path) -> None:
    claimed = unique_run_dir(tmp_path, "exp")
    with pytest.raises(OSError, match="disk full"):
        write_atomically(claimed, lambda folder: (_ for _ in ()).throw(OSError("disk full")))
    assert list(tmp_path.iterdir()) == []  # the name is free again
    claimed = unique_run_dir(tmp_path, "exp")
    path = write_atomically(claimed, lambda folder: (folder / "a.txt").write_text("ok"))
    assert path == claimed and sorted(p.name for p in path.iterdir()) == ["a.txt"]


def test_write_atomically_leaves_nothing_when_the_writer_fails(tmp_path: Path) -> None:
    def failing(folder: Path) -> None:
        (folder / "half.txt").write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_atomically(tmp_path / "runs" / "exp", failing)
    assert list((tmp_path / "runs").iterdir()) == []  # neither the run nor its temporary sibling

    path = write_atomically(tmp_path / "runs" / "exp", lambda folder: (folder / "a.txt").write_text("ok"))
    assert [p.name for p in (tmp_path / "runs").iterdir()] == ["exp"]
    assert (path / "a.txt").read_text() == "ok"
    with pytest.raises(RunError, match="already exists"):
        write_atomically(path, lambda folder: None)
    assert (path / "a.txt").read_text() == "ok"


def test_save_run_refuses_an_existing_directory(runs: dict[str, Run], tmp_path: Path) -> None:
    (tmp_path / "taken").mkdir()
    with pytest.raises(RunError, match="never overwritten"):
        save_run(runs["sasrec"], tmp_path / "taken")
    assert list((tmp_path / "taken").iterdir()) == []


def test_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(RunError, match="run directory not found"):
        load_run(tmp_path / "nope")


@pytest.mark.parametrize("name", [CONFIG, WEIGHTS, ID_MAPS, HISTORIES])
def test_missing_file(saved_sasrec: Path, tmp_path: Path, name: str) -> None:
    path = copy_run(saved_sasrec, tmp_path)
    (path / name).unlink()
    with pytest.raises(RunError, match=f"not a complete seqrec run \\(missing {name}\\)"):
        load_run(path)


def test_truncated_weights(saved_sasrec: Path, tmp_path: Path) -> None:
    path = copy_run(saved_sasrec, tmp_path)
    data = (path / WEIGHTS).read_bytes()
    (path / WEIGHTS).write_bytes(data[: len(data) // 2])
    with pytest.raises(RunError, match="damaged or truncated"):
        load_run(path)


def test_weights_of_another_model(saved_sasrec: Path, tmp_path: Path) -> None:
    path = copy_run(saved_sasrec, tmp_path)
    config = read_yaml(path / CONFIG)
    config["model"] = to_dict(tiny_model_config("gru4rec"))
    write_yaml(config, path / CONFIG)
    with pytest.raises(RunError, match="does not match a gru4rec model"):
        load_run(path)


def test_invalid_config_in_a_run(saved_sasrec: Path, tmp_path: Path) -> None:
    path = copy_run(saved_sasrec, tmp_path)
    config = read_yaml(path / CONFIG)
    config["train"]["lrr"] = 0.1
    write_yaml(config, path / CONFIG)
    with pytest.raises(RunError, match=r"config\.yaml: unknown config key train\.lrr"):
        load_run(path)


def test_recommend_unknown_user_names_it(runs: dict[str, Run]) -> None:
    with pytest.raises(SeqrecError, match="no-such-user"):
        runs["sasrec"].recommender.recommend(["no-such-user"], k=3)
    with pytest.raises(SeqrecError, match="k must be >= 1"):
        runs["sasrec"].recommender.recommend(["0"], k=0)


def test_recommend_rows(model_name: str, runs: dict[str, Run], tiny_data: SplitData) -> None:
    rec = runs[model_name].recommender
    users = tiny_data.user_map.external
    rows = rec.recommend(users, k=5)
    assert len(rows) == 5 * len(users)
    for n, user in enumerate(users):
        mine = rows[5 * n : 5 * n + 5]
        assert [r["user"] for r in mine] == [user] * 5 and [r["rank"] for r in mine] == [1, 2, 3, 4, 5]
        scores = [r["score"] for r in mine]
        assert scores == sorted(scores, reverse=True) and np.isfinite(scores).all()
        internal = tiny_data.item_map.to_internal([r["item"] for r in mine])
        seen = set(tiny_data.full_histories[n].tolist())  # every known item, valid and test targets included
        assert not seen & set(internal.tolist())
        assert [r["title"] for r in mine] == [tiny_data.catalog.title(int(i)) for i in internal]
        assert all(r["title"] for r in mine)
    unmasked = rec.recommend(users, k=10, mask_seen=False)
    user_rows = rec.user_map.to_internal([r["user"] for r in unmasked])
    item_ids = tiny_data.item_map.to_internal([r["item"] for r in unmasked])
    assert any(i in tiny_data.full_histories[u] for u, i in zip(user_rows, item_ids, strict=True))


def test_recommend_stops_when_every_item_is_seen(runs: dict[str, Run]) -> None:
    rec = runs["sasrec"].recommender
    user = rec.user_map.external[0]
    seen = len(set(rec.histories[0].tolist()))
    rows = rec.recommend([user], k=40)  # the whole catalogue: only the unseen items, and the user is named short
    assert len(rows) == rec.model.num_items - seen and rows.short == [user]
    with pytest.raises(SeqrecError, match="k = 100 is more than the 40 candidate items"):
        rec.recommend([user], k=100)


def test_a_claimed_folder_for_later_work_is_freed_when_the_work_fails(tmp_path: Path) -> None:
    from seqrec.runs import claimed_run_dir

    with pytest.raises(RuntimeError), claimed_run_dir(tmp_path, "stage") as path:
        assert is_claimed(path)
        raise RuntimeError("the stage failed")
    assert list(tmp_path.iterdir()) == []
    with claimed_run_dir(tmp_path, "stage") as path:
        write_atomically(path, lambda folder: (folder / "done").write_text("ok"))
    assert (tmp_path / "stage" / "done").read_text() == "ok"
