"""Deterministic profile text on a hand-built catalogue: exact shares, trends, titles, training items only."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from seqrec.data.catalog import ItemCatalog
from seqrec.data.interactions import Interactions
from seqrec.data.splits import SplitData, leave_one_out
from seqrec.distill.profile_io import read_profile_texts
from seqrec.distill.profile_text import DETERMINISTIC_ASPECT, write_profile_file, write_profiles

GENRES = {1: ("Drama",), 2: ("Drama", "Comedy"), 3: ("Drama",), 4: ("Comedy",), 5: ("Horror",), 6: ("Horror",),
          7: ("Drama",), 8: ("Comedy",), 9: ("Comedy",), 10: ("Drama",)}
TITLES = {i: f"Film {i}" for i in GENRES} | {5: "Valid Target Film", 6: "Planted Test Target"}
HISTORIES = {  # leave-one-out: the last item is the test target, the one before it the valid target
    "alice": [1, 2, 3, 4, 5, 6],  # training 1..4
    "bob": [4, 5, 6],  # training [4]
    "carl": [1, 2],  # too short: dropped, no training history
    "dana": [1, 3, 7, 10, 8, 9, 5, 6],  # training 6 items, the newest third all Comedy
}


@pytest.fixture(scope="module")
def toy() -> SplitData:
    users = [u for u, items in HISTORIES.items() for _ in items]
    items = [i for seq in HISTORIES.values() for i in seq]
    times = [t for seq in HISTORIES.values() for t in range(len(seq))]
    inter = Interactions.from_raw(np.array(users), np.array(items), np.array(times, dtype=float))
    assert inter.item_map.external == [str(i) for i in range(1, 11)]  # internal id == raw id
    catalog = ItemCatalog(10, [""] + [TITLES[i] for i in range(1, 11)],
                          {"genre": [()] + [GENRES[i] for i in range(1, 11)]})
    return leave_one_out(inter, catalog, name="toy")


def test_shares_popularity_and_titles_are_exact(toy: SplitData) -> None:
    profiles = write_profiles(toy)
    # training counts: items 1, 3, 4 twice, the rest once; 11 interactions -> item 1 head, 8, 9, 10 tail
    assert profiles["alice"].splitlines() == [
        "- History: 4 interactions, 4 distinct items",
        "- Genres: Drama 75%, Comedy 50%",
        "- Popularity: 25% head, 75% mid, 0% tail items, typical mix (all users: 18% head, 27% tail)",
        "- Characteristic titles: Film 2; Film 4; Film 3; Film 1",  # least popular first, newest first on ties
        "- Latest titles: Film 4; Film 3; Film 2",
    ]
    assert "- Genres: Comedy 100%" in profiles["bob"]


def test_trend_compares_the_latest_third_with_the_rest(toy: SplitData) -> None:
    dana = write_profiles(toy)["dana"]
    assert "- Genres: Drama 67%, Comedy 33%" in dana
    assert "- Genre trend (latest third vs earlier): rising Comedy 0% -> 100%; fading Drama 100% -> 0%" in dana
    assert "trend" not in write_profiles(toy)["alice"]  # fewer than 6 training items


def test_only_training_items_reach_a_profile(toy: SplitData) -> None:
    text = "\n".join(write_profiles(toy).values())
    assert "Planted Test Target" not in text and "Valid Target Film" not in text and "Horror" not in text


def test_users_without_training_history_are_skipped(toy: SplitData, tmp_path: Path) -> None:
    carl = toy.user_map.to_internal(["carl"])
    assert toy.train.lengths[carl[0]] == 0
    assert write_profiles(toy, users=carl) == {}
    assert set(write_profiles(toy)) == {"alice", "bob", "dana"}
    report = write_profile_file(toy, tmp_path / "p.jsonl")
    assert (report.written, report.cached, report.skipped) == (3, 0, 1)


def test_deterministic_and_resumable(toy: SplitData, tmp_path: Path) -> None:
    assert write_profiles(toy) == write_profiles(toy)
    path = tmp_path / "profiles.jsonl"
    first = write_profile_file(toy, path, users=toy.user_map.to_internal(["alice"]))
    again = write_profile_file(toy, path)
    assert (first.written, again.written, again.cached) == (1, 2, 1)
    assert read_profile_texts(path)[DETERMINISTIC_ASPECT] == write_profiles(toy)


def test_titles_can_be_left_out_and_values_capped(toy: SplitData) -> None:
    text = write_profiles(toy, max_titles=0, top_values=1)["alice"]
    assert "titles" not in text and "- Genres: Drama 75%\n" in text


def test_scales_to_the_synthetic_dataset(tiny_data: SplitData) -> None:
    profiles = write_profiles(tiny_data)
    assert len(profiles) == int((tiny_data.train.lengths > 0).sum())
    assert all(t.startswith("- History: ") and "- Genres: " in t for t in profiles.values())
