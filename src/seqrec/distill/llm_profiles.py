"""LLM user profiles: prompt a chat model with each user's training history and append the replies to a JSONL file.

Histories longer than the context are split in halves recursively until each part fits with the reply; each part
is profiled, then the part profiles are merged by extra "aggregate these sequential profiles" calls (`agg_after`).
Rows are appended per batch, so an interrupted run keeps its work and a rerun skips the users already written.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from seqrec.data.splits import SplitData
from seqrec.distill.chat import ChatBackend
from seqrec.distill.profile_io import ProfileReport, ProfileRow, append_profile_texts, written_users
from seqrec.distill.profile_text import users_with_history
from seqrec.distill.prompts import aggregate_messages, aspect_prompts, item_lines, profile_messages
from seqrec.errors import ConfigError, SeqrecError

CHAT_OVERHEAD = 32  # tokens a chat template adds around the messages (role markers), kept free in the context
PART_OVERHEAD = 12  # tokens of the "Profile of part k of n" header per merged profile


class HistoryProfiler:
    """Profiles histories (lists of item lines, oldest first) with one system prompt, splitting long ones."""

    def __init__(self, backend: ChatBackend, system: str, max_new_tokens: int = 300, batch_size: int = 8) -> None:
        if max_new_tokens < 1 or batch_size < 1:
            raise ConfigError("max_new_tokens and batch_size must be >= 1")
        self.backend, self.system = backend, system
        self.max_new_tokens, self.batch_size = max_new_tokens, batch_size
        self.calls = 0
        self._line_tokens: dict[str, int] = {}
        self.line_budget = self._free(profile_messages(system, []))  # tokens left for history lines
        self.merge_budget = self._free(aggregate_messages(system, []))  # tokens left for part profiles

    def _free(self, messages: list[dict[str, str]]) -> int:
        used = sum(self.backend.count_tokens(m["content"]) for m in messages) + CHAT_OVERHEAD
        return self.backend.context_length - self.max_new_tokens - used

    def __call__(self, histories: list[list[str]]) -> list[str]:
        """One profile per history.  -> [H] texts"""
        parts = [self.split(h) for h in histories]  # [H][chunks] line lists
        flat = [profile_messages(self.system, chunk) for chunks in parts for chunk in chunks]
        replies = iter(self.generate(flat))
        texts = [[next(replies) for _ in chunks] for chunks in parts]
        return self.merge(texts)

    def generate(self, conversations: list[list[dict[str, str]]]) -> list[str]:
        out = []
        for start in range(0, len(conversations), self.batch_size):
            batch = conversations[start:start + self.batch_size]
            out.extend(self.backend.generate(batch, self.max_new_tokens))
            self.calls += len(batch)
        return out

    def tokens(self, line: str) -> int:
        if line not in self._line_tokens:
            self._line_tokens[line] = self.backend.count_tokens(line) + 1  # + newline
        return self._line_tokens[line]

    def split(self, lines: list[str]) -> list[list[str]]:
        """The history in consecutive parts that each fit the context, by recursive halving."""
        if self.line_budget <= 0:
            raise SeqrecError(f"the context of {self.backend.context_length} tokens cannot hold the prompt and "
                              f"{self.max_new_tokens} new tokens; lower --max-new-tokens")
        cumulative = np.concatenate([[0], np.cumsum([self.tokens(line) for line in lines])])

        def halves(lo: int, hi: int) -> list[list[str]]:
            if cumulative[hi] - cumulative[lo] <= self.line_budget or hi - lo <= 1:
                if cumulative[hi] - cumulative[lo] > self.line_budget:
                    raise SeqrecError(f"one history line needs {cumulative[hi] - cumulative[lo]} tokens, more "
                                      f"than the {self.line_budget} the context leaves; lower --max-new-tokens")
                return [lines[lo:hi]]
            mid = (lo + hi) // 2
            return halves(lo, mid) + halves(mid, hi)

        return halves(0, len(lines))

    def merge(self, texts: list[list[str]]) -> list[str]:
        """Merge each history's part profiles (oldest first) until one is left, batching merges across users."""
        while any(len(t) > 1 for t in texts):
            conversations, slots = [], []
            grouped = [self._pack(t) if len(t) > 1 else [t] for t in texts]
            for i, groups in enumerate(grouped):
                for g, group in enumerate(groups):
                    if len(group) > 1:
                        conversations.append(aggregate_messages(self.system, group))
                        slots.append((i, g))
            if not conversations:
                raise SeqrecError(f"the context of {self.backend.context_length} tokens cannot hold two part "
                                  "profiles to merge; lower --max-new-tokens")
            merged = [[g[0] for g in groups] for groups in grouped]
            for (i, g), reply in zip(slots, self.generate(conversations), strict=True):
                merged[i][g] = reply
            texts = merged
        return [t[0] for t in texts]

    def _pack(self, parts: list[str]) -> list[list[str]]:
        """Consecutive groups of part profiles whose merge prompt fits the context (greedy)."""
        groups: list[list[str]] = [[]]
        used = 0
        for part in parts:
            need = self.backend.count_tokens(part) + PART_OVERHEAD
            if groups[-1] and used + need > self.merge_budget:
                groups.append([])
                used = 0
            groups[-1].append(part)
            used += need
        return groups


def write_llm_profiles(data: SplitData, backend: ChatBackend, path: str | Path, users: np.ndarray | None = None,
                       prompt: str = "short", max_new_tokens: int = 300, batch_size: int = 8,
                       progress: bool = True) -> ProfileReport:
    """Profile each user (internal ids, default all) with training interactions; append rows to `path` (JSONL).

    One row per user and aspect (`prompt`: short, long or aspects). Rows already in the file are kept and skipped.
    """
    start = time.perf_counter()
    chosen = users_with_history(data, users)
    report = ProfileReport(0, 0, (data.num_users if users is None else len(users)) - len(chosen), 0, 0, 0.0)
    external, lengths = data.user_map.external, data.train.lengths
    todo: dict[str, list[int]] = {}  # aspect -> users still to write, shortest histories first (little padding)
    for aspect in aspect_prompts(prompt):
        done = written_users(path, aspect)
        todo[aspect] = sorted((int(u) for u in chosen if external[u] not in done), key=lambda u: (lengths[u], u))
        report.cached += len(chosen) - len(todo[aspect])
    lines = item_lines(data.catalog, ["", *data.item_map.external])
    with progress_bar(sum(len(t) for t in todo.values()), progress) as advance:
        for aspect, system in aspect_prompts(prompt).items():
            profiler = HistoryProfiler(backend, system, max_new_tokens, batch_size)
            for b in range(0, len(todo[aspect]), batch_size):
                batch = todo[aspect][b:b + batch_size]
                texts = profiler([[lines[i] for i in data.train[u]] for u in batch])
                rows = [ProfileRow(external[u], aspect, text) for u, text in zip(batch, texts, strict=True)]
                report.written += append_profile_texts(path, rows)
                report.empty += sum(not text for text in texts)
                advance(len(batch))
            report.calls += profiler.calls
    report.seconds = time.perf_counter() - start
    return report


@contextlib.contextmanager
def progress_bar(total: int, enabled: bool = True) -> Iterator[Callable[[int], None]]:
    """A Rich progress bar with ETA over `total` rows; yields `advance(n)`."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn, TimeRemainingColumn

    columns = ("profiles", BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), "eta", TimeRemainingColumn())
    with Progress(*columns, disable=not enabled or total == 0) as bar:
        task = bar.add_task("profiles", total=total)
        yield lambda n: bar.advance(task, n)
