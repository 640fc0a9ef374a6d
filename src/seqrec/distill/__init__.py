"""Profile distillation: user profiles (text) -> embeddings -> an auxiliary reconstruction loss on the encoder."""

from seqrec.distill.config import DistillConfig
from seqrec.distill.embed import embed_profiles
from seqrec.distill.guide import ProfileGuide
from seqrec.distill.llm_profiles import write_llm_profiles
from seqrec.distill.profile_text import write_profile_file, write_profiles
from seqrec.distill.store import ProfileTable, load_profile_table, read_profile_json, write_profile_json

__all__ = ["DistillConfig", "ProfileGuide", "ProfileTable", "embed_profiles", "load_profile_table",
           "read_profile_json", "write_llm_profiles", "write_profile_file", "write_profile_json", "write_profiles"]
