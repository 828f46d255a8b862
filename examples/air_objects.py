"""Attend-Infer-Repeat on procedural multi-object scenes: count, locate and describe objects without labels.

    python examples/air_objects.py [--steps 400] [--out runs/air_example]

Part 1 writes the model and guide into svi.fit by hand on the small 24x24 tier (a minute or two on a CPU):
the data, the Pyro program pair, the TraceGraph ELBO with neural baselines on their own learning rate, and
what the guide infers (counts and windows). Counting needs thousands of steps; this short run only shows the
moving parts. Part 2 points to the full run (`train_air`, behind `probrep train air`), which logs count
accuracy while training and draws the inferred windows.
"""

import argparse

import numpy as np
import torch

from probrep.data.objects import MultiObjects
from probrep.inference import svi
from probrep.inference.svi import TraceGraphELBO
from probrep.models.air import diagnostics
from probrep.models.air.model import AIR
from probrep.models.air.priors import count_prior


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--out", default="runs/air_example")
    args = parser.parse_args()

    # Scenes with 0 to 2 objects and their ground truth in the model's own convention.
    generator = MultiObjects.tier("small")  # 24x24; MultiObjects() gives the 50x50 scenes
    train = generator.sample(4000, seed=0)
    test = generator.sample(200, seed=1)
    first = train.z_where[0].astype(np.float64).round(2).tolist()
    print(f"{generator}: counts {np.bincount(train.counts)}, first scene's z_where (s, x, y) {first}")

    # The model: up to 3 objects, a truncated geometric count prior P(n) ∝ 0.01^n.
    torch.manual_seed(0)
    air = AIR(
        generator.image_size,
        window_size=16,
        num_steps=3,
        z_pres_prior=0.01,
        scale_prior=(generator.model_scale, 0.2),
        rnn_hidden=128,
        encoder_hidden=100,
        decoder_hidden=100,
        z_what_dim=20,
        # each step reads what earlier steps left unexplained (the default); "image" is the original guide,
        # which keeps empty windows switched on at Adam 1e-4 (see the README)
        guide_input="residual",
    )
    print("prior over the count 0..3:", count_prior(0.01, 3).round(4).tolist())

    # Fit: Adam 1e-4 (here 1e-3 for a short demo), baselines on their own learning rate.
    fit = svi.fit(
        air,
        train.images,
        steps=args.steps,
        batch_size=64,
        lr=1e-3,
        param_options=air.baseline_param_options(1e-2),
        elbo=TraceGraphELBO(),
        device="cpu",
        seed=0,
        checkpoint_dir=f"{args.out}/checkpoints",
        checkpoint_every=200,
    )
    print(f"negative ELBO per image: {fit.losses[:20].mean() / 64:.1f} -> {fit.losses[-20:].mean() / 64:.1f}")

    # What the guide sees: counts and windows (pixel boxes), greedily.
    images, counts = test.tensors()
    accuracy, confusion = diagnostics.count_accuracy(air, images, counts)
    print(f"held-out count accuracy after {fit.steps} steps: {accuracy:.3f}; confusion (rows true):")
    print(confusion)
    inference = air.infer(images[:3])
    for i in range(3):
        on = inference.z_pres[i] > 0
        print(
            f"scene {i}: true count {int(counts[i])}, inferred {int(inference.counts[i])}, windows",
            air.boxes(inference.z_where[i][on]).round().tolist(),
        )

    # The full run with curves and pictures: probrep.experiments.air.train_air (`probrep train air`), e.g.
    #   train_air("runs/air", steps=5000)  ->  count_accuracy.png, reconstructions.png, summary.json


if __name__ == "__main__":
    main()
