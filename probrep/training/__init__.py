"""The training loop every gradient-fitted objective shares (SVI, score matching, critics), and its checkpoints.

It knows no probability: it minimises a loss over parameters. It sits below ``models``, ``divergences`` and
``inference`` so that all of them may use it."""
