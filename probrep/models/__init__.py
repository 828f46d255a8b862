"""Generative models as Pyro programs (a model and its guide side by side)."""

from probrep.models.air.model import AIR
from probrep.models.gqn.model import GQN
from probrep.models.vae import VAE, BetaTCVAE, FactorVAE
from probrep.models.vae_regularised import DIPVAE, AnnealedVAE

__all__ = ["VAE", "BetaTCVAE", "FactorVAE", "DIPVAE", "AnnealedVAE", "AIR", "GQN"]
