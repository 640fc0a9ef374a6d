"""Mean-rating baselines by hand: train labels + history ratings, each (user, item) once, global-mean fallback."""

from __future__ import annotations

import pytest

from seqrec.errors import SeqrecError
from seqrec.llm.baselines import global_mean, item_mean, observed_ratings, user_mean
from seqrec.llm.rows import RatedItem, RatingRow

I0, I1 = RatedItem("Film 0, Drama", 2.0, "i0"), RatedItem("Film 1, Comedy", 4.0, "i1")
TRAIN = [RatingRow("train:0", "train", "a", "i1", 4.0, "Film 1, Comedy", (I0,)),
         RatingRow("train:1", "train", "a", "i2", 5.0, "Film 2, Drama", (I0, I1)),  # repeats i0 and row 0's i1
         RatingRow("train:2", "train", "b", "i1", 1.0, "Film 1, Comedy", ())]
TEST = [RatingRow("test:0", "test", "a", "i0", 3.0, "Film 0, Drama", ()),
        RatingRow("test:1", "test", "b", "i2", 3.0, "Film 2, Drama", ()),
        RatingRow("test:2", "test", "c", "i9", 3.0, "Film 9, Horror", ())]


def test_each_user_item_pair_counts_once() -> None:
    assert observed_ratings(TRAIN) == {("a", "i0"): 2.0, ("a", "i1"): 4.0, ("a", "i2"): 5.0, ("b", "i1"): 1.0}


def test_global_user_and_item_means_by_hand() -> None:
    assert global_mean(TRAIN).predict(TEST) == [3.0, 3.0, 3.0]  # (2 + 4 + 5 + 1) / 4
    assert user_mean(TRAIN).predict(TEST) == pytest.approx([11 / 3, 1.0, 3.0])  # c is unseen → global mean
    assert item_mean(TRAIN).predict(TEST) == pytest.approx([2.0, 5.0, 3.0])  # i9 is unseen → global mean
    assert item_mean(TRAIN).means["i1"] == pytest.approx(2.5)  # a's 4 and b's 1


def test_items_without_ids_are_keyed_by_text() -> None:
    row = RatingRow("train:0", "train", "a", "", 2.0, "Film 5, Drama", (RatedItem("Film 6, Drama", 4.0),))
    predictor = item_mean([row])
    assert predictor.means == {"Film 5, Drama": 2.0, "Film 6, Drama": 4.0}
    assert predictor.predict([RatingRow("test:0", "test", "b", "", 1.0, "Film 6, Drama", ())]) == [4.0]


def test_no_train_ratings_raise() -> None:
    with pytest.raises(SeqrecError, match="no train ratings"):
        global_mean([])
