"""Scores and the report of the disentanglement study (``benchmarks/disentanglement_study.py evaluate|report``).

Scoring. Every snapshot of a run's recipe from step 500 on gets the cheap scores that show the trend: MIG (10,000
points), DCI (LightGBM estimator, 6,667/3,333 points), reconstruction and active latents. The last step gets every
metric: MIG, DCI, SAP, modularity, IRS (observational and under do(shape=heart)), and the BetaVAE and FactorVAE
scores with ``--votes`` (default 1,000 training and 500 evaluation votes of 64 images: a tenth of
disentanglement_lib's 10,000 / 5,000, so a score's sampling standard error is about sqrt(s (1 - s) / 500) <= 0.022).
Reconstruction is E_q[-log p(x|z)] per image (nats, Bernoulli pixels, one draw of z) on 2,000 held-out images; a
latent is active when its mean KL to the prior exceeds 0.1 nats.

The report writes ``table.md`` (each recipe's runs at its last step) and ``long_run_table.md`` (the long runs of each
recipe at the last step every one of them reached, with each model's lead over the VAE in standard errors).

Scores go to ``runs/disentanglement_study/<run>/scores.json`` (one entry per step, written atomically after each
snapshot), so an interrupted ``evaluate`` redoes at most one snapshot.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np
import torch
from _machine import cpu_name
from disentanglement_study import (
    CONFIGS,
    LONG_SUFFIX,
    RECIPES,
    RESULTS,
    config_of,
    final_step,
    my_runs,
    recipe_name,
    recipe_of,
    run_dir,
    snapshot_path,
    snapshot_steps,
)

from probrep.data import DSprites
from probrep.experiments.evaluate import encoder_fn, evaluate, headline, labelled_traversals
from probrep.experiments.vae_dsprites import build_model, negative_elbo
from probrep.io.json_file import write_json
from probrep.training.rng import forked

CURVE_METRICS = ("mig", "dci")
LONG_METRICS = ("mig", "dci", "factor_vae")  # the long run's scores at every snapshot: the two the targets name
FINAL_METRICS = ("mig", "dci", "sap", "modularity", "irs", "irs_interventional", "factor_vae", "beta_vae")
#: dSprites ranges read off Locatello et al. 2019 (fig. 13/14: the spread over models and hyper-parameters)
LOCATELLO_RANGES = {"beta_vae": (0.7, 0.9), "factor_vae": (0.55, 0.85), "mig": (0.05, 0.35),
                    "dci_disentanglement": (0.05, 0.45)}  # fmt: skip

logger = logging.getLogger("disentanglement_study")


def load_snapshot(name: str, seed: int, step: int):
    """The model of one run at one step, from its snapshot (weights only: nothing in it can execute)."""
    config = {k: v for k, v in config_of(name).items() if k != "model"}
    model = build_model(config_of(name)["model"], 10, **config, arch=recipe_of(name)["arch"], dataset_size=737_280)
    state = torch.load(snapshot_path(name, seed, step), map_location="cpu", weights_only=True)
    model.load_state_dict(state["module"])
    return model.eval(), state


def reconstruction_and_activity(model, seed: int = 0) -> dict:
    ds = DSprites()
    rng = np.random.default_rng(10_000 + seed)
    x = torch.from_numpy(ds.render(ds.sample_factors(2000, rng)))
    with torch.no_grad(), forked(seed):
        loc, scale = model.posterior(x)
        z = loc + scale * torch.randn_like(loc)
        reconstruction = float(-model.likelihood_dist(z).log_prob(x).mean())
        nelbo = float(negative_elbo(model, x).mean())
        kl = model.kl_per_dimension(x).mean(0).numpy()
    return {"reconstruction_nats": reconstruction, "negative_elbo_nats": nelbo,
            "active_latents": int((kl > 0.1).sum()), "kl_per_dimension": [float(v) for v in kl]}  # fmt: skip


def score_snapshot(name: str, seed: int, step: int, final: bool, votes, threads: int) -> dict:
    model, state = load_snapshot(name, seed, step)
    started = time.perf_counter()
    metrics = FINAL_METRICS if final else LONG_METRICS if name.endswith(LONG_SUFFIX) else CURVE_METRICS
    result = evaluate(encoder_fn(model), metrics, vote_sizes=tuple(votes), seed=seed, progress=False,
                      dci_estimator="lightgbm", n_jobs=threads)  # fmt: skip
    entry = {"step": step, "final": final, "train_seconds_segment": state.get("train_seconds"),
             **headline(result.scores), **reconstruction_and_activity(model, seed),
             "metric_seconds": result.seconds, "score_seconds": round(time.perf_counter() - started, 1),
             "machine": cpu_name()}  # fmt: skip
    if "factor_vae" in result.scores:  # which factors it finds: a code without a shape latent scores 0 on shape
        entry["factor_vae_per_factor"] = result.scores["factor_vae"]["per_factor"]
    if "factor_vae" in result.scores or "beta_vae" in result.scores:
        entry["votes"] = list(votes)
    if final:
        entry["irs_matrix"] = np.nan_to_num(result.irs_matrix).tolist() if result.irs_matrix is not None else None
    return entry


def _scores_path(name: str, seed: int):
    return run_dir(name, seed) / "scores.json"


def keep_score(name: str, seed: int, step: int, entry: dict) -> None:
    """Write one snapshot's entry into the run's scores.json, read again just before, so that entries another process
    wrote while this one was scoring (minutes) are kept."""
    write_json({**read_scores(name, seed), str(step): entry}, _scores_path(name, seed))


def read_scores(name: str, seed: int) -> dict:
    path = _scores_path(name, seed)
    return json.loads(path.read_text()) if path.exists() else {}


def scores_with_base(name: str, seed: int) -> dict:
    """A run's scores by step; a long run's begin with its base run's (the same training up to the base run's steps,
    whose folder a long run copied without its scores)."""
    base = read_scores(name.removesuffix(LONG_SUFFIX), seed) if name.endswith(LONG_SUFFIX) else {}
    return {**base, **read_scores(name, seed)}


def curve_steps(name: str) -> list[int]:
    """The snapshots of a run that are scored: those from step 500 on."""
    return [s for s in snapshot_steps(name) if s >= 500]


def command_evaluate(args) -> None:
    if args.only:
        name, seed = args.only.split(":")
        runs = [(name, int(seed))]
    else:
        runs = my_runs(args.seeds, args.worker)
    for name, seed in runs:
        scores = read_scores(name, seed)
        long = name.endswith(LONG_SUFFIX)
        last = final_step(name, args.steps)
        # a long run that continued its base run shares the base run's scores up to there
        base = read_scores(name.removesuffix(LONG_SUFFIX), seed) if long else {}
        for step in [s for s in curve_steps(name) if s <= last and str(s) not in base]:
            final = step == last and not long
            done = scores.get(str(step))
            if not snapshot_path(name, seed, step).exists() or (done and (done["final"] or not final)):
                continue
            scores[str(step)] = score_snapshot(name, seed, step, final, args.votes, args.threads)
            keep_score(name, seed, step, scores[str(step)])
            logger.info("%s seed %d step %d: MIG %.3f, DCI %.3f", name, seed, step, scores[str(step)]["mig"],
                        scores[str(step)]["dci_disentanglement"])  # fmt: skip


# ------------------------------------------------------------------------------------------------------ report

#: what every recipe shares (RECIPES holds what differs)
COMMON_RECIPE = {"optimizer": "Adam", "latent_dim": 10, "likelihood": "Bernoulli",
                 "arch": "conv: Locatello et al.'s 4 conv + 256 fc; mlp: dense 4096-512-256 and back"}  # fmt: skip
TABLE_METRICS = ("beta_vae", "factor_vae", "mig", "dci_disentanglement", "dci_completeness", "sap", "modularity",
                 "irs", "reconstruction_nats", "active_latents")  # fmt: skip


def recorded_study() -> dict:
    """What the last report wrote (study.json): it stands in for the runs whose folders this checkout lacks (run
    folders are not committed), so that a report in a fresh clone keeps the study instead of overwriting it with
    the few runs trained there."""
    path = RESULTS / "study.json"
    return json.loads(path.read_text()) if path.exists() else {}


def _seeds_of(run_name: str, recorded_runs: dict) -> list[int]:
    """The seeds of a configuration (``vae``, or a long run's ``vae_long``) that ``recorded_runs`` holds (keys
    ``<name>-seed<k>``) or that have a folder here: any number of them."""
    prefix = f"{run_name}-seed"
    folders = run_dir(run_name, 0).parent.glob(prefix + "*")
    keys = {*recorded_runs, *(path.name for path in folders)}
    return sorted(int(key.removeprefix(prefix)) for key in keys
                  if key.startswith(prefix) and key.removeprefix(prefix).isdigit())  # fmt: skip


def _recorded_run(recorded: dict, key: str, name: str, steps: int | None) -> dict | None:
    """The recorded entry of a run, where its final scores are at the step this report scores (or it has none)."""
    run = recorded.get("runs", {}).get(key)
    if run is None or (run["final"] is not None and run["final"]["step"] != final_step(name, steps)):
        return None
    return _kept(run)


def _kept(run: dict) -> dict:
    """A run's entry read back from study.json: its curve keyed by step again, and marked as recorded."""
    return {**run, "curve": {int(step): scores for step, scores in run["curve"].items()}, "recorded": True}


