"""Write a causal model as equations, intervene on it, and ask a counterfactual question.

    python examples/scm_interventions.py [--out runs/scm]

Story: Z (ability) drives X (study hours) and Y (score); the score also depends on study hours, non-linearly, and
more so for able students.
We compare the observed relation of X and Y (confounded by Z) with the effect of setting X by intervention,
then ask for one student: "what would the score have been with 2 more hours of study?"
"""

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from probrep.causal import SCM  # noqa: E402
from probrep.io.figures import save_figure  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="runs/scm")
    args = parser.parse_args()

    scm = SCM.from_equations(
        {
            "Z": "Normal(0, 1)",
            "X": "3 + Z + Normal(0, 0.5)",  # hours of study: able students study more
            # score: diminishing returns in hours, amplified by ability
            "Y": "2*Z + 4*sqrt(softplus(X)) * (1 + 0.3*Z) + Normal(0, 1)",
        }
    )
    print(scm)
    observed = scm.sample(50_000, seed=0)
    slope = np.polyfit(np.asarray(observed["X"]), np.asarray(observed["Y"]), 1)[0]
    print(f"observational slope of Y on X (confounded by Z): {slope:.2f}")

    effects = {}
    for hours in (2.0, 3.0, 4.0):
        effects[hours] = float(np.mean(scm.do({"X": hours}).sample(50_000, seed=1)["Y"]))
    print("interventional means E[Y | do(X = x)]:", {k: round(v, 2) for k, v in effects.items()})
    print(f"causal effect of one more hour around x = 3: {(effects[4.0] - effects[2.0]) / 2:.2f}")

    student = {"Z": 0.5, "X": 3.2, "Y": 9.0}
    cf = scm.counterfactual(student, do={"X": "X + 2"}, n=1)
    print(f"student {student}: with 2 more hours the score would have been {cf['counterfactual']['Y'][0]:.2f}")

    # a student whose ability we did not observe: the counterfactual is uncertain (NUTS over the noise)
    partial = scm.counterfactual({"X": 3.2, "Y": 9.0}, do={"X": "X + 2"}, n=2000, num_warmup=500)
    cf_y = partial["counterfactual"]["Y"]
    print(f"without observing Z: counterfactual score {cf_y.mean():.2f} +- {cf_y.std():.2f}")

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    axes[0].scatter(observed["X"][:2000], observed["Y"][:2000], s=3, alpha=0.4, label="observed")
    xs = np.array(sorted(effects))
    axes[0].plot(xs, [effects[x] for x in xs], "o-", color="C3", label="E[Y | do(X=x)]")
    axes[0].set_xlabel("X (hours)")
    axes[0].set_ylabel("Y (score)")
    axes[0].legend()
    axes[1].hist(cf_y, bins=50, color="C2", alpha=0.8)
    axes[1].axvline(9.0, color="k", ls="--", label="factual score")
    axes[1].set_title("counterfactual score, Z unobserved")
    axes[1].legend()
    path = save_figure(fig, Path(args.out) / "scm_interventions.png")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
