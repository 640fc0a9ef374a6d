"""Profile distillation: user profiles (text) -> embeddings -> an auxiliary reconstruction loss on the encoder."""

from seqrec.distill.config import DistillConfig
from seqrec.distill.guide import ProfileGuide
from seqrec.distill.store import ProfileTable, load_profile_table, read_profile_json, write_profile_json

__all__ = ["DistillConfig", "ProfileGuide", "ProfileTable", "load_profile_table", "read_profile_json",
           "write_profile_json"]