def _run_entry(name: str, seed: int, scores: dict, metrics: tuple[str, ...]) -> dict:
    """What a report keeps of a run scored here: its configuration, recipe, the machine of its last score, and its
    curve (``metrics`` at every scored step)."""
    steps = sorted(scores, key=int)
    return {"model": name, "seed": seed, "recipe": recipe_name(name), "batch_size": recipe_of(name)["batch_size"],
            "machine": scores[steps[-1]].get("machine"),
            "curve": {int(k): {m: scores[k].get(m) for m in metrics} for k in steps}}  # fmt: skip


def collect(steps: int | None, recorded: dict) -> dict:
    """Every run's scores: the final entry (at ``steps``, default its recipe's last; if scored) and the curve.
    A run whose folder here holds no final scores (none at all, or a run still training) keeps its entry in
    ``recorded``, where it has one."""
    runs = {}
    seeds = {name: _seeds_of(name, recorded.get("runs", {})) for name in CONFIGS}
    for name, seed in sorted(((n, k) for n in CONFIGS for k in seeds[n]), key=lambda run: run[1]):  # seed-major
        scores = read_scores(name, seed)
        final = scores.get(str(final_step(name, steps)))
        final = final if final and final.get("final") else None
        if final is None and (run := _recorded_run(recorded, f"{name}-seed{seed}", name, steps)) is not None:
            runs[f"{name}-seed{seed}"] = run
            continue
        if not scores:
            continue
        runs[f"{name}-seed{seed}"] = {
            **_run_entry(name, seed, scores, ("mig", "dci_disentanglement", "reconstruction_nats")),
            "final": final,
            "train_seconds": train_seconds(name, seed),
        }
    return runs


