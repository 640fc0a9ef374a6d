"""Loss terms: one protocol, combined the same way for every term; a new term is a class and nothing else."""

from __future__ import annotations

import pytest
import torch

from helpers import TINY_EVAL, ranking_trainer, tiny_model_config, tiny_train_config
from seqrec.data.splits import SplitData
from seqrec.errors import ConfigError
from seqrec.models.base import build_model
from seqrec.models.losses import LossSum
from seqrec.models.terms import LossTerm, Step, mean_term
from seqrec.training.trainer import combine_terms


class UserVectorNorm(LossTerm):
    """A toy term: the mean squared norm of the last hidden state, active in epochs 1-2 only."""

    name = "norm_loss"
    weight = 0.5
    last_epoch = 2

    def forward(self, step: Step) -> LossSum:
        return mean_term(step.hidden[:, -1].pow(2).sum(-1).mean())


def test_a_new_term_trains_logs_by_name_and_follows_its_phase(tiny_data: SplitData) -> None:
    torch.manual_seed(0)
    model = build_model(tiny_model_config("sasrec"), tiny_data.num_items)
    trainer = ranking_trainer(model, tiny_data, tiny_train_config(epochs=3, patience=0), TINY_EVAL,
                              terms=[UserVectorNorm()], progress=False)
    history = trainer.fit().history
    assert ["norm_loss" in record for record in history] == [True, True, False]
    assert history[0]["norm_loss"] > 0


def test_a_zero_weight_term_leaves_the_trajectory_unchanged(tiny_data: SplitData) -> None:
    def trained(terms: list[LossTerm]) -> dict[str, torch.Tensor]:
        torch.manual_seed(0)
        model = build_model(tiny_model_config("sasrec", dropout=0.0), tiny_data.num_items)
        ranking_trainer(model, tiny_data, tiny_train_config(epochs=2), TINY_EVAL, terms=terms,
                        progress=False).fit()
        return model.state_dict()

    silent = UserVectorNorm()
    silent.weight = 0.0
    plain, with_term = trained([]), trained([silent])
    for name in plain:
        torch.testing.assert_close(with_term[name], plain[name], msg=name)


def test_combine_scales_every_term_by_its_global_count() -> None:
    """Two processes: this one holds sums (6, 1.5) over counts (3, 1); the global sums are (10, 2.5) over (4, 2)."""
    term = UserVectorNorm()
    totals = torch.tensor([6.0, 1.5], requires_grad=True)
    loss, logged = combine_terms(totals, torch.tensor([3.0, 1.0]), torch.tensor([10.0, 2.5, 4.0, 2.0]), [term],
                                 world=2)
    assert loss.item() == pytest.approx(6.0 * 2 / 4 + 0.5 * 1.5 * 2 / 2)
    assert logged["norm_loss"].item() == pytest.approx(2.5 / 2)
    loss.backward()
    assert totals.grad.tolist() == pytest.approx([2 / 4, 0.5 * 2 / 2])


def test_a_convex_term_takes_its_weight_from_the_recommendation_loss() -> None:
    term = UserVectorNorm()
    term.convex, term.weight = True, 0.25
    loss, _ = combine_terms(torch.tensor([6.0, 1.0]), torch.tensor([3.0, 2.0]), torch.tensor([6.0, 1.0, 3.0, 2.0]),
                            [term])
    assert loss.item() == pytest.approx(0.75 * 2.0 + 0.25 * 0.5)


def test_term_names_must_be_distinct(tiny_data: SplitData) -> None:
    model = build_model(tiny_model_config("sasrec"), tiny_data.num_items)
    with pytest.raises(ConfigError, match="distinct names"):
        ranking_trainer(model, tiny_data, tiny_train_config(), TINY_EVAL, terms=[UserVectorNorm(), UserVectorNorm()],
                        progress=False)
