"""Rating rows: one (user, candidate item, star rating) prediction target with the text history before it."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class RatedItem:
    """One past interaction as the prompt shows it: item text ("title, category path") and its rating."""

    text: str
    rating: float
    item: str = ""  # item id when known (e.g. parent_asin); the sketch keys items by text when it is empty


@dataclass(frozen=True)
class RatingRow:
    """A pointwise rating-prediction sample; `history` holds only interactions strictly before the target."""

    sample_id: str  # unique across splits, e.g. "train:123"; keys teacher vectors and caches
    split: str  # train | valid | test
    user: str
    item: str
    label: float
    target: str  # candidate text, "title, category path"
    history: tuple[RatedItem, ...]  # chronological, oldest first
    timestamp: int = 0


@dataclass
class RatingData:
    """Train/valid/test rating rows plus optional per-user long histories and shipped sketches."""

    name: str
    train: list[RatingRow]
    valid: list[RatingRow]
    test: list[RatingRow]
    scale: tuple[float, float] = (1.0, 5.0)
    category: str = "movie"  # the word prompts use for an item
    shipped_sketches: dict[str, str] = field(default_factory=dict)  # user -> the dataset's own sketch text
    long_histories: dict[str, tuple[RatedItem, ...]] = field(default_factory=dict)  # user -> full pre-valid history

    def split(self, name: str) -> list[RatingRow]:
        from seqrec.errors import ConfigError

        if name not in ("train", "valid", "test"):
            raise ConfigError(f"unknown split {name!r}; choose train, valid or test")
        return getattr(self, name)

    def items(self) -> dict[str, str]:
        """Every item text seen in targets or histories, keyed by item id (or by text when ids are absent)."""
        texts: dict[str, str] = {}
        for rows in (self.train, self.valid, self.test):
            for row in rows:
                texts.setdefault(row.item or row.target, row.target)
                for h in row.history:
                    texts.setdefault(h.item or h.text, h.text)
        return texts