def train_seconds(name: str, seed: int) -> float:
    """The seconds a run trained for, over every segment that kept a snapshot (each records its own)."""
    return round(sum((torch.load(p, map_location="cpu", weights_only=True).get("train_seconds") or 0.0)
                     for p in sorted((run_dir(name, seed) / "snapshots").glob("step-*.pt"))), 1)  # fmt: skip


def table(runs: dict) -> dict:
    out = {}
    for name in CONFIGS:
        finals = [r["final"] for r in runs.values() if r["model"] == name and r["final"]]
        if not finals:
            continue
        row = {"seeds": len(finals)}
        for metric in TABLE_METRICS:
            values = [f[metric] for f in finals if f.get(metric) is not None]
            if values:
                row[metric] = _over_seeds(values)
        out[name] = row
    return out


def _over_seeds(values: list[float]) -> dict:
    """A metric's mean, standard deviation (None for one seed) and values over the seeds."""
    v = np.array(values, dtype=float)
    return {"mean": float(v.mean()), "sd": float(v.std(ddof=1)) if len(v) > 1 else None, "values": v.tolist()}


#: the columns of the study's tables (the 3,000-step runs' and the long runs')
TABLE_COLUMNS = ("beta_vae", "factor_vae", "mig", "dci_disentanglement", "sap", "irs", "reconstruction_nats",
                 "active_latents")  # fmt: skip


def markdown(rows: dict) -> str:
    """One table per recipe, each with the ranges Locatello et al. report."""
    tables = []
    for recipe in dict.fromkeys(recipe_name(name) for name in rows):
        mine = {name: row for name, row in rows.items() if recipe_name(name) == recipe}
        r = RECIPES[recipe]
        tables.append(f"recipe {recipe}: {r['arch']} networks, batch {r['batch_size']}, Adam {r['lr']:g}, "
                      f"{r['steps']:,} steps\n\n" + _markdown_table(mine))  # fmt: skip
    return "\n".join(tables)


def _markdown_table(rows: dict) -> str:
    cols = TABLE_COLUMNS
    head = "| model | seeds | " + " | ".join(cols) + " |\n|---|---|" + "---|" * len(cols) + "\n"
    lines = []
    for name, row in rows.items():
        cells = []
        for c in cols:
            v = row.get(c)
            if v is None:
                cells.append("-")
            else:
                spread = f" ± {v['sd']:.2f}" if v["sd"] is not None else ""
                cells.append(f"{v['mean']:.1f}{spread}" if c == "reconstruction_nats" else f"{v['mean']:.2f}{spread}")
        lines.append(f"| {name} | {row['seeds']} | " + " | ".join(cells) + " |")
    ranges = " | ".join("{}-{}".format(*LOCATELLO_RANGES[c]) if c in LOCATELLO_RANGES else "" for c in cols)
    lines.append(f"| Locatello et al. 2019 (dSprites) | | {ranges} |")
    return head + "\n".join(lines) + "\n"


def _base(name: str) -> str:
    """A configuration's name without its recipe's suffix."""
    return name.removesuffix(f"_{recipe_name(name)}")


