"""seqrec: train, evaluate, interpret, steer and enrich sequential recommenders."""

from seqrec import datasets
from seqrec import search as search  # callable: seqrec.search(config, space, trials=20)
from seqrec.api import load, resume, run_experiment, train
from seqrec.data.config import DataConfig
from seqrec.errors import SeqrecError
from seqrec.evaluation.evaluate import evaluate
from seqrec.experiment import ExperimentConfig
from seqrec.models import BERT4RecConfig, GRU4RecConfig, SASRecConfig
from seqrec.training.config import EvalConfig, TrainConfig

__version__ = "0.1.0"
__all__ = [
    "datasets", "search", "load", "resume", "run_experiment", "train", "evaluate", "SeqrecError", "ExperimentConfig",
    "DataConfig", "TrainConfig", "EvalConfig", "SASRecConfig", "BERT4RecConfig", "GRU4RecConfig",
]
