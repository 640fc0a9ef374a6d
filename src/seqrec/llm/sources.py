"""Rating data by name: the Amazon-2023 Movies & TV folder, any folder in its layout, the planted synthetic rows,
or a registered seqrec dataset that has ratings and item text."""

from __future__ import annotations

from pathlib import Path

from seqrec.errors import DataError
from seqrec.llm.rows import RatingData

MOVIES_TV = "movies-tv"
MOVIES_TV_FOLDER = "amazon2023-movies-tv"
SYNTHETIC = "synthetic"


def load_rating_data(source: str, data_dir: str | Path | None = None, limit_users: int | None = None
                     ) -> RatingData:
    """`movies-tv` (under the data root), `synthetic`, a folder with train/valid/test JSONL, or a dataset name."""
    from seqrec.data.registry import DATASETS, data_root, load_raw
    from seqrec.llm.amazon import read_amazon2023
    from seqrec.llm.rating_rows import rows_from_interactions, synthetic_rating_data

    if source == SYNTHETIC:
        return synthetic_rating_data()
    if source in (MOVIES_TV, MOVIES_TV_FOLDER):
        return read_amazon2023(data_root(data_dir) / MOVIES_TV_FOLDER, limit_users=limit_users)
    if Path(source).is_dir():
        return read_amazon2023(Path(source), limit_users=limit_users)
    if source in DATASETS:
        interactions, catalog = load_raw(source, data_dir)
        return rows_from_interactions(interactions, catalog, source, max_users=limit_users)
    raise DataError(f"unknown rating data {source!r}: use {MOVIES_TV} (Amazon-2023 Movies & TV under the data "
                    f"root, folder {MOVIES_TV_FOLDER}/), {SYNTHETIC}, a folder with train/valid/test.jsonl[.gz], "
                    "or a dataset with ratings and item text (seqrec data list)")