def curve_plot(runs: dict, path) -> None:
    from probrep.io.figures import pyplot, save_figure

    plt = pyplot()
    panels = (("mig", "MIG"), ("dci_disentanglement", "DCI disentanglement (LightGBM)"),
              ("reconstruction_nats", "reconstruction (nats/image)"))  # fmt: skip
    fig, axes = plt.subplots(1, len(panels), figsize=(15, 4.2), layout="constrained")
    # a model keeps its colour across recipes (the marker tells the recipe)
    bases = list(dict.fromkeys(_base(name) for name in CONFIGS))
    colours = {name: plt.cm.tab10.colors[bases.index(_base(name)) % 10] for name in CONFIGS}
    # a recipe's marker and what the title calls it
    markers = dict(zip(RECIPES, (("o", "circles"), ("s", "squares"), ("^", "triangles"), ("D", "diamonds"))))
    for ax, (metric, label) in zip(axes, panels):
        for run in runs.values():
            steps = sorted(run["curve"])
            values = [run["curve"][s][metric] for s in steps]
            # against images seen, so that recipes with other batch sizes share the axis
            ax.plot([s * run["batch_size"] for s in steps], values, "-" + markers[run["recipe"]][0], ms=3,
                    color=colours[run["model"]],
                    alpha=0.8, label=run["model"] if run["seed"] == 0 else None)  # fmt: skip
        ax.set_xscale("log")
        ax.set_xlabel("training images seen (steps x batch; log scale)")
        ax.set_title(label)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7, ncol=2)
    shown = {run["recipe"] for run in runs.values()}  # name only the recipes this plot has runs of
    shapes = "; ".join(f"{markers[name][1]}: {r['arch']} networks, batch {r['batch_size']}, lr {r['lr']:g}"
                       for name, r in RECIPES.items() if name in shown)  # fmt: skip
    fig.suptitle(f"disentanglement study on procedural dSprites: scores against training (one line per run; {shapes})")
    save_figure(fig, path)


#: what ``complete`` adds to a long run's snapshot (None at the snapshots it has not scored)
COMPLETE_METRICS = ("beta_vae", "dci_completeness", "sap", "modularity", "irs", "irs_interventional")


def long_runs(recorded: dict) -> dict:
    """Each long run's curve: its base run's scores where that run's folder is here (the same configuration and seed,
    so the same training up to the base run's steps), then its own (MIG, DCI, FactorVAE score, ...). A long run
    keeps its entry in ``recorded`` unless its folder here holds scores as far as the record's."""
    out = {}
    for name in CONFIGS:
        for seed in _seeds_of(name + LONG_SUFFIX, recorded.get("long_runs", {})):
            key = f"{name}{LONG_SUFFIX}-seed{seed}"
            own = read_scores(name + LONG_SUFFIX, seed)
            run = recorded.get("long_runs", {}).get(key)
            if run is not None and max(map(int, own), default=0) < max(map(int, run["curve"])):
                out[key] = _kept(run)
                continue
            if not own:
                continue
            scores = scores_with_base(name + LONG_SUFFIX, seed)
            out[key] = _run_entry(name, seed, scores, ("mig", "dci_disentanglement", "factor_vae",
                                                       "factor_vae_per_factor", "reconstruction_nats",
                                                       "active_latents", *COMPLETE_METRICS))  # fmt: skip
            out[key]["train_seconds"] = train_seconds(name + LONG_SUFFIX, seed)
    return out


LEAD_METRICS = ("mig", "factor_vae")  # the two scores the study's targets name


def long_run_table(longs: dict) -> dict:
    """Per recipe, the long runs' scores at the last step every one of them reached (so that every seed counts and
    every model is compared at the same step): each model's mean, seed spread and per-seed values, and each other
    model's lead over the recipe's VAE on MIG and the FactorVAE score, in standard errors of the difference of the
    means, ``(m - m_vae) / sqrt(sd^2 / n + sd_vae^2 / n_vae)``."""
    out = {}
    for recipe in dict.fromkeys(recipe_name(run["model"]) for run in longs.values()):
        mine = [run for run in longs.values() if recipe_name(run["model"]) == recipe]
        step = max(set.intersection(*(set(run["curve"]) for run in mine)), default=None)
        if step is None:
            continue
        models = {}
        for name in sorted({run["model"] for run in mine}, key=lambda name: (_base(name) != "vae", name)):
            runs = sorted((run for run in mine if run["model"] == name), key=lambda run: run["seed"])
            row = {"seeds": [run["seed"] for run in runs]}
            for metric in TABLE_COLUMNS:
                values = [run["curve"][step].get(metric) for run in runs]
                if None not in values:
                    row[metric] = _over_seeds(values)
            models[name] = row
        vae = models.get(next((name for name in models if _base(name) == "vae"), ""))
        for row in models.values():
            if vae is None or row is vae:
                continue
            row["lead_over_vae_in_standard_errors"] = {
                metric: _lead(row[metric], vae[metric]) for metric in LEAD_METRICS if metric in row and metric in vae
            }
        out[recipe] = {"step": step, "models": models}
    return out


def _lead(mine: dict, vae: dict) -> float | None:
    """How far ``mine``'s mean is above the VAE's, in standard errors of the difference (None without two seeds
    each)."""
    if mine["sd"] is None or vae["sd"] is None:
        return None
    error = (mine["sd"] ** 2 / len(mine["values"]) + vae["sd"] ** 2 / len(vae["values"])) ** 0.5
    return float((mine["mean"] - vae["mean"]) / error) if error > 0 else None


