"""The names of the VAE family's members that runs train on dSprites and the settings each is built with: light
(no torch), so that the CLI can list them without loading the models."""

#: every setting each model is built with (recorded in a run's summary, so that the run loads back as trained);
#: the first is the one it is known by
SETTINGS = {
    "vae": ("beta",),
    "betatcvae": ("tc_weight", "tc_estimator"),
    "factorvae": ("gamma",),
    "dipvae_i": ("lambda_od",),
    "dipvae_ii": ("lambda_od",),
    "annealedvae": ("c_max", "capacity_weight"),
}
MODELS = tuple(SETTINGS)
#: the setting each model is known by, in summaries and on the command line
WEIGHTS = {model: names[0] for model, names in SETTINGS.items()}
