"""probrep: probabilistic programming for learning representations without labels. The packages below hold
the concepts (README, "Layout"); importing this one loads nothing heavy."""

__version__ = "0.1.0"