def long_run_markdown(table: dict) -> str:
    """The long runs' table, one per recipe, at the step every seed reached."""
    parts = []
    for recipe, entry in table.items():
        r = RECIPES[recipe]
        head = (f"recipe {recipe}: {r['arch']} networks, batch {r['batch_size']}, Adam {r['lr']:g}; long runs at "
                f"{entry['step']:,} steps, the last step every one of them reached (mean ± standard deviation over "
                "the seeds; lead: the mean above the VAE's, in standard errors of the difference)\n\n")  # fmt: skip
        cols = TABLE_COLUMNS
        lines = ["| model | seeds | " + " | ".join(cols) + " | MIG lead | FactorVAE score lead |",
                 "|---|---|" + "---|" * (len(cols) + 2)]  # fmt: skip
        for name, row in entry["models"].items():
            cells = [_cell(row.get(c), 1 if c in ("reconstruction_nats", "active_latents") else 3) for c in cols]
            lead = row.get("lead_over_vae_in_standard_errors", {})
            leads = ["-" if lead.get(m) is None else f"{lead[m]:+.1f}" for m in LEAD_METRICS]
            seeds = ", ".join(map(str, row["seeds"]))
            lines.append(f"| {name} | {len(row['seeds'])} ({seeds}) | " + " | ".join(cells + leads) + " |")
        parts.append(head + "\n".join(lines) + "\n")
    return "\n".join(parts)


def _cell(value: dict | None, digits: int) -> str:
    if value is None:
        return "-"
    spread = f" ± {value['sd']:.{digits}f}" if value["sd"] is not None else ""
    return f"{value['mean']:.{digits}f}{spread}"


def long_run_plot(runs: dict, path) -> None:
    """One panel per score, one line per long run: the trend the targets ask for when the budget falls short."""
    from probrep.io.figures import pyplot, save_figure

    plt = pyplot()
    panels = (("mig", "MIG", 0.2), ("factor_vae", "FactorVAE score", 0.7),
              ("dci_disentanglement", "DCI disentanglement (LightGBM)", None),
              ("reconstruction_nats", "reconstruction (nats/image)", None))  # fmt: skip
    fig, axes = plt.subplots(1, len(panels), figsize=(18, 4.6), layout="constrained")
    # one colour per configuration, one line style per seed: a second seed reads as the first's twin. tab20's strong
    # colours, then their light twins, without its greys (14, 15: the target lines are grey)
    configs = list(dict.fromkeys(run["model"] for run in runs.values()))
    palette = [plt.get_cmap("tab20").colors[i] for i in (*range(0, 20, 2), *range(1, 20, 2)) if i not in (14, 15)]
    colours = {c: palette[i % len(palette)] for i, c in enumerate(configs)}
    styles = ("-o", "--s", ":^", "-.v", "-D")  # seeds 0-4, the study's; a later seed reuses a style
    for ax, (metric, label, target) in zip(axes, panels):
        for key, run in runs.items():
            steps = [s for s in sorted(run["curve"]) if run["curve"][s].get(metric) is not None]
            batch = run.get("batch_size") or recipe_of(run["model"])["batch_size"]
            ax.plot([s * batch for s in steps], [run["curve"][s][metric] for s in steps],
                    styles[int(run["seed"]) % len(styles)], ms=3, color=colours[run["model"]],
                    label=f"{key} (batch {batch})")  # fmt: skip
        if target is not None:
            ax.axhline(target, color="grey", ls="--", lw=1, label="issue 22 target (MIG 0.2, FactorVAE score 0.7)")
        ax.set_xscale("log")
        ax.set_xlabel("training images seen (steps x batch; log scale)")
        ax.tick_params(axis="x", which="minor", labelbottom=False)  # matplotlib labels minor ticks on short spans
        ax.set_title(label)
        ax.grid(alpha=0.3)
    fig.legend(*axes[0].get_legend_handles_labels(), loc="outside lower center", ncols=4, fontsize=8)
    fig.suptitle(
        "the longest runs: scores against training (a continued run's base run up to its recipe's steps, "
        "then the continuation)"
    )
    save_figure(fig, path)


def traversal_figure(name: str, seed: int, step: int, final: dict, path) -> None:
    if not snapshot_path(name, seed, step).exists():
        logger.info("no snapshot of %s seed %d at step %d here: %s kept as it is", name, seed, step, path.name)
        return
    model, _ = load_snapshot(name, seed, step)
    title = f"{name} (seed {seed}, step {step}): traversals -2.5..2.5, MIG {final['mig']:.3f}"
    labelled_traversals(model, path, title, seed=seed)


