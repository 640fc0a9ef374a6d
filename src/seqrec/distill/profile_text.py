"""Deterministic user profiles written from training interactions and the item catalog (no language model).

A profile is short bullet text in the spirit of the structured "short" LLM profile:

- History: number of training interactions and distinct items.
- One line per item attribute: its most frequent values with their share of the user's interactions (an item
  can carry several values, so shares need not add up to 100%).
- One trend line per attribute (histories of at least 6 items): values whose share in the latest third of the
  history differs from the earlier two thirds by at least 15 points, as rising or fading.
- Popularity: shares of head / mid / tail items (the dataset's popularity labels) against all users' shares.
- Characteristic titles: the user's least popular items (fewest training interactions over all users, newest
  first among ties). Every item appears once in a history, so the rarest items are the ones most
  over-represented for this user relative to everyone else (a TF-IDF view) and tell most about the taste.
- Latest titles: the newest distinct items, newest first.

Only `data.train` is read: validation and test targets never reach a profile. Users without training
interactions get no profile. The same data always gives the same text.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from seqrec.data.catalog import HEAD, TAIL
from seqrec.data.interactions import Sequences, concat_ranges
from seqrec.data.splits import SplitData
from seqrec.distill.profile_io import ProfileReport, ProfileRow, append_profile_texts, written_users

log = logging.getLogger(__name__)

DETERMINISTIC_ASPECT = "stats"  # aspect name of these profiles in profile text files
MIN_SHIFT = 0.15  # share change (latest third vs earlier) reported as a trend
MIN_TREND_ITEMS = 6  # shorter histories get no trend line
LEAN = 0.10  # head (tail) share this far above all users' counts as leaning mainstream (niche)
TITLE_CHARS = 80  # longer titles are cut
LATEST_TITLES = 3


@dataclass
class _History:
    """The selected users' training interactions, flattened: one entry per interaction."""

    rows: np.ndarray  # [nnz] row of the user (0..R-1)
    items: np.ndarray  # [nnz] internal item id
    positions: np.ndarray  # [nnz] 0 = oldest
    lengths: np.ndarray  # [R]


def users_with_history(data: SplitData, users: np.ndarray | None = None) -> np.ndarray:
    """The given internal users (default all) that have at least one training interaction.  -> [R]"""
    users = np.arange(data.num_users, dtype=np.int64) if users is None else np.asarray(users, dtype=np.int64)
    return users[data.train.lengths[users] > 0]


def write_profiles(data: SplitData, users: np.ndarray | None = None, max_titles: int = 5,
                   top_values: int = 5) -> dict[str, str]:
    """External user id -> profile text for `users` (internal ids, default all) with a training history."""
    chosen = users_with_history(data, users)
    skipped = (data.num_users if users is None else len(users)) - len(chosen)
    if skipped:
        log.info("%s: %d users have no training interactions and get no profile", data.name, skipped)
    history = _flatten(data.train.take(chosen))
    sections = [_history_lines(history, data.num_items)]
    for name, values in data.catalog.attributes.items():
        table = _ValueTable.build(values)
        sections.append(_share_lines(history, table, _label(name), top_values))
        sections.append(_trend_lines(history, table, _label(name, plural=False)))
    sections.append(_popularity_lines(history, data.item_stats.counts, data.item_stats.labels))
    if data.catalog.titles and max_titles > 0:
        titles = data.catalog.titles
        sections.append(_title_lines(history, data.item_stats.counts, titles, max_titles, "Characteristic titles"))
        sections.append(_title_lines(history, None, titles, min(max_titles, LATEST_TITLES), "Latest titles"))
    external = data.user_map.external
    return {external[u]: "\n".join(s[r] for s in sections if s[r]) for r, u in enumerate(chosen)}


def write_profile_file(data: SplitData, path: str | Path, users: np.ndarray | None = None, max_titles: int = 5,
                       top_values: int = 5) -> ProfileReport:
    """Append `write_profiles` rows (aspect "stats") to a profile text file; users already in it are kept."""
    start = time.perf_counter()
    texts = write_profiles(data, users, max_titles, top_values)
    done = written_users(path, DETERMINISTIC_ASPECT)
    written = append_profile_texts(path, [ProfileRow(u, DETERMINISTIC_ASPECT, t) for u, t in texts.items()
                                          if u not in done])
    skipped = (data.num_users if users is None else len(users)) - len(texts)
    return ProfileReport(written, len(texts) - written, skipped, seconds=time.perf_counter() - start)


