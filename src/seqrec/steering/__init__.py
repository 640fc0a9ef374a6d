"""Interpret and steer recommenders through sparse autoencoders on their user vectors."""

from seqrec.steering.controls import RecommendingRun, Steering
from seqrec.steering.interventions import (
    AddToLatents,
    Intervention,
    ScaleLatents,
    SetLatents,
    build_intervention,
    register_intervention,
)
from seqrec.steering.pipeline import popsteer, popsteer_run, probe, train_sae
from seqrec.steering.popsteer import NeuronStats, PopularityReweighting, PopularitySteering
from seqrec.steering.sae import SAEConfig, TopKSAE
from seqrec.steering.sae_run import SAERun, load_sae_run
from seqrec.steering.steered import SteeredEncoder
from seqrec.steering.steered_run import SteeredRun, load_steered_run
from seqrec.steering.tuning import LatentController

__all__ = ["popsteer", "popsteer_run", "probe", "train_sae", "NeuronStats", "PopularityReweighting",
           "PopularitySteering", "SAEConfig", "TopKSAE", "SAERun", "load_sae_run", "SteeredEncoder", "SteeredRun",
           "load_steered_run", "RecommendingRun", "Steering", "Intervention", "ScaleLatents", "AddToLatents",
           "SetLatents", "LatentController", "build_intervention", "register_intervention"]
