"""Sequential encoders. Every model implements the seam in `base.SequentialEncoder`."""

from seqrec.models.base import MODEL_REGISTRY, ModelConfig, SequentialEncoder, build_model
from seqrec.models.bert4rec import BERT4Rec, BERT4RecConfig
from seqrec.models.duorec import DuoRec, DuoRecConfig
from seqrec.models.gru4rec import GRU4Rec, GRU4RecConfig
from seqrec.models.sasrec import SASRec, SASRecConfig

__all__ = [
    "MODEL_REGISTRY", "ModelConfig", "SequentialEncoder", "build_model",
    "SASRec", "SASRecConfig", "BERT4Rec", "BERT4RecConfig", "GRU4Rec", "GRU4RecConfig",
    "DuoRec", "DuoRecConfig",
]
