"""The one loop and its callbacks: selection and early stopping, warm-up, phases, time budget, state, cleanup."""

from __future__ import annotations

import pytest
import torch

from seqrec.training.callbacks import EarlyStopping, TimeBudget
from seqrec.training.loop import Callback, Loop


def scripted(scores: list[float | None], key: str = "valid") -> callable:
    """An epoch function that sets a weight to the epoch number and reports the scripted score."""
    module = torch.nn.Linear(1, 1, bias=False)

    def run_epoch(epoch: int) -> dict:
        with torch.no_grad():
            module.weight.fill_(epoch)
        score = scores[epoch - 1]
        return {"epoch": epoch} | ({} if score is None else {key: score})

    run_epoch.module = module  # type: ignore[attr-defined]
    return run_epoch


@pytest.mark.parametrize(("mode", "scores", "best"), [
    ("max", [0.1, 0.3, 0.2, 0.25], 2),
    ("min", [0.5, 0.3, 0.4, 0.1], 4),
    ("max", [0.2, 0.2, 0.2, 0.2], 1),  # a tie is not an improvement
])
def test_the_best_epoch_is_selected_and_restored(mode: str, scores: list[float], best: int) -> None:
    run = scripted(scores)
    selection = EarlyStopping(run.module, "valid", mode)
    Loop(4, [selection]).run(run)
    assert selection.best_epoch == best
    assert run.module.weight.item() == best  # the best epoch's weights are back


def test_patience_waits_out_the_warm_up() -> None:
    scores = [0.5, 0.1, 0.1, 0.1, 0.1, 0.1, 0.6, 0.1]  # an early peak, a dip, then the real improvement
    plain = Loop(8, [EarlyStopping(scripted(scores).module, "valid", patience=2)])
    plain.run(scripted(scores))
    assert plain.epoch == 3  # stops in the dip
    run = scripted(scores)
    selection = EarlyStopping(run.module, "valid", patience=2, warmup=6)
    warm = Loop(8, [selection])
    warm.run(run)
    assert warm.epoch == 8 and selection.best_epoch == 7


def test_unscored_epochs_count_towards_patience_by_their_number() -> None:
    run = scripted([None, 0.5, None, 0.4, None, 0.3, None, 0.2])  # validated every second epoch
    selection = EarlyStopping(run.module, "valid", patience=4)
    loop = Loop(8, [selection])
    loop.run(run)
    assert loop.epoch == 6 and selection.best_epoch == 2


def test_restart_starts_selection_afresh_and_start_from_sets_a_baseline() -> None:
    run = scripted([0.9, 0.2, 0.3])
    selection = EarlyStopping(run.module, "valid")
    loop = Loop(3, [selection])

    class Phase(Callback):
        def on_epoch_end(self, loop: Loop, record: dict) -> None:
            if loop.epoch == 1:
                selection.restart()

    loop.callbacks.append(Phase())
    loop.run(run)
    assert selection.best_epoch == 3  # epoch 1's 0.9 belonged to the previous phase
    baseline = EarlyStopping(run.module, "valid")
    baseline.start_from(0.5, {"valid": 0.5})
    Loop(3, [baseline]).run(scripted([0.1, 0.4, 0.2]))
    assert baseline.best_epoch == 0


def test_time_budget_stops_together_and_never_after_the_last_epoch() -> None:
    votes: list[bool] = []

    def agree(flag: bool) -> bool:
        votes.append(flag)
        return flag

    loop = Loop(5, [TimeBudget(1e-9, agree)])
    loop.run(lambda epoch: {"epoch": epoch})
    assert loop.epoch == 1 and loop.stop and votes == [True]
    free = Loop(3, [TimeBudget(0.0, agree)])
    free.run(lambda epoch: {"epoch": epoch})
    assert free.epoch == 3 and not free.stop


def test_state_dict_round_trip_continues_where_it_stopped() -> None:
    scores = [0.1, 0.4, 0.3, 0.2, 0.5]
    whole_run = scripted(scores)
    whole = EarlyStopping(whole_run.module, "valid", patience=3)
    Loop(5, [whole]).run(whole_run)

    first_run = scripted(scores)
    first = Loop(2, [EarlyStopping(first_run.module, "valid", patience=3)])
    first.run(first_run)
    state = first.state_dict()
    second_run = scripted(scores)
    selection = EarlyStopping(second_run.module, "valid", patience=3)
    second = Loop(5, [selection])
    second.load_state_dict(state)
    second.run(second_run)
    assert [r["epoch"] for r in second.history] == [1, 2, 3, 4, 5]
    assert selection.state_dict()["best_epoch"] == whole.best_epoch == 5


def test_callbacks_are_closed_after_an_error_and_fit_end_is_skipped() -> None:
    events: list[str] = []

    class Watch(Callback):
        def on_fit_end(self, loop: Loop) -> None:
            events.append("end")

        def close(self) -> None:
            events.append("close")

    def failing(epoch: int) -> dict:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        Loop(3, [Watch()]).run(failing)
    assert events == ["close"]