def confirmed_traversals(drawn: set) -> None:
    """Traversals of the snapshots scored with the full protocol (``confirm``: the ones the README singles out),
    except those in ``drawn`` (a long run's last step, drawn under its own name)."""
    path = RESULTS / "full_protocol.json"
    for key, entry in (json.loads(path.read_text()) if path.exists() else {}).items():
        try:
            snapshot = _parse_snapshot(f"{entry['name']}:{entry['seed']}:{entry['step']}")
        except (KeyError, SystemExit):
            logger.warning("full_protocol.json: %s names no snapshot of this study; no traversals drawn", key)
            continue
        if snapshot not in drawn:
            traversal_figure(*snapshot, entry, RESULTS / f"traversals_{key}.png")


def refuse_to_drop(recorded: dict, runs: dict) -> None:
    """Stop before study.json loses a recorded run that this checkout cannot score again."""
    dropped = sorted(set(recorded.get("runs", {})) - set(runs))
    if dropped:
        raise SystemExit(
            f"report would drop {len(dropped)} recorded run(s) ({', '.join(dropped[:4])}, ...) from study.json: their "
            "folders are not here and their final scores are not at the step asked for, or their configuration has "
            "left CONFIGS. Run the report without --steps, or where their run folders are."
        )


def machine_note(recorded: dict, runs: dict) -> str:
    """Where the runs ran: the recorded note where runs are kept from it (a run scored since carries its own
    "machine"), else this machine."""
    if any(run.get("recorded") for run in runs.values()) and recorded.get("machine"):
        since = "; a run scored since carries its own machine"
        return recorded["machine"] if since in recorded["machine"] else recorded["machine"] + since
    return f"{cpu_name()}, 2 cores, 1 torch thread per run"


def command_report(args) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    recorded = recorded_study()
    runs = collect(args.steps, recorded)
    refuse_to_drop(recorded, runs)
    rows = table(runs)
    best = {}
    for name in CONFIGS:
        done = [r for r in runs.values() if r["model"] == name and r["final"]]
        if done:
            top = max(done, key=lambda r: r["final"]["mig"])
            best[name] = f"{name}-seed{top['seed']}"
            step = final_step(name, args.steps)
            traversal_figure(name, top["seed"], step, top["final"], RESULTS / f"traversals_{name}.png")
    curve_plot(runs, RESULTS / "scores_against_steps.png")
    longs = long_runs(recorded)
    if longs:
        long_run_plot(longs, RESULTS / "long_run_scores_against_steps.png")
        drawn = set()
        for run in longs.values():
            last = max(run["curve"])
            name = run["model"] + LONG_SUFFIX
            suffix = f"-seed{run['seed']}" if run["seed"] else ""  # seed 0 keeps the name the README links to
            traversal_figure(name, run["seed"], last, run["curve"][last], RESULTS / f"traversals_{name}{suffix}.png")
            drawn.add((name, run["seed"], last))
        confirmed_traversals(drawn)
    report = {
        "machine": machine_note(recorded, {**runs, **longs}),
        "recipe": {**COMMON_RECIPE, "recipes": RECIPES, "configs": CONFIGS},
        "protocol": __doc__,
        "table": rows,
        "best_run_by_mig": best,
        "runs": runs,
        "long_runs": longs,
        "long_run_table": long_run_table(longs),
        "locatello_2019_ranges": LOCATELLO_RANGES,
    }
    write_json(report, RESULTS / "study.json")
    (RESULTS / "table.md").write_text(markdown(rows))
    (RESULTS / "long_run_table.md").write_text(long_run_markdown(report["long_run_table"]))
    print(markdown(rows))
    print(long_run_markdown(report["long_run_table"]))
    print(f"wrote {RESULTS}")


# -------------------------------------------------------------------------------------------------------- ship

SHIP = 4  # the VAE and the three regularised configurations with the highest mean MIG
#: the recipe whose runs are shipped: one recipe, so that the demo compares like with like, and the one whose
#: networks are small (764,000 parameters, 1.5 MB in float16; the mlp recipe's are 4.5 million, 8.9 MB)
SHIP_RECIPE = "conv"


def _best_of_table(steps: int | None) -> list[tuple[str, int, int, dict, dict]]:
    """(run name, seed, step, scores of that run, scores over its seeds) of the VAE and the regularised configurations
    of SHIP_RECIPE with the highest mean MIG, each at its best seed, from the last report."""
    report = json.loads((RESULTS / "study.json").read_text())
    rows = report["table"]
    shippable = [n for n in rows if recipe_name(n) == SHIP_RECIPE]
    ranked = sorted((n for n in shippable if n != "vae"), key=lambda n: -rows[n]["mig"]["mean"])
    chosen = (["vae"] if "vae" in rows else []) + ranked[: SHIP - 1]
    out = []
    for name in chosen:
        run = report["runs"][report["best_run_by_mig"][name]]
        if run["final"]["step"] != final_step(name, steps):
            raise SystemExit(f"the report scored {name} at step {run['final']['step']}, not {final_step(name, steps)}:"
                             f" run 'report --steps {final_step(name, steps)}' first")  # fmt: skip
        out.append((name, run["seed"], run["final"]["step"], run["final"], rows[name]))
    return out


