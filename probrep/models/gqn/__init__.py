"""The Generative Query Network (Eslami et al. 2018): representation network, ConvDRAW generator, model."""

from probrep.models.gqn.model import GQN

__all__ = ["GQN"]
