"""The LaLonde data (probrep.data.lalonde, from the causaldata package) and a fast run of examples/lalonde.py.

Skipped only where causaldata is not importable; ``make test`` installs it (the ``causal`` extra), so CI runs it.
The numbers checked are the published ones: the Dehejia-Wahba NSW subsample has 185 treated and 260 control men
and a difference in mean 1978 earnings of $1,794 (Dehejia and Wahba 1999, table 3)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from probrep.data import lalonde

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "lalonde.py"


def test_a_missing_causaldata_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "causaldata", None)  # makes `import causaldata` raise ImportError
    with pytest.raises(ImportError, match=r"pip install 'probrep\[causal\]'"):
        lalonde.load_lalonde("experimental")


def test_an_unknown_sample_is_refused():
    with pytest.raises(ValueError, match="sample must be one of"):
        lalonde.load_lalonde("psid")


causaldata = pytest.importorskip("causaldata")


def test_the_samples():
    nsw = lalonde.load_lalonde("experimental")
    assert list(nsw.columns) == list(lalonde.COLUMNS) and len(nsw) == 445
    assert int(nsw.treat.sum()) == 185
    difference = nsw.re78[nsw.treat == 1].mean() - nsw.re78[nsw.treat == 0].mean()
    assert abs(difference - 1794.34) < 0.5
    obs = lalonde.load_lalonde("observational")
    assert len(obs) == 185 + 15_992 and int(obs.treat.sum()) == 185
    assert list(lalonde.load_lalonde("cps").treat.unique()) == [0.0]
    assert not obs.isna().any().any() and (obs[list(lalonde.EARNINGS)] >= 0).all().all()


def test_a_malformed_table_is_refused():
    frame = lalonde.load_lalonde("experimental")
    with pytest.raises(ValueError, match=r"lacks the columns \['re78'\]"):
        lalonde._validated(frame.drop(columns="re78"), "nsw_mixtape")
    bad = frame.copy()
    bad.loc[3, "marr"] = 2.0
    with pytest.raises(ValueError, match="'marr' should hold 0/1"):
        lalonde._validated(bad, "nsw_mixtape")
    bad = frame.copy()
    bad.loc[5, "re75"] = np.nan
    with pytest.raises(ValueError, match="'re75' is missing a value at row 5"):
        lalonde._validated(bad, "nsw_mixtape")


@pytest.fixture(scope="module")
def example():
    spec = importlib.util.spec_from_file_location("lalonde_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_example_pipeline_on_a_subsample(example):
    experiment = example.experimental_difference()
    assert abs(experiment["estimate"] - 1794.34) < 0.5 and 600 < experiment["se"] < 700
    data = example.observational_data(cps_rows=400, seed=0)
    assert len(data["treat"]) == 585 and int(data["treat"].sum()) == 185 and data["re78"].max() < 100  # $1000s
    scm = example.build_scm(data)
    assert set(scm.nodes) == {*example.COVARIATES, "treat", "re78"} and "tau" in scm.parameters
    assert scm.adjustment_set("treat", "re78") == set(example.COVARIATES)


def test_the_fitted_effect_is_least_squares_on_a_subsample(example):
    data = example.observational_data(cps_rows=400, seed=0)
    result = example.observational_effect(data, method="map", steps=3000, seed=0)
    # MAP under Normal(0, 10) priors on ~600 rows is least squares of re78 on [1, treat, covariates]
    design = np.column_stack([np.ones_like(data["treat"]), data["treat"], *(data[c] for c in example.COVARIATES)])
    ols = np.linalg.lstsq(design, data["re78"], rcond=None)[0][1] * example.DOLLARS
    # tau is the effect at each draw (the outcome is additive in treat, and effect() uses the same noise in both
    # arms, so its estimate is tau too)
    assert abs(result["tau_posterior_mean"] - ols) < 100, (result["tau_posterior_mean"], ols)
    assert result["estimate"] == pytest.approx(result["tau_posterior_mean"], abs=1.0)
