"""Position alignment of the transformer encoders."""

from __future__ import annotations

import torch

from seqrec.models import SASRecConfig
from seqrec.models.base import build_model


def test_left_aligned_positions_make_every_prefix_its_own_sequence() -> None:
    torch.manual_seed(0)
    model = build_model(SASRecConfig(max_len=10, hidden=16, blocks=2, dropout=0.0, positions="left"), 30).eval()
    full = torch.tensor([[0, 0, 3, 4, 5, 6]])
    with torch.no_grad():
        hidden = model.encode(full)
        for end in range(3, 6):  # the prefix ending at slot `end`, re-padded on its own
            prefix = torch.tensor([[0] * (5 - end) + full[0, 2 : end + 1].tolist()])
            assert torch.allclose(model.encode(prefix)[0, -1], hidden[0, end], atol=1e-5)


def test_right_aligned_positions_count_back_from_the_newest_item() -> None:
    torch.manual_seed(0)
    model = build_model(SASRecConfig(max_len=10, hidden=16, blocks=1, dropout=0.0, positions="right"), 30).eval()
    with torch.no_grad():
        short, padded = model.encode(torch.tensor([[3, 4]])), model.encode(torch.tensor([[0, 0, 3, 4]]))
        assert torch.allclose(short[0, -1], padded[0, -1], atol=1e-5)  # padding width does not matter
        longer = model.encode(torch.tensor([[3, 4, 5]]))
        assert not torch.allclose(longer[0, 1], short[0, 1], atol=1e-3)  # item 4 is one step further back
