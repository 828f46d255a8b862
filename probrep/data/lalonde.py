"""The LaLonde (1986) job-training data, as shipped by the ``causaldata`` package (nothing is downloaded).

The National Supported Work Demonstration (NSW) randomised men into a job-training programme; the
Dehejia-Wahba (1999) subsample with 1974 earnings has 185 treated and 260 control men (``"experimental"``).
LaLonde's question: can an observational study recover the experiment's answer? Its observational sample keeps
the NSW treated men and replaces the experimental controls with 15,992 men from the Current Population Survey
(``"observational"``; ``"cps"`` alone is the comparison group).

    from probrep.data.lalonde import load_lalonde
    nsw = load_lalonde("experimental")     # pandas DataFrame, 445 rows
    obs = load_lalonde("observational")    # NSW treated + CPS controls, 16,177 rows

Columns (every sample): ``treat`` (1 = in the programme), ``age`` (years), ``educ`` (years of schooling),
``black``, ``hisp``, ``marr``, ``nodegree`` (0/1 indicators) and ``re74``, ``re75``, ``re78`` (real earnings in
1974, 1975 and 1978, US dollars). Needs the optional extra: ``pip install 'probrep[causal]'``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["COLUMNS", "BINARY", "EARNINGS", "SAMPLES", "load_lalonde"]

COLUMNS = ("treat", "age", "educ", "black", "hisp", "marr", "nodegree", "re74", "re75", "re78")
BINARY = ("treat", "black", "hisp", "marr", "nodegree")
EARNINGS = ("re74", "re75", "re78")
SAMPLES = ("experimental", "observational", "cps")
#: rows of each table as causaldata 0.1.5 ships it; a different count means a different table
_ROWS = {"nsw_mixtape": 445, "cps_mixtape": 15_992}

_MISSING = (
    "the LaLonde data ships in the optional package 'causaldata' (0.1.5), which is not installed: "
    "pip install 'probrep[causal]'  (or: pip install causaldata==0.1.5)"
)


def _table(name: str) -> Any:
    try:
        import causaldata
    except ImportError as exc:
        raise ImportError(_MISSING) from exc
    module = getattr(causaldata, name, None)
    if module is None or not hasattr(module, "load_pandas"):
        raise ImportError(f"causaldata {getattr(causaldata, '__version__', '?')} has no table {name!r}; {_MISSING}")
    return _validated(module.load_pandas().data, name)


def _validated(frame: Any, name: str) -> Any:
    """The table's ten columns as float64, checked: present, finite, indicators in {0, 1}, earnings >= 0."""
    import numpy as np

    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"causaldata table {name!r} lacks the columns {missing}; it has {list(frame.columns)}")
    out = frame.loc[:, list(COLUMNS)].astype("float64").reset_index(drop=True)
    for column in COLUMNS:
        values = out[column].to_numpy()
        bad = np.flatnonzero(~np.isfinite(values))
        if bad.size:
            raise ValueError(f"causaldata table {name!r}: column {column!r} is missing a value at row {bad[0]}")
        if column in BINARY and not np.isin(values, (0.0, 1.0)).all():
            raise ValueError(f"causaldata table {name!r}: column {column!r} should hold 0/1 only")
        if column in EARNINGS and (values < 0).any():
            raise ValueError(f"causaldata table {name!r}: column {column!r} has negative earnings")
    if name in _ROWS and len(out) != _ROWS[name]:
        raise ValueError(f"causaldata table {name!r} has {len(out)} rows, expected {_ROWS[name]} (causaldata 0.1.5)")
    return out


def load_lalonde(sample: str = "experimental") -> Any:
    """One LaLonde sample as a pandas DataFrame with the columns :data:`COLUMNS` (float64), see the module.

    ``sample``: ``"experimental"`` (the NSW treated and controls), ``"observational"`` (NSW treated and CPS
    controls) or ``"cps"`` (the CPS comparison group alone)."""
    if sample not in SAMPLES:
        raise ValueError(f"sample must be one of {SAMPLES}, got {sample!r}")
    if sample == "experimental":
        frame = _table("nsw_mixtape")
        if set(frame["treat"].unique()) != {0.0, 1.0}:
            raise ValueError("causaldata table 'nsw_mixtape' should hold treated and control men")
        return frame
    cps = _table("cps_mixtape")
    if (cps["treat"] != 0).any():
        raise ValueError("causaldata table 'cps_mixtape' should hold untreated men only")
    if sample == "cps":
        return cps
    import pandas as pd

    nsw = _table("nsw_mixtape")
    treated = nsw[nsw["treat"] == 1]
    return pd.concat([treated, cps], ignore_index=True)