def _parse_snapshot(spec: str) -> tuple[str, int, int]:
    """``NAME:SEED:STEP`` as ``(name, seed, step)``, checked against the configurations and their snapshot steps."""
    try:
        name, seed, step = spec.split(":")
        seed, step = int(seed), int(step)
    except ValueError:
        raise SystemExit(f"--snapshots {spec!r}: expected NAME:SEED:STEP, e.g. vae_long:0:20000") from None
    if name.removesuffix(LONG_SUFFIX) not in CONFIGS:
        raise SystemExit(f"--snapshots {spec!r}: no configuration {name.removesuffix(LONG_SUFFIX)!r}")
    if step not in snapshot_steps(name):
        raise SystemExit(f"--snapshots {spec!r}: {name} keeps snapshots at steps {snapshot_steps(name)}")
    return name, seed, step


def _snapshots(specs: list[str]) -> list[tuple[str, int, int, dict, dict]]:
    """The same for snapshots named ``NAME:SEED:STEP`` (a long run's, say), from their runs' scores: one seed each."""
    out = []
    for spec in specs:
        name, seed, step = _parse_snapshot(spec)
        scores = scores_with_base(name, seed).get(str(step))
        if scores is None:
            raise SystemExit(f"--snapshots {spec!r}: not scored; run 'evaluate --only {name}:{seed} --steps {step}'")
        one_seed = {"seeds": 1, **{k: {"mean": scores[k], "sd": None, "values": [scores[k]]}
                                   for k in TABLE_METRICS if scores.get(k) is not None}}  # fmt: skip
        out.append((name, seed, step, scores, one_seed))
    return out


def command_ship(args) -> None:
    """Export the best run (by MIG at the last step) of the VAE and of the best regularised configurations, or the
    snapshots ``--snapshots`` names, to probrep/pretrained/ as float16 weights, with a manifest that states the
    recipe, the commit and the scores. The manifest lists exactly what this call ships: every name and weights file
    is checked before anything is written, and weights files the new manifest does not list are removed."""
    import subprocess

    from probrep.experiments import pretrained

    chosen = _snapshots(args.snapshots) if args.snapshots else _best_of_table(args.steps)
    keys = [name.removesuffix(LONG_SUFFIX) for name, *_ in chosen]
    if len(set(keys)) < len(keys):
        raise SystemExit(f"ship: two snapshots would ship under one name ({keys}); ship one per configuration")
    for name, seed, step, *_ in chosen:
        if not snapshot_path(name, seed, step).exists():
            raise SystemExit(f"ship needs the weights of {name} seed {seed} at step {step} "
                             f"({snapshot_path(name, seed, step)}): train that run here first")  # fmt: skip
    root = Path(__file__).resolve().parent.parent  # the repository

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], capture_output=True, text=True, cwd=root).stdout.strip()

    head = git("rev-parse", "--short", "HEAD")
    models = {}
    study_script = Path(__file__).with_name("disentanglement_study.py").relative_to(root).as_posix()
    for key, (name, seed, step, scores, over_seeds) in zip(keys, chosen):
        # the commit that added the run's configuration
        added = git("log", "-S", f'"{key}": {{', "--reverse", "--format=%h", "--", study_script)
        how = f"train --only {name}:{seed}" if args.snapshots else "train"
        model, _ = load_snapshot(name, seed, step)
        recipe = recipe_of(name)
        models[key] = {
            "model": config_of(name)["model"], "settings": {k: v for k, v in config_of(name).items() if k != "model"},
            "latent_dim": 10, "arch": recipe["arch"], "seed": seed, "steps": step,
            "recipe": {"name": recipe_name(name), **COMMON_RECIPE,
                       **{k: v for k, v in recipe.items() if k not in ("steps", "eval_steps", "long_steps")}},
            "made_by": f"benchmarks/disentanglement_study.py {how} (configuration added at commit "
                       f"{added.splitlines()[0] if added else 'unknown'}), exported by its 'ship' command at commit "
                       f"{head}",
            "scores_of_this_run": {k: scores.get(k) for k in TABLE_METRICS if k in scores},
            "scores_over_seeds": over_seeds,
            **pretrained.export(model, pretrained.WEIGHTS / f"{key}.pt"),
        }  # fmt: skip
    write_json({"format": 1, "models": models}, pretrained.MANIFEST)
    for stale in sorted(set(pretrained.WEIGHTS.glob("*.pt")) - {pretrained.WEIGHTS / f"{k}.pt" for k in models}):
        stale.unlink()
    print(f"shipped {list(models)} to {pretrained.WEIGHTS} ({sum(m['bytes'] for m in models.values()) / 1e6:.1f} MB)")


