"""The names of the VAE family's members that runs train on dSprites and the setting each is known by: light
(no torch), so that the CLI can list them without loading the models."""

MODELS = ("vae", "betatcvae", "factorvae", "dipvae_i", "dipvae_ii", "annealedvae")
#: the setting each model is known by, in summaries and on the command line
WEIGHTS = {
    "vae": "beta",
    "betatcvae": "tc_weight",
    "factorvae": "gamma",
    "dipvae_i": "lambda_od",
    "dipvae_ii": "lambda_od",
    "annealedvae": "c_max",
}
#: every setting each model is built with (recorded in a run's summary, so that the run loads back as trained)
SETTINGS = {
    "vae": ("beta",),
    "betatcvae": ("tc_weight",),
    "factorvae": ("gamma",),
    "dipvae_i": ("lambda_od",),
    "dipvae_ii": ("lambda_od",),
    "annealedvae": ("c_max", "capacity_weight"),
}
