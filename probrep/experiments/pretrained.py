"""The weights probrep ships: VAE-family models trained on procedural dSprites by the disentanglement study
(``benchmarks/disentanglement_study.py ship``), so that the demo and users can look at a trained representation
without training one.

``probrep/pretrained/manifest.json`` lists each model: its family member and settings, the recipe, the seed and
steps it was trained for, the commit that added its configuration to the study script, the scores the study
measured, and the SHA-256 of its weights file. The weights are the encoder's and decoder's parameters in float16
(a FactorVAE's discriminator, only needed for training, is not shipped) and load with
``torch.load(weights_only=True)``: nothing in them can execute code, and a file whose hash differs from the
manifest's is refused.

    from probrep.experiments import pretrained
    pretrained.available()  # ['beta_tcvae_locatello', 'factor_vae_locatello', 'vae_locatello']
    model, info = pretrained.load("beta_tcvae_locatello")  # an eval-mode model on the CPU, and its manifest entry
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

WEIGHTS = Path(__file__).resolve().parent.parent / "pretrained"
MANIFEST = WEIGHTS / "manifest.json"
#: parameters a shipped model may lack: they serve training only
TRAINING_ONLY = ("discriminator.",)


def manifest() -> dict[str, Any]:
    """The shipped models by name (empty when none are shipped)."""
    if not MANIFEST.is_file():
        return {}
    try:
        data = json.loads(MANIFEST.read_bytes())
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise ValueError(f"{MANIFEST} is not valid JSON: {type(exc).__name__}: {exc}") from None
    if not isinstance(data, dict) or data.get("format") != 1 or not isinstance(data.get("models"), dict):
        raise ValueError(f"{MANIFEST}: not a pretrained-weights manifest (expected format 1 with 'models')")
    return data["models"]


#: what :func:`load` reads from a model's manifest entry, and its type
_ENTRY = {"file": str, "sha256": str, "model": str, "latent_dim": int, "arch": str, "settings": dict}


def available() -> list[str]:
    return list(manifest())


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def load(name: str, device: str = "cpu"):
    """``(model, info)``: the shipped model ``name`` in eval mode on ``device``, and its manifest entry."""
    from probrep.experiments.vae_dsprites import build_model
    from probrep.training import checkpoint

    models = manifest()
    if name not in models:
        raise ValueError(f"no shipped model {name!r}: available {sorted(models) or 'none'}")
    info = models[name]
    wrong = [key for key, kind in _ENTRY.items() if not isinstance(info, dict) or not isinstance(info.get(key), kind)]
    if wrong or Path(info["file"]).name != info["file"]:  # the weights lie in WEIGHTS, not in a path around it
        needs = ", ".join(f"{key} ({kind.__name__})" for key, kind in _ENTRY.items())
        raise ValueError(f"{MANIFEST}: the entry of {name!r} needs {needs}, the file a plain name; wrong: "
                         f"{wrong or ['file']}")  # fmt: skip
    path = WEIGHTS / info["file"]
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: reinstall probrep or rerun the study's 'ship' command")
    if sha256(path) != info["sha256"]:
        raise ValueError(f"{path}: SHA-256 differs from the manifest's; the file is corrupt or was replaced")
    state = checkpoint.load(path)  # weights_only; a ValueError naming the file for anything torch refuses
    if not isinstance(state, dict):
        raise ValueError(f"{path} holds no parameters (a {type(state).__name__}, not a state dict)")
    try:
        model = build_model(info["model"], info["latent_dim"], **info["settings"], arch=info["arch"],
                            dataset_size=737_280)  # fmt: skip
        missing, unexpected = model.load_state_dict(state, strict=False)
    except (TypeError, ValueError, RuntimeError) as exc:  # settings the model lacks, other shapes, no tensors
        raise ValueError(f"{path} does not fit the manifest's {info['model']!r}: {exc}") from exc
    missing = [k for k in missing if not k.startswith(TRAINING_ONLY)]
    if missing or unexpected:
        raise ValueError(f"{path} does not fit {info['model']}: missing {missing}, unexpected {unexpected}")
    return model.to(device).eval(), info


def export(model, path: Path) -> dict[str, Any]:
    """Write ``model``'s parameters (training-only ones left out) as float16, atomically; returns the file's
    name, size, SHA-256 and parameter count for the manifest."""
    import torch

    from probrep.io.files import atomic_open

    state = {k: v.detach().to("cpu", torch.float16).clone() for k, v in model.state_dict().items()
             if not k.startswith(TRAINING_ONLY)}  # fmt: skip
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(path) as handle:
        torch.save(state, handle)
    return {"file": path.name, "bytes": path.stat().st_size, "sha256": sha256(path),
            "parameters": int(sum(v.numel() for v in state.values()))}  # fmt: skip
