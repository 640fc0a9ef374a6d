"""Named datasets: data root, lookup errors, load + filter + split, listing and info."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from seqrec.data import synthetic
from seqrec.data.catalog import ItemCatalog
from seqrec.data.config import DataConfig
from seqrec.data.interactions import Interactions
from seqrec.data.registry import DATASETS, data_root, dataset_info, list_datasets, load, load_raw
from seqrec.errors import DataError

REAL_ROOT = Path(os.environ.get("SEQREC_DATA") or Path(__file__).resolve().parents[3] / "shared" / "data")


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def rows(seqs) -> list[list[int]]:
    return [seqs[u].tolist() for u in range(len(seqs))]


def sasrec_lines(sequences: dict[int, list[int]]) -> str:
    return "".join(f"{u} {i}\n" for u, items in sequences.items() for i in items)


@pytest.fixture
def root(tmp_path) -> Path:
    """A data root holding tiny versions of ml-1m-sas, beauty-bert4rec, grocery and lastfm."""
    ml = {1: [1, 2, 3, 4], 2: [2, 3, 1], 3: [3, 1, 2, 4]}
    write(tmp_path / "ml-1m-sas" / "ml-1m.txt", sasrec_lines(ml))
    write(tmp_path / "ml-1m-sas" / "items.tsv", "item_id\tmovie_id\ttitle\tgenres\n"
          "1\t1198\tRaiders of the Lost Ark (1981)\tAction|Adventure\n2\t3552\tCaddyshack (1980)\tComedy\n"
          "3\t1\tToy Story (1995)\tAnimation|Comedy\n")
    kcore_case = {1: [1, 2, 3, 4], 2: [1, 2, 3], 3: [2, 3, 5], 4: [2, 3, 1, 4], 5: [5, 6]}
    write(tmp_path / "bert4rec-classic" / "beauty.txt", sasrec_lines(kcore_case))
    header = "user_id\titem_id\ttime\n"
    write(tmp_path / "rechorus-grocery" / "train.csv", header + "1\t1\t10\n1\t2\t20\n2\t2\t10\n2\t3\t30\n")
    write(tmp_path / "rechorus-grocery" / "dev.csv", header + "1\t3\t40\n2\t1\t40\n")
    write(tmp_path / "rechorus-grocery" / "test.csv", header + "1\t4\t50\n2\t4\t50\n")
    inter = "".join(f"u{u}\t{t}\t0\t{t}\n" for u in (1, 2) for t in (10, 9, 8, 7, 6, 5, 4, 3, 2, 1))
    write(tmp_path / "lastfm-recbole-tagged" / "lastfm.inter",
          "user_id:token\titem_id:token\tweight:float\ttimestamp:float\n" + inter)
    write(tmp_path / "lastfm-recbole-tagged" / "lastfm.item", "item_id:token\tname:token\n1\tBand One\n")
    return tmp_path


# ---------------------------------------------------------------- data root and lookup errors


def test_data_root_precedence(tmp_path, monkeypatch):
    monkeypatch.delenv("SEQREC_DATA", raising=False)
    monkeypatch.chdir(tmp_path)
    assert data_root() == tmp_path / "data"
    monkeypatch.setenv("SEQREC_DATA", str(tmp_path / "env"))
    assert data_root() == tmp_path / "env"
    assert data_root(tmp_path / "explicit") == tmp_path / "explicit"
    assert data_root("rel") == tmp_path / "rel"  # made absolute


def test_unknown_name_lists_valid_names(root):
    with pytest.raises(DataError) as err:
        load_raw("ml-1n", root)
    assert "unknown dataset 'ml-1n'" in str(err.value)
    valid = "valid names: beauty, beauty-bert4rec, grocery, lastfm, ml-1m, ml-1m-sas, synthetic"
    assert valid in str(err.value)


def test_missing_file_names_the_full_path(root):
    with pytest.raises(DataError) as err:
        load_raw("beauty", root)
    message = str(err.value)
    assert str(root / "s3rec-seq" / "Beauty.txt") in message
    assert str(root / "s3rec-seq" / "Beauty_item2attributes.json") in message
    assert "--data-dir" in message and "SEQREC_DATA" in message
    with pytest.raises(DataError, match="grouplens.org"):
        load_raw("ml-1m", root)


def test_list_datasets_is_instant_and_reports_presence(root):
    listing = {d["name"]: d for d in list_datasets(root)}
    assert set(listing) == set(DATASETS)
    assert listing["ml-1m-sas"]["present"] and not listing["beauty"]["present"]
    assert listing["ml-1m-sas"]["folder"] == str(root / "ml-1m-sas")
    assert (listing["ml-1m-sas"]["users"], listing["ml-1m-sas"]["items"]) == (6040, 3416)
    assert listing["ml-1m-sas"]["interactions"] == 987531
    assert listing["grocery"]["default_split"] == "predefined"
    assert listing["synthetic"]["present"] and listing["synthetic"]["folder"] is None


# ---------------------------------------------------------------- load: filter and split


def test_load_leave_one_out_with_titles(root):
    data = load(DataConfig(name="ml-1m-sas", data_dir=str(root)))
    assert rows(data.train) == [[1, 2], [2], [3, 1]]
    assert data.valid.targets.tolist() == [3, 3, 2]
    assert data.test.targets.tolist() == [4, 1, 4]
    assert rows(data.test.histories) == [[1, 2, 3], [2, 3], [3, 1, 2]]
    assert data.catalog.title(1) == "Raiders of the Lost Ark (1981)"
    assert data.catalog.attributes["genre"][1] == ("Action", "Adventure")
    assert data.catalog.title(4) == ""


def test_load_kcore_cascades_before_splitting(root):
    data = load(DataConfig(name="beauty-bert4rec", data_dir=str(root),
                            min_user_interactions=3, min_item_interactions=2))
    # user 5 (2 items) goes, then item 5 (now 1 interaction), then user 3 (now 2 items); item 6 goes at once
    assert data.user_map.external == ["1", "2", "4"]
    assert data.item_map.external == ["1", "2", "3", "4"]
    assert rows(data.full_histories) == [[1, 2, 3, 4], [1, 2, 3], [2, 3, 1, 4]]
    assert data.test.targets.tolist() == [4, 3, 4]


def test_load_predefined_split(root):
    data = load(DataConfig(name="grocery", data_dir=str(root), split="predefined"))
    assert rows(data.train) == [[1, 2], [2, 3]]
    assert data.valid.targets.tolist() == [3, 1] and rows(data.valid.histories) == [[1, 2], [2, 3]]
    assert data.test.targets.tolist() == [4, 4] and rows(data.test.histories) == [[1, 2, 3], [2, 3, 1]]


def test_predefined_split_needs_a_shipped_split_and_no_kcore(root):
    with pytest.raises(DataError, match="ships no predefined split.*datasets with one: grocery"):
        load(DataConfig(name="ml-1m-sas", data_dir=str(root), split="predefined"))
    with pytest.raises(DataError, match="k-core filtering would change the shipped split"):
        load(DataConfig(name="grocery", data_dir=str(root), split="predefined", min_user_interactions=2))


def test_load_temporal_split(root):
    data = load(DataConfig(name="lastfm", data_dir=str(root), split="temporal"))
    # item ids equal timestamps 1..10 for both users; boundaries at the 80% / 90% quantiles (8.2, 9.1)
    assert rows(data.train) == [list(range(1, 9))] * 2
    assert data.valid.targets.tolist() == [9, 9]
    assert data.test.targets.tolist() == [10, 10]
    assert rows(data.test.histories) == [list(range(1, 10))] * 2
    assert data.catalog.titles[1] == "Band One"


def test_synthetic_uses_the_generator(monkeypatch):
    calls = []

    def fake_generate(cfg):
        calls.append(cfg)
        inter = Interactions.from_raw(np.repeat([0, 1], 4), np.array([1, 2, 3, 4, 2, 3, 4, 1]))
        return inter, ItemCatalog.empty(4)

    monkeypatch.setattr(synthetic, "generate", fake_generate)
    cfg = DataConfig(name="synthetic", data_dir="/nonexistent")
    data = load(cfg)
    assert calls == [cfg.synthetic]
    assert data.test.targets.tolist() == [4, 1]


def test_dataset_info(root):
    info = dataset_info("ml-1m-sas", root)
    assert (info["users"], info["items"], info["interactions"]) == (3, 4, 11)
    assert info["mean_length"] == pytest.approx(11 / 3) and info["median_length"] == 4.0
    assert not info["has_timestamps"] and info["has_titles"] and info["titled_items"] == 3
    assert info["attributes"] == {"genre": 4}
    assert info["head_items"] + info["mid_items"] + info["tail_items"] == 4
    assert info["published"] == {"users": 6040, "items": 3416, "interactions": 987531}
    assert dataset_info("lastfm", root)["has_timestamps"]


# ---------------------------------------------------------------- real datasets


def real(name: str) -> Path:
    present = {d["name"]: d["present"] for d in list_datasets(REAL_ROOT)}
    if not present[name]:
        pytest.skip(f"{name} files not found under {REAL_ROOT} (set SEQREC_DATA to run this check)")
    return REAL_ROOT


def sizes(inter: Interactions) -> tuple[int, int, int]:
    return inter.num_users, inter.num_items, len(inter)


@pytest.mark.realdata
def test_real_ml_1m_sas():
    inter, catalog = load_raw("ml-1m-sas", real("ml-1m-sas"))
    assert sizes(inter) == (6040, 3416, 987531)
    assert catalog.title(1) == "Raiders of the Lost Ark (1981)"
    assert catalog.attributes["genre"][1] == ("Action", "Adventure")


@pytest.mark.realdata
def test_real_beauty():
    inter, catalog = load_raw("beauty", real("beauty"))
    assert sizes(inter) == (22363, 12101, 198502)
    assert catalog.attributes["attribute"][4] == ("1", "2", "3")
    if catalog.titles is not None:  # titles come from amazon-beauty-p5 when it is present
        assert catalog.title(1) == "OPI Nail Lacquer, Simmer and Shimmer, 0.5-Fluid Ounce"


@pytest.mark.realdata
def test_real_beauty_bert4rec():
    inter, _ = load_raw("beauty-bert4rec", real("beauty-bert4rec"))
    assert sizes(inter) == (40226, 54542, 353962)


@pytest.mark.realdata
def test_real_grocery_predefined_split():
    data = load(DataConfig(name="grocery", data_dir=str(real("grocery")), split="predefined"))
    assert (data.num_users, data.num_items, len(data.full_histories.items)) == (14681, 8713, 151254)
    assert (len(data.valid), len(data.test), len(data.train.items)) == (14681, 14681, 121892)
    assert len(data.catalog.attribute_values("category")) == 57


@pytest.mark.realdata
def test_real_lastfm():
    inter, catalog = load_raw("lastfm", real("lastfm"))
    assert sizes(inter) == (1362, 2975, 64286)
    assert inter.timestamps is not None
    assert catalog.title(int(inter.item_map.to_internal(["2"])[0])) == "Diary of Dreams"
