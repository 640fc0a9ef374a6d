"""Datasets from DataFrames and tables, `seqrec.datasets.load` by name / path / config, summaries, result frames."""

from __future__ import annotations

import pyarrow as pa
import pytest

import seqrec
from seqrec.data.config import DataConfig, ItemsConfig
from seqrec.errors import DataError
from seqrec.evaluation.frames import metrics_frame, recommendations_frame

pd = pytest.importorskip("pandas")

# user, item, unix seconds: three users with 4, 3 and 4 interactions
COLUMNS = {"visitor": ["u1"] * 4 + ["u2"] * 3 + ["u3"] * 4,
           "sku": ["a", "b", "c", "d", "b", "c", "a", "c", "d", "a", "b"],
           "ts": [100, 200, 300, 400, 150, 250, 350, 120, 220, 320, 420]}
ROLES = {"user": "visitor", "item": "sku", "timestamp": "ts"}
EXPECTED = {"u1": ["a", "b", "c", "d"], "u2": ["b", "c", "a"], "u3": ["c", "d", "a", "b"]}


def sequences(data) -> dict[str, list[str]]:
    return {user: data.item_map.to_external(data.full_histories[u]) for u, user in enumerate(data.user_map.external)}


def test_from_pandas_pyarrow_and_polars_agree():
    frame = pd.DataFrame(COLUMNS).sample(frac=1.0, random_state=0)  # row order does not matter
    from_pandas = seqrec.datasets.from_frame(frame, columns=ROLES)
    from_arrow = seqrec.datasets.from_frame(pa.table(COLUMNS), columns=ROLES)
    assert sequences(from_pandas) == sequences(from_arrow) == EXPECTED
    assert from_pandas.source.format == "dataframe" and from_pandas.source.columns == ROLES
    polars = pytest.importorskip("polars")
    from_polars = seqrec.datasets.from_frame(polars.DataFrame(COLUMNS), columns=ROLES, split="temporal")
    assert sequences(from_polars) == EXPECTED and from_polars.source.split == "temporal"


def test_from_frame_with_common_names_datetimes_and_options():
    frame = pd.DataFrame({"user_id": COLUMNS["visitor"], "item_id": COLUMNS["sku"],
                          "timestamp": pd.to_datetime(COLUMNS["ts"], unit="s"),
                          "rating": [5, 5, 1, 5, 5, 5, 5, 5, 1, 5, 5]})
    data = seqrec.datasets.from_frame(frame, name="shop", min_rating=3)
    assert data.name == "shop"
    assert sequences(data) == {"u1": ["a", "b", "d"], "u2": ["b", "c", "a"], "u3": ["c", "a", "b"]}
    assert data.source.columns["timestamp"] == "timestamp" and data.source.min_rating == 3


def test_from_frame_with_an_item_frame():
    items = pd.DataFrame({"item_id": ["a", "b"], "title": ["Alpha", "Beta"], "genres": ["x|y", "y"]})
    data = seqrec.datasets.from_frame(pd.DataFrame(COLUMNS), columns=ROLES, items=items,
                                      item_options={"attributes": ["genres"]})
    a, b, c = data.item_map.to_internal(["a", "b", "c"])
    assert data.catalog.titles[a] == "Alpha" and data.catalog.attributes["genres"][a] == ("x", "y")
    assert data.catalog.attributes["genres"][c] == () and data.catalog.has_value("y").sum() == 2


def test_bad_frames():
    with pytest.raises(DataError, match="DataFrame: no user column .*visitor, sku, ts"):
        seqrec.datasets.from_frame(pd.DataFrame(COLUMNS))
    mixed = pd.DataFrame({**COLUMNS, "visitor": [1, "u1"] * 5 + [2]})
    with pytest.raises(DataError, match="DataFrame: cannot be converted"):
        seqrec.datasets.from_frame(mixed, columns=ROLES)
    with pytest.raises(DataError, match="cannot be converted"):
        seqrec.datasets.from_frame(object(), columns=ROLES)
    with pytest.raises(DataError, match="built from a DataFrame"):
        seqrec.datasets.load(seqrec.datasets.from_frame(pa.table(COLUMNS), columns=ROLES).source)


