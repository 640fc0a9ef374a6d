"""Interpret and steer recommenders through sparse autoencoders on their user vectors."""

from seqrec.steering.pipeline import popsteer, probe, train_sae
from seqrec.steering.popsteer import NeuronStats, PopularityReweighting, PopularitySteering
from seqrec.steering.sae import SAEConfig, TopKSAE
from seqrec.steering.sae_run import SAERun, load_sae_run
from seqrec.steering.steered import SteeredEncoder

__all__ = ["popsteer", "probe", "train_sae", "NeuronStats", "PopularityReweighting", "PopularitySteering",
           "SAEConfig", "TopKSAE", "SAERun", "load_sae_run", "SteeredEncoder"]
