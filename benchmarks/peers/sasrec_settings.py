"""The SASRec settings both sides of a speed comparison take (no seqrec import: peers load this too)."""

from __future__ import annotations

import argparse

# (flag, type, default)
SETTINGS = (("--max-len", int, 200), ("--hidden", int, 64), ("--blocks", int, 2), ("--heads", int, 1),
            ("--dropout", float, 0.2), ("--batch-size", int, 128), ("--lr", float, 1e-3), ("--epochs", int, 200),
            ("--time-budget", float, 600.0), ("--threads", int, 0), ("--seed", int, 42))


def add_sasrec_arguments(parser: argparse.ArgumentParser) -> None:
    for flag, kind, default in SETTINGS:
        parser.add_argument(flag, type=kind, default=default)


def sasrec_argv(args: argparse.Namespace) -> list[str]:
    """The same settings as command-line arguments for a peer process."""
    return [part for flag, _, _ in SETTINGS for part in (flag, str(getattr(args, flag[2:].replace("-", "_"))))]