def test_load_by_name_path_or_config(tmp_path):
    path = tmp_path / "clicks.csv"
    pd.DataFrame(COLUMNS).to_csv(path, index=False)
    by_path = seqrec.datasets.load(str(path), columns=ROLES)
    by_config = seqrec.datasets.load(DataConfig(path=str(path), columns=ROLES))
    again = seqrec.datasets.load(by_path.source)  # the recorded source reads the same data
    assert sequences(by_path) == sequences(by_config) == sequences(again) == EXPECTED
    assert seqrec.datasets.load(by_path.source, split="temporal").source.split == "temporal"
    named = seqrec.datasets.load("synthetic", synthetic={"num_users": 30, "num_items": 20, "mean_seq_len": 6,
                                                         "min_seq_len": 4, "max_seq_len": 10})
    assert named.source.name == "synthetic" and named.num_users == 30
    with pytest.raises(DataError, match="unknown dataset"):
        seqrec.datasets.load("no-such-dataset")


def test_item_config_with_a_frame(tmp_path):
    (tmp_path / "items.jsonl").write_text('{"iid": "a", "title": "Alpha", "tags": ["t1", "t2"]}\n')
    data = seqrec.datasets.from_frame(pa.table(COLUMNS), columns=ROLES,
                                      items=ItemsConfig(path=str(tmp_path / "items.jsonl"), id="iid",
                                                        attributes=["tags"]))
    a = int(data.item_map.to_internal(["a"])[0])
    assert data.catalog.attributes["tags"][a] == ("t1", "t2") and data.source.items.id == "iid"


def test_summary_is_short():
    data = seqrec.datasets.from_frame(pa.table(COLUMNS), columns=ROLES, name="shop")
    text = repr(data)
    assert text == str(data) and "\n" not in text and len(text) < 300
    assert text.startswith("SplitData('shop': 3 users, 4 items, 11 interactions;")
    assert "valid 3 users, test 3 users" in text and "split loo; source: dataframe shop" in text
    assert "offsets" not in text and "array" not in text


def test_metrics_and_recommendations_as_frames():
    frame = metrics_frame({"HR@5": 0.5, "NDCG@10": 0.25, "MAE": 1.0})
    assert list(frame.columns) == ["metric", "k", "value"]
    assert frame.set_index("metric").loc["NDCG", "value"] == 0.25 and pd.isna(frame.set_index("metric").loc["MAE", "k"])
    run = metrics_frame({"valid": {"HR@5": 0.4}, "test": {"HR@5": 0.5, "HR@10": 0.7}, "best_epoch": 3})
    assert len(run) == 3 and set(run["split"]) == {"valid", "test"}
    wide = run[run.split == "test"].pivot_table(index="metric", columns="k", values="value")
    assert wide.loc["HR", 10] == 0.7
    rows = [{"user": "u1", "rank": 1, "item": "a", "score": 2.0, "title": "Alpha"}]
    assert recommendations_frame(rows).to_dict("records") == rows
    assert list(recommendations_frame([]).columns) == ["user", "rank", "item", "score", "title"]


def test_new_items_of_an_item_file_join_the_catalogue_after_the_others(tmp_path) -> None:  # noqa: ANN001
    items = pd.DataFrame({"item_id": ["z", "a", "b", "y", "z"], "genres": ["x", "x|y", "y", "y", "x"]})
    items.to_csv(tmp_path / "items.csv", index=False)
    pd.DataFrame(COLUMNS).to_csv(tmp_path / "clicks.csv", index=False)
    plain = seqrec.datasets.from_frame(pd.DataFrame(COLUMNS), columns=ROLES, items=items,
                                       item_options={"attributes": ["genres"]})
    assert plain.item_map.external == ["a", "b", "c", "d"]  # items without interactions are left out
    for grown in (seqrec.datasets.from_frame(pd.DataFrame(COLUMNS), columns=ROLES, items=items,
                                             item_options={"attributes": ["genres"], "new_items": True}),
                  seqrec.datasets.load(DataConfig(path=str(tmp_path / "clicks.csv"), columns=ROLES,
                                                  items=ItemsConfig(path=str(tmp_path / "items.csv"),
                                                                    attributes=["genres"], new_items=True)))):
        assert grown.item_map.external == ["a", "b", "c", "d", "z", "y"]  # known ids keep theirs
        assert grown.num_items == 6 and grown.catalog.attributes["genres"][5:] == [("x",), ("y",)]
        assert sequences(grown) == EXPECTED
        seen = set(grown.train.items) | set(grown.valid.targets) | set(grown.test.targets)
        assert not seen & {5, 6}
