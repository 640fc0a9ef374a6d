"""RecTools SASRec on a file exported by `benchmarks/speed.py`; runs inside the peer's own virtualenv.

Trains one epoch at a time (`fit_partial`) until the epoch or time budget is spent, validates after each epoch
with full ranking of the catalogue (viewed items filtered), and prints one JSON object per line:
{"epoch", "train_seconds", "eval_seconds", "valid_NDCG@10", "valid_HR@10"} and finally {"peak_rss_mb"}.
"""

from __future__ import annotations

import argparse
import json
import resource
import time

import numpy as np
import pandas as pd
import torch
from pytorch_lightning import Trainer
from rectools import Columns
from rectools.dataset import Dataset
from rectools.models import SASRecModel
from rectools.models.nn.item_net import IdEmbeddingsItemNet
from sasrec_settings import add_sasrec_arguments


def ranking_metrics(reco: pd.DataFrame, targets: pd.DataFrame, k: int = 10) -> dict[str, float]:
    """NDCG@k and HR@k with one target per user (users without a hit score 0)."""
    hits = reco.merge(targets, on=[Columns.User, Columns.Item])
    ranks = hits.set_index(Columns.User)[Columns.Rank].reindex(targets[Columns.User]).to_numpy()  # 1-based
    found = ~np.isnan(ranks) & (ranks <= k)
    ndcg = np.zeros(len(ranks))
    ndcg[found] = 1.0 / np.log2(ranks[found] + 1.0)
    return {f"valid_NDCG@{k}": float(ndcg.mean()), f"valid_HR@{k}": float(found.mean())}


def cpu_trainer() -> Trainer:
    return Trainer(max_epochs=1, min_epochs=1, accelerator="auto", devices=1, enable_progress_bar=False,
                   enable_model_summary=False, logger=False, enable_checkpointing=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", required=True, help="CSV user,item,order of training interactions")
    parser.add_argument("--valid", required=True, help="CSV user,item of validation targets")
    add_sasrec_arguments(parser)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    train = pd.read_csv(args.train)
    interactions = pd.DataFrame({
        Columns.User: train["user"], Columns.Item: train["item"], Columns.Weight: 1.0,
        Columns.Datetime: pd.to_datetime(train["order"], unit="s"),
    })
    dataset = Dataset.construct(interactions)
    valid = pd.read_csv(args.valid).rename(columns={"user": Columns.User, "item": Columns.Item})
    model = SASRecModel(
        n_blocks=args.blocks, n_heads=args.heads, n_factors=args.hidden, dropout_rate=args.dropout,
        session_max_len=args.max_len, loss="softmax", lr=args.lr, batch_size=args.batch_size, epochs=1,
        item_net_block_types=(IdEmbeddingsItemNet,), get_trainer_func=cpu_trainer,
        recommend_batch_size=1024,
    )
    trained = 0.0
    for epoch in range(1, args.epochs + 1):
        start = time.perf_counter()
        model.fit_partial(dataset, min_epochs=1, max_epochs=1)
        seconds = time.perf_counter() - start
        trained += seconds
        start = time.perf_counter()
        reco = model.recommend(users=valid[Columns.User].unique(), dataset=dataset, k=10, filter_viewed=True)
        record = {"epoch": epoch, "train_seconds": seconds, "eval_seconds": time.perf_counter() - start,
                  **ranking_metrics(reco, valid)}
        print(json.dumps(record), flush=True)
        if args.time_budget and trained >= args.time_budget:
            break
    print(json.dumps({"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}), flush=True)


if __name__ == "__main__":
    main()
