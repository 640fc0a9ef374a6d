"""Synthetic data with planted structure (placeholder: being written)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class SyntheticConfig:
    num_users: int = 2000
    num_items: int = 500
    seed: int = 0