#: disentanglement_lib's FactorVAE score protocol: 10,000 training and 5,000 evaluation votes of 64 images each
FULL_PROTOCOL_VOTES = (10_000, 5_000)


def full_protocol_scores(name: str, seed: int, step: int, votes=None, threads: int = 1) -> dict:
    """MIG (10,000 points) and the FactorVAE score on ``votes`` (default :data:`FULL_PROTOCOL_VOTES`) of one
    snapshot, with the evaluation seed of its study scores: the two scores the target names, the FactorVAE score at
    ten times the study's votes."""
    votes = FULL_PROTOCOL_VOTES if votes is None else votes
    model, _ = load_snapshot(name, seed, step)
    started = time.perf_counter()
    result = evaluate(encoder_fn(model), ("mig", "factor_vae"), vote_sizes=tuple(votes), seed=seed, progress=False,
                      n_jobs=threads)  # fmt: skip
    score = result.scores["factor_vae"]["score"]
    return {"name": name, "seed": seed, "step": step, "mig": headline(result.scores)["mig"], "factor_vae": score,
            "factor_vae_standard_error": float(np.sqrt(score * (1 - score) / votes[1])),
            "factor_vae_per_factor": result.scores["factor_vae"]["per_factor"], "votes": list(votes),
            "score_seconds": round(time.perf_counter() - started, 1), "machine": cpu_name()}  # fmt: skip


def _snapshots_here(specs: list[str] | None, command: str, long_only: bool = False) -> list[tuple[str, int, int]]:
    """``--snapshots`` as ``(name, seed, step)``, each checked (a long run's, with ``long_only``, and on disk) before
    any is scored."""
    if not specs:
        raise SystemExit(f"{command} needs --snapshots NAME:SEED:STEP ...")
    chosen = [_parse_snapshot(spec) for spec in specs]
    for name, seed, step in chosen:
        if long_only and not name.endswith(LONG_SUFFIX):
            raise SystemExit(f"{command}: {name} is not a long run (its last step already gets every metric)")
        if not snapshot_path(name, seed, step).exists():
            raise SystemExit(f"{command}: no snapshot of {name} seed {seed} at step {step} here")
    return chosen


def command_complete(args) -> None:
    """Score long-run snapshots (``--snapshots``) with every metric the study's last steps get (the BetaVAE score,
    SAP, modularity and both IRS besides MIG, DCI and the FactorVAE score, at ``--votes``), in place of the three that
    a long run's snapshots get, so that the long runs' table at a common step has every column. Each entry replaces
    the snapshot's in the run's ``scores.json`` as soon as it is scored (the three it had come out the same: the
    same code, images and votes)."""
    for name, seed, step in _snapshots_here(args.snapshots, "complete", long_only=True):
        before = scores_with_base(name, seed).get(str(step), {})
        if before.get("final"):
            logger.info("%s seed %d step %d already has every metric", name, seed, step)
            continue
        entry = score_snapshot(name, seed, step, True, args.votes, args.threads)
        changed = [m for m in ("mig", "dci_disentanglement", "factor_vae") if m in before and before[m] != entry[m]]
        if changed:  # other votes, or other code: say so rather than replace a curve's numbers in silence
            logger.warning("%s seed %d step %d: %s came out %s, against %s before (votes %s)", name, seed, step,
                           changed, [entry[m] for m in changed], [before[m] for m in changed],
                           before.get("votes", "not recorded"))  # fmt: skip
        keep_score(name, seed, step, entry)
        logger.info("%s seed %d step %d, every metric: MIG %.3f, FactorVAE score %.3f, BetaVAE score %.3f", name,
                    seed, step, *(entry[m] for m in ("mig", "factor_vae", "beta_vae")))  # fmt: skip


def command_confirm(args) -> None:
    """Score the snapshots ``--snapshots`` names with the FactorVAE score's full protocol (its standard error
    sqrt(s (1 - s) / 5,000) <= 0.007, against <= 0.022 at the study's 500 votes), so that a snapshot near a target is
    told apart from the scatter of 500 votes. Each goes into ``RESULTS/full_protocol.json`` under
    ``NAME-seedK-step-N`` as soon as it is scored; the study's own scores are left as they are."""
    chosen = _snapshots_here(args.snapshots, "confirm")
    path = RESULTS / "full_protocol.json"
    for name, seed, step in chosen:
        entry = full_protocol_scores(name, seed, step, threads=args.threads)
        everything = json.loads(path.read_text()) if path.exists() else {}
        everything[f"{name}-seed{seed}-step-{step}"] = entry
        RESULTS.mkdir(parents=True, exist_ok=True)
        write_json(everything, path)
        logger.info("%s seed %d step %d, full protocol: MIG %.3f, FactorVAE score %.3f (+- %.3f)", name, seed, step,
                    entry["mig"], entry["factor_vae"], entry["factor_vae_standard_error"])  # fmt: skip
