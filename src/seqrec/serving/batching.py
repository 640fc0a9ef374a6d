"""Scoring off the event loop, one request at a time or batched: requests that arrive while the model is busy
(or within `window` seconds) and share their options are scored in one call."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Hashable
from concurrent.futures import Executor
from typing import Any, Generic, TypeVar

Key = TypeVar("Key", bound=Hashable)
Handle = Callable[[Any, list[Any]], list[Any]]  # (key, inputs) -> one result or exception per input


class Direct:
    """Each request scored on its own in the executor (no batching)."""

    batching = False

    def __init__(self, handle: Handle, executor: Executor) -> None:
        self.handle, self.executor = handle, executor

    async def submit(self, key: Hashable, value: Any) -> Any:
        (result,) = await asyncio.get_running_loop().run_in_executor(self.executor, self.handle, key, [value])
        if isinstance(result, BaseException):
            raise result
        return result


class MicroBatcher(Generic[Key]):
    """Collects requests while a batch is being scored (and for `window` seconds after the first one, if > 0),
    groups them by key and scores each group with one call of `handle` in the executor, at most `max_batch`
    inputs per call. At low load a request is scored at once; under load, batches grow by themselves.
    """

    batching = True

    def __init__(self, handle: Handle, executor: Executor, window: float = 0.0, max_batch: int = 64) -> None:
        self.handle, self.executor = handle, executor
        self.window, self.max_batch = window, max(1, max_batch)
        self._pending: list[tuple[Key, Any, asyncio.Future]] = []
        self._drain: asyncio.Task | None = None

    async def submit(self, key: Key, value: Any) -> Any:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._pending.append((key, value, future))
        if self._drain is None or self._drain.done() or self._drain.get_loop() is not loop:
            self._drain = loop.create_task(self._run())
        return await future

    async def _run(self) -> None:
        """Score what is pending, batch after batch, until nothing is left."""
        while self._pending:
            if self.window > 0:
                await asyncio.sleep(self.window)
            groups: dict[Key, list[tuple[Any, asyncio.Future]]] = {}
            for key, value, future in self._pending:
                groups.setdefault(key, []).append((value, future))
            self._pending = []
            for key, entries in groups.items():
                for start in range(0, len(entries), self.max_batch):
                    await self._score(key, entries[start:start + self.max_batch])

    async def _score(self, key: Key, entries: list[tuple[Any, asyncio.Future]]) -> None:
        live = [(value, future) for value, future in entries if not future.done()]  # skip cancelled requests
        if not live:
            return
        loop = asyncio.get_running_loop()
        try:
            results = await loop.run_in_executor(self.executor, self.handle, key, [value for value, _ in live])
            if len(results) != len(live):
                raise RuntimeError(f"scoring returned {len(results)} results for {len(live)} requests")
        except Exception as exc:  # noqa: BLE001 - handed to each waiting request, which answers it
            results = [exc] * len(live)
        for (_, future), result in zip(live, results, strict=True):
            if future.done():
                continue
            if isinstance(result, BaseException):
                future.set_exception(result)
            else:
                future.set_result(result)