def _flatten(seqs: Sequences) -> _History:
    lengths = seqs.lengths
    rows = seqs.row_ids()
    positions = np.arange(len(seqs.items), dtype=np.int64) - np.repeat(seqs.offsets[:-1], lengths)
    return _History(rows, seqs.items, positions, lengths)


def _label(name: str, plural: bool = True) -> str:
    """`genre` -> `Genres`, `category` -> `Categories` (attribute names as line labels)."""
    word = name.replace("_", " ").strip().capitalize() or "Attribute"
    if not plural or word.endswith("s"):
        return word
    return word[:-1] + "ies" if word.endswith("y") and word[-2:-1] not in "aeiou" else word + "s"


def _pct(share: float) -> int:
    return int(100.0 * share + 0.5)


@dataclass
class _ValueTable:
    """Values of one multi-valued attribute per item (CSR), with value ids in sorted-name order."""

    names: list[str]  # [V]
    offsets: np.ndarray  # [N+2]
    ids: np.ndarray  # [nnz] value ids

    @classmethod
    def build(cls, values: list[tuple[str, ...]]) -> _ValueTable:
        unique = [tuple(dict.fromkeys(v)) for v in values]  # a value counts once per item
        names = sorted({v for vals in unique for v in vals})
        index = {v: i for i, v in enumerate(names)}
        lengths = np.array([len(v) for v in unique], dtype=np.int64)
        ids = np.array([index[v] for vals in unique for v in vals], dtype=np.int64)
        return cls(names, np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64), ids)

    def expand(self, history: _History) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One entry per (interaction, value): rows, value ids and the interaction index.  -> 3 x [M]"""
        counts = np.diff(self.offsets)[history.items]
        source = np.repeat(np.arange(len(history.items)), counts)
        return history.rows[source], self.ids[concat_ranges(self.offsets[history.items], counts)], source


def _group_join(rows: np.ndarray, parts: list[str], num_rows: int, sep: str = ", ") -> list[str]:
    """Join `parts` (sorted by row) per row; rows without parts get "".  -> [R]"""
    bounds = np.searchsorted(rows, np.arange(num_rows + 1))
    return [sep.join(parts[bounds[r]:bounds[r + 1]]) for r in range(num_rows)]


def _rank_in_row(rows_sorted: np.ndarray) -> np.ndarray:
    """0, 1, 2, ... within each run of equal row ids.  [M] -> [M]"""
    starts = np.searchsorted(rows_sorted, rows_sorted, side="left")
    return np.arange(len(rows_sorted)) - starts


def _history_lines(history: _History, num_items: int) -> list[str]:
    keys = np.unique(history.rows * (num_items + 1) + history.items)
    distinct = np.bincount(keys // (num_items + 1), minlength=len(history.lengths))
    return [f"- History: {n} interactions, {d} distinct items" for n, d in zip(history.lengths, distinct, strict=True)]


def _share_lines(history: _History, table: _ValueTable, label: str, top: int) -> list[str]:
    rows, values, _ = table.expand(history)
    width = max(len(table.names), 1)
    keys, counts = np.unique(rows * width + values, return_counts=True)
    rows, values = keys // width, keys % width
    order = np.lexsort((values, -counts, rows))  # per row: most frequent first, then by name
    keep = order[_rank_in_row(rows[order]) < top]
    shares = counts[keep] / history.lengths[rows[keep]]
    parts = [f"{table.names[v]} {_pct(s)}%" for v, s in zip(values[keep], shares, strict=True)]
    joined = _group_join(rows[keep], parts, len(history.lengths))
    return [f"- {label}: {text}" if text else "" for text in joined]


def _trend_lines(history: _History, table: _ValueTable, label: str) -> list[str]:
    recent_n = np.where(history.lengths >= MIN_TREND_ITEMS, history.lengths // 3, 0)  # [R]
    early_n = history.lengths - recent_n
    rows, values, source = table.expand(history)
    recent = history.positions[source] >= early_n[rows]
    width = max(len(table.names), 1)
    keys, inverse = np.unique(rows * width + values, return_inverse=True)
    rows, values = keys // width, keys % width
    in_recent = np.bincount(inverse, weights=recent, minlength=len(keys))
    in_early = np.bincount(inverse, minlength=len(keys)) - in_recent
    eligible = recent_n[rows] > 0
    after = np.where(eligible, in_recent / np.maximum(recent_n[rows], 1), 0.0)
    before = np.where(eligible, in_early / np.maximum(early_n[rows], 1), 0.0)
    shift = after - before  # values absent from one part still count (share 0 there)
    parts_by_kind = []
    for kind, sign in (("rising", 1.0), ("fading", -1.0)):
        hit = np.flatnonzero(eligible & (sign * shift >= MIN_SHIFT - 1e-9))
        hit = hit[np.lexsort((values[hit], -sign * shift[hit], rows[hit]))]
        hit = hit[_rank_in_row(rows[hit]) < 2]
        parts = [f"{table.names[values[i]]} {_pct(before[i])}% -> {_pct(after[i])}%" for i in hit]
        joined = _group_join(rows[hit], parts, len(history.lengths))
        parts_by_kind.append([f"{kind} {text}" if text else "" for text in joined])
    out = []
    for r in range(len(history.lengths)):
        if recent_n[r] == 0:
            out.append("")
            continue
        text = "; ".join(p[r] for p in parts_by_kind if p[r]) or "stable"
        out.append(f"- {label} trend (latest third vs earlier): {text}")
    return out


def _popularity_lines(history: _History, counts: np.ndarray, labels: np.ndarray) -> list[str]:
    num_rows = len(history.lengths)
    item_labels = labels[history.items]
    head = np.bincount(history.rows, weights=item_labels == HEAD, minlength=num_rows) / history.lengths
    tail = np.bincount(history.rows, weights=item_labels == TAIL, minlength=num_rows) / history.lengths
    total = max(float(counts.sum()), 1.0)
    all_head, all_tail = counts[labels == HEAD].sum() / total, counts[labels == TAIL].sum() / total
    overall = f"all users: {_pct(all_head)}% head, {_pct(all_tail)}% tail"
    out = []
    for h, t in zip(head, tail, strict=True):
        more_head, more_tail = h - all_head, t - all_tail
        lean = ("leans mainstream" if more_head >= LEAN and more_head >= more_tail else
                "leans niche" if more_tail >= LEAN else "typical mix")
        out.append(f"- Popularity: {_pct(h)}% head, {_pct(1.0 - h - t)}% mid, {_pct(t)}% tail items, {lean} "
                   f"({overall})")
    return out


def _title_lines(history: _History, counts: np.ndarray | None, titles: list[str], k: int, label: str
                 ) -> list[str]:
    """The k least popular (counts given) or newest (counts None) distinct items per user, as titles."""
    order = np.lexsort((-history.positions, history.items, history.rows))
    first = np.ones(len(order), dtype=bool)  # keep each item's newest occurrence
    first[1:] = (history.rows[order][1:] != history.rows[order][:-1]) | (
        history.items[order][1:] != history.items[order][:-1])
    pick = order[first]
    rarity = counts[history.items[pick]] if counts is not None else np.zeros(len(pick), dtype=np.int64)
    pick = pick[np.lexsort((-history.positions[pick], rarity, history.rows[pick]))]
    pick = pick[_rank_in_row(history.rows[pick]) < k]
    parts = [_short_title(titles[i]) for i in history.items[pick]]
    parts = [p or "(untitled)" for p in parts]
    joined = _group_join(history.rows[pick], parts, len(history.lengths), sep="; ")
    return [f"- {label}: {text}" if text else "" for text in joined]


def _short_title(title: str) -> str:
    title = " ".join(title.split())
    return title if len(title) <= TITLE_CHARS else title[:TITLE_CHARS - 1].rstrip() + "…"
