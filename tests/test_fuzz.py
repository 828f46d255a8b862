"""Fuzzing the loaders (issue 19, section 4): generated and adversarial inputs either load identically twice or
are refused with the documented error type, within a time bound, and never run a payload.

===================================  =============================  ===========================================
entry point                          accepted input                 refused input: the only allowed outcome
===================================  =============================  ===========================================
parse_equation(node, text)           same ParsedEquation twice      EquationError
SCM.from_equations(mapping)          same nodes, edges and noise    EquationError
SCM.from_dict(data)                  same nodes, edges and noise    ValueError (EquationError is one)
SCM.load(path)                       same nodes, edges and noise    ValueError naming the file
probrep scm sample / graph (main())  exit 0, the same CSV twice     exit 2, "probrep: error:" or usage; no traceback
checkpoint.load(path)                same state twice               ValueError naming the file; no canary
load_rooms(path)                     same arrays twice              ValueError naming the file; no canary
posteriordb.load, .reference_draws   same arrays twice              ValueError naming the file
vae_dsprites.load_run(folder)        (no checkpoint here fits)      ValueError naming summary.json or checkpoint
pretrained.manifest() / load(name)   same weights twice             ValueError; FileNotFoundError; no canary
===================================  =============================  ===========================================

Each call runs under a watchdog (:func:`outcome`) besides hypothesis' per-example deadline: a hang fails its
example instead of stalling CI. Pickles carry payloads that would create a canary file, which must never appear.
Examples are derandomized (CI is reproducible); ``PROBREP_FUZZ_SCALE`` multiplies every example count and
``PROBREP_FUZZ_SEED`` draws other examples, for ``benchmarks/fuzz_long.py``.
"""

import contextlib
import io
import json
import os
import pickle
import random
import signal
import zipfile
from collections import Counter

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from probrep.causal import SCM, EquationError
from probrep.causal.distributions import FAMILIES
from probrep.causal.parse import FUNCTIONS, parse_equation
from probrep.cli.main import main as cli
from probrep.data import posteriordb as pdb
from probrep.data.rooms import Rooms, load_rooms, save_rooms
from probrep.experiments import pretrained
from probrep.experiments.vae_dsprites import build_model, load_run
from probrep.experiments.vae_family import MODELS
from probrep.training import checkpoint as ckpt

# random bytes read as a pickle name any protocol number, and torch warns about each
pytestmark = pytest.mark.filterwarnings("ignore:Detected pickle protocol:UserWarning")
SCALE = float(os.environ.get("PROBREP_FUZZ_SCALE", "1"))
SEEDED = "PROBREP_FUZZ_SEED" in os.environ  # the long run passes --hypothesis-seed and wants fresh examples
WATCHDOG_S = 10.0  # a hang, not a slow machine: every accepted or refused input here takes milliseconds
#: examples run per property and how many of them were accepted (read by benchmarks/fuzz_long.py)
COUNTS, ACCEPTED = Counter(), Counter()


def fuzz(examples: int, deadline_ms: int = 5000):  # a deadline far above an example's ms: only a hang trips it
    # too_slow: several strategies build a file per example, which is the point; data_too_large: hostile inputs
    health = [HealthCheck.too_slow, HealthCheck.data_too_large]
    return settings(max_examples=max(1, int(examples * SCALE)), deadline=deadline_ms, derandomize=not SEEDED,
                    database=None, suppress_health_check=health)  # fmt: skip


class Hang(BaseException):  # not an Exception: no loader's ``except Exception`` makes it a refusal
    @staticmethod
    def ring(signum, frame):  # pytest runs tests in the main thread, which signals reach
        raise Hang(f"no answer within {WATCHDOG_S} s")


def outcome(fn, allowed: tuple[type[BaseException], ...], *args):
    """``("ok", value)`` or ``("refused", type, message)`` before the watchdog rings; other exceptions fail."""
    previous = signal.signal(signal.SIGALRM, Hang.ring)
    signal.setitimer(signal.ITIMER_REAL, WATCHDOG_S)
    try:
        return ("ok", fn(*args))
    except allowed as exc:
        return ("refused", type(exc).__name__, str(exc))
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def twice(name: str, fn, allowed, *args, key=lambda value: value):
    """``key(fn(*args))`` twice: the same accepted value or the same refusal both times (``key`` may read more,
    as a Posterior's reference draws, and refuse too)."""
    COUNTS[name] += 1
    results = [outcome(lambda *a: key(fn(*a)), allowed, *args) for _ in range(2)]
    assert results[0] == results[1]
    ACCEPTED[name] += results[0][0] == "ok"
    return results[0]


def _comparable(value):
    """Tensors and arrays as (dtype, shape, bytes), dataclasses as dicts, so that two loads compare with ==."""
    if isinstance(value, torch.Tensor):
        value = value.numpy()
    if isinstance(value, np.ndarray):
        return (str(value.dtype), value.shape, value.tobytes())
    if hasattr(value, "__dataclass_fields__"):
        value = vars(value)
    if isinstance(value, dict):
        return {k: _comparable(v) for k, v in value.items()}
    return [_comparable(v) for v in value] if isinstance(value, (list, tuple)) else value


def _write(path, data: bytes) -> None:
    path.unlink(missing_ok=True)  # first: truncating a file makes ext4 flush it to disk, milliseconds per example
    path.write_bytes(data)


def _corrupt(data: bytes, rng: random.Random, chance: float = 1.0) -> bytes:
    """``data`` (with probability ``chance``) cut short, with one byte changed or one inserted."""
    if not data or rng.random() >= chance:
        return data
    how, at, byte = rng.randint(1, 3), rng.randrange(len(data)), bytes([rng.randrange(256)])
    return [data, data[:at], data[:at] + byte + data[at + 1 :], data[:at] + byte + data[at:]][how]


# Equations (and most other inputs) are expanded from one drawn seed by random.Random: hypothesis' recursive
# strategies cost ~3 ms of drawing per example (a draw ~0.1 ms), too much for 10,000 examples in a CI minute.
# Failing examples still print in full; st.text(), st.binary() and the hostile list stay hypothesis' own.
# fmt: off
_NAMES = ["x", "y", "z", "X", "Y", "w1", "nan", "inf", "E", "pi", "U_x", "_x", "__builtins__", "ｘ", "𝐱", "None",
          "True", "λ", "x̄"]
_NUMBERS = ["0", "1", "-1", "0.5", "1e308", "1e309", "1e-400", "9" * 400, "1" * 4400, "1" + "0" * 309 + ".0", "nan",
            "inf", "1_000", "0x1F", "0b11", "1j", "1e", ".5", "5.", "00", "1__0", "4.9e-324", "2.5e-308"]
_CALLEES = [*FUNCTIONS, *FAMILIES, *FAMILIES, "where", "eval", "exec", "open", "__import__", "getattr", "Poisson"]
_BINARY = ["+", "-", "*", "/", "**", "%", "//", "@", "<", "<=", ">", "==", "!=", " and ", " or ", "&", "^", ","]
_WRAPS = ["({})", "[{}]", "{}.real", "{}[0]", "lambda: {}", "{0} if {0} else 1", "f({})", "{}.__class__", "*{}",
          "{} for x in y", "Categorical([{0}, {0}])", "{}=1", "loc={}", "not {}", "-{}", "~{}"]
_VALID_ATOMS = ["0.5", "2", "1e-3", "pi", "Normal(0, 1)", "Uniform(-1, 1)", "Bernoulli(0.3)", "Exponential(2)",
                "Categorical([0.2, 0.8])", "StudentT(3)", "Beta(2, 2)", "Laplace(0, 1)"]
_VALID_CALLS = ["exp", "log", "sqrt", "abs", "sin", "tanh", "sigmoid", "softplus"]
_HOSTILE = [
    "__import__('os').system('touch {canary}')", "open('{canary}', 'w')", "exec(\"open('{canary}','w')\")",
    "(lambda: open('{canary}', 'w'))()", "x.__class__.__mro__[1].__subclasses__()", "max(softplus(1), x)",
    "9**9**9", "2**2**33", "x + 2**-2**33", "exp(exp(exp(10)))", "(2**0.5)**10**7", "Normal(0, 10**10**10)",
    "(" * 150 + "x" + ")" * 150, "-" * 400 + "x", "exp(" * 120 + "x" + ")" * 120, "x" + "**x" * 200,
    "+".join(["x"] * 3000), "*".join(["y"] * 2000), "not " * 200 + "x > 0", "[" * 100 + "]" * 100, "x\x00",
    "x\n+1", "x # Normal(0, 1)", "x\\\n+1", "'text'", "b'x'", "...", "yield x", "(x := 1)", "x\u202e+1",
    "Normal(loc=0, scale=1)", "Categorical([0.2] * 5)", "Categorical([x, 0.5])", "max(*x)", "1e308 * 10 * x",
    "sqrt(-1)", "log(-1) + x", "where(x, 1, 2)", "where(x > 0, x > 1, 0)", "x < y < z", "1/(x-x)", "0**-1",
]
_WEIRD = "ｘｙＮｏｒｍａｌ（）＋＊，０１\x00\x01\x1b\x7f\u200b\u202e\ufeff𝐱ﬁ…\n\t\\\"'#;:{}[]"
# fmt: on


def _grammar(rng: random.Random, depth: int, valid: bool, names=("x", "y", "z", "w")) -> str:
    """An accepted expression of ``names`` (``valid``), else one with any operator, wrapper or callee at all."""
    roll = rng.random()
    if depth <= 0 or roll < 0.3:
        if valid:
            return rng.choice([*names, *_VALID_ATOMS])
        return rng.choice([rng.choice(_NAMES), rng.choice(_NUMBERS), repr(rng.uniform(-1e3, 1e3)),
                           repr(10.0 ** rng.randint(-320, 308)), str(rng.randint(-(10**6), 10**6))])  # fmt: skip
    inner = [_grammar(rng, depth - 1, valid, names) for _ in range(rng.choice([0, 1, 1, 2, 2, 2, 3, 4]))] or ["1"]
    if roll < 0.55:
        return f"({inner[0]} {rng.choice('+-*/')} {inner[-1]})" if valid else rng.choice(_BINARY).join(inner)
    if roll < 0.85:
        if valid:
            two = f"{rng.choice(['min', 'max', 'Normal'])}({inner[0]}, {inner[-1]})"
            return rng.choice([f"{rng.choice(_VALID_CALLS)}({inner[0]})", two, f"where({inner[0]} > 0, {two}, 1)"])
        return f"{rng.choice(_CALLEES)}({', '.join(inner[: rng.randint(0, 4)])})"
    return rng.choice(_WRAPS).format(inner[0]) if not valid else f"-{inner[0]}"


def _dag(seed: int) -> dict[str, str]:
    """Up to four nodes, each a function of the ones before it (and noise): most are accepted."""
    rng = random.Random(seed)
    names = rng.sample(["x", "y", "z", "w"], rng.randint(1, 4))
    return {n: _grammar(rng, rng.randint(0, 2), True, names[:i]) for i, n in enumerate(names)}


SEEDS = st.integers(0, 2**63)
GRAMMAR, VALID = (SEEDS.map(lambda seed, v=v: _grammar(random.Random(seed), seed % 5, v)) for v in (False, True))
_WEIRD_TEXT = st.text(st.sampled_from(_WEIRD), max_size=12)
EQUATIONS = st.one_of(GRAMMAR, GRAMMAR, VALID, st.text(max_size=30), _WEIRD_TEXT, st.sampled_from(_HOSTILE),
                      st.builds("{}{}{}".format, GRAMMAR, _WEIRD_TEXT, VALID))  # fmt: skip


class _Payload(tuple):
    """The call ``(fn, *args)`` as a pickle: loading it unsafely runs it, and each of ours leaves the canary."""

    def __reduce__(self):
        return self[0], self[1:]


class _Box:
    """The folder each example writes to, the canary, and payloads as calls and as pickles (protocols 0-5, torch's
    formats, bare or in a state dict); fixtures hang what they build on it, since its repr is short."""

    def __init__(self, work):
        self.work, self.canary = work, work / "canary"
        path = str(self.canary)
        self.calls = [_Payload((os.mkdir, path)), _Payload((open, path, "w")), _Payload((os.system, f"touch '{path}'")),
                      _Payload((exec, f"open({path!r}, 'w').close()"))]  # fmt: skip
        self.payloads = [("pickle", pickle.dumps(call, protocol)) for call in self.calls for protocol in (0, 2, 5)]
        wrapped = [w for call in self.calls for w in (call, {"module": call, "step": 1})]
        self.payloads += [("torch", _saved(w, zipped)) for w in wrapped for zipped in (True, False)]

    def __repr__(self) -> str:
        return "box"


@pytest.fixture(scope="module")
def box(tmp_path_factory):
    """The box, with the arrays of an intact rooms cache and a weights folder of our own in place of the
    package's, holding a model (``box.weights``) that fits the entry the examples mostly write."""
    box = _Box(tmp_path_factory.mktemp("fuzz"))
    path = save_rooms(Rooms(image_size=8, num_views=2, seed=1), box.work / "rooms.npz", 2, progress=False)
    with np.load(path) as z:
        box.rooms = {k: z[k] for k in z.files}
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(pretrained, "WEIGHTS", box.work / "weights")
        patch.setattr(pretrained, "MANIFEST", box.work / "weights" / "manifest.json")
        torch.manual_seed(0)
        pretrained.export(build_model("vae", 2), box.work / "weights" / "w.pt")
        box.weights = (box.work / "weights" / "w.pt").read_bytes()
        yield box


def test_the_payloads_would_write_the_canary(box):
    """The canary assertions mean something: loaded unsafely, every payload leaves the canary behind."""
    for kind, payload in box.payloads:
        torch.load(io.BytesIO(payload), weights_only=False) if kind == "torch" else pickle.loads(payload)  # noqa: S301
        assert box.canary.exists(), payload[:80]
        os.rmdir(box.canary) if box.canary.is_dir() else box.canary.unlink()


@fuzz(2500)
@given(node=st.sampled_from(["X", "X", "X", "x", "U_X", "_X", "ｘ", "exp", "1x", ""]), text=EQUATIONS)
def test_equations_parse_identically_twice_or_raise_equation_error(box, node, text):
    twice("parse_equation", parse_equation, (EquationError,), node, text.replace("{canary}", str(box.canary)))
    assert not box.canary.exists()


def _scm_key(scm: SCM):
    return (scm.to_dict(), sorted(scm.graph.edges), scm.noises, {n: scm.node(n).expr for n in scm.nodes})


@fuzz(500)
@given(equations=st.one_of(SEEDS.map(_dag), st.dictionaries(st.sampled_from(_NAMES) | st.text(max_size=3),
                                                             st.one_of(VALID, EQUATIONS), max_size=4)))  # fmt: skip
def test_scms_from_equations_build_identically_twice_or_raise_equation_error(equations):
    twice("SCM.from_equations", SCM.from_equations, (EquationError,), equations, key=_scm_key)


def _json(rng: random.Random, depth: int = 3):
    """A random JSON value (NaN and infinities included, as Python's json writes and reads them)."""
    roll = rng.random()
    if depth <= 0 or roll < 0.5:
        return rng.choice([None, True, False, 0, 1, -1, 2**70, 0.5, 1e308, float("nan"), float("inf"), "", "ｘ", []])
    if roll < 0.75:
        return [_json(rng, depth - 1) for _ in range(rng.randint(0, 3))]
    return {rng.choice(["name", "equation", "format", "nodes", "x", ""]): _json(rng, depth - 1) for _ in range(3)}


def _scm_dict(seed: int):
    """Mostly SCM-shaped descriptions (valid equations, random names and values mixed in), else any JSON."""
    rng = random.Random(seed)
    if rng.random() < 0.1:
        return _json(rng)
    names = ["x", "y", "z", "w", "x", "ｘ", "U_x", "exp", "1x", None, 3, ["x"], {"x": 1}]
    nodes = []
    for _ in range(rng.randint(0, 4)):
        entry = {"name": rng.choice(names[:4] if rng.random() < 0.8 else names),
                 "equation": _grammar(rng, rng.randint(0, 3), valid=rng.random() < 0.7)}  # fmt: skip
        if rng.random() < 0.1:
            entry[rng.choice(["equation", "name", "extra"])] = _json(rng, 2)
        nodes.append(entry if rng.random() < 0.95 else _json(rng, 2))
    return {"format": 1 if rng.random() < 0.9 else rng.choice([1.0, True, "1", 2, None]), "nodes": nodes}


# fmt: off
DEEP = [b"[" * 100_000, b'{"format": 1, "nodes": ' + b"[" * 5000 + b"]" * 5000 + b"}", b"\xff\xfe{}", b"\xc3("]
_SCM_FILE = SEEDS.map(lambda s: _corrupt(json.dumps(_scm_dict(s), ensure_ascii=s % 2).encode(), random.Random(~s), 0.6))
SCM_FILES = st.one_of(_SCM_FILE, _SCM_FILE, st.binary(max_size=64), st.sampled_from(DEEP))
SMALL_SCMS = SEEDS.map(lambda s: json.dumps({"format": 1, "nodes": [{"name": k, "equation": v}
                                                                    for k, v in _dag(s).items()]}).encode())
# fmt: on


@fuzz(1200)
@given(data=SEEDS.map(_scm_dict))
def test_scm_dicts_build_identically_twice_or_raise_value_error(data):
    twice("SCM.from_dict", SCM.from_dict, (ValueError,), data, key=_scm_key)


@fuzz(1300)
@given(raw=SCM_FILES)
def test_scm_files_load_identically_twice_or_raise_value_error_naming_the_file(box, raw):
    _write(path := box.work / "scm.json", raw)
    result = twice("SCM.load", SCM.load, (ValueError,), path, key=_scm_key)
    assert result[0] == "ok" or str(path) in result[2]


def _run_cli(argv: list[str], out) -> tuple:
    """Exit code, stderr and the written file's bytes (None when nothing was written)."""
    out.unlink(missing_ok=True)
    with contextlib.redirect_stderr(io.StringIO()) as err, contextlib.redirect_stdout(io.StringIO()):
        try:
            code = cli(argv)
        except SystemExit as exc:  # argparse's usage errors
            code = exc.code
    return code, err.getvalue(), out.read_bytes() if out.exists() else None


_DO = st.one_of(st.builds("{}={}".format, st.sampled_from(["x", "y", "z", "q", " x "]), st.one_of(VALID, EQUATIONS)),
                st.text(max_size=8))  # fmt: skip


@fuzz(130, deadline_ms=20_000)  # drawing a graph takes ~0.2 s
@given(raw=st.one_of(SMALL_SCMS, SMALL_SCMS, SCM_FILES), do=st.lists(_DO, max_size=2) | st.just([]),
       n=st.sampled_from(["3", "3", "1", "0", "x"]), graph=st.sampled_from([False] * 9 + [True]))  # fmt: skip
def test_cli_scm_commands_exit_0_with_the_same_csv_twice_or_2_with_a_message(box, raw, do, n, graph):
    _write(path := box.work / "cli.json", raw)
    out, name = box.work / ("g.png" if graph else "o.csv"), "probrep scm graph" if graph else "probrep scm sample"
    options = ["--n", n, "--backend", "numpy", "--seed", "1", *(a for item in do for a in ("--do", item))]
    argv = ["scm", name.split()[-1], str(path), *([] if graph else options), "--out", str(out)]
    COUNTS[name] += 1
    (_, first), (_, second) = (outcome(_run_cli, (), argv, out) for _ in range(2))
    code, err, written = first
    assert code in (0, 2) and "Traceback" not in err, (code, err)
    assert (written is not None) if code == 0 else err.startswith(("probrep: error:", "usage:")) and written is None
    assert first == second or (graph and first[:2] == second[:2])  # a PNG need not repeat byte for byte
    ACCEPTED[name] += code == 0


_DTYPES = [torch.float32, torch.float16, torch.float64, torch.int64, torch.uint8, torch.bool]


def _state(rng: random.Random, depth: int = 2):
    """What training writes (nested dicts and lists of tensors, numbers and text), which weights_only accepts."""
    roll = rng.random()
    if depth <= 0 or roll < 0.4:
        shape = [rng.randint(0, 3) for _ in range(rng.randint(0, 3))]
        tensor = torch.randn(shape, generator=torch.Generator().manual_seed(rng.randint(0, 99))) * 3
        return rng.choice([tensor.to(rng.choice(_DTYPES)), rng.randint(-5, 5), rng.random(), "text", None, True])
    if roll < 0.6:
        return [_state(rng, depth - 1) for _ in range(rng.randint(0, 3))]
    return {rng.choice(["module", "optimizer", "step", "format"]): _state(rng, depth - 1) for _ in range(3)}


def _saved(obj, zipped: bool = True) -> bytes:  # torch's zip format, or its legacy one
    return torch.save(obj, buffer := io.BytesIO(), _use_new_zipfile_serialization=zipped) or buffer.getvalue()


#: random bytes, or a seed for a file made intact, (mostly) damaged, or carrying a payload (maybe damaged)
FILES = st.one_of(SEEDS, SEEDS, st.binary(max_size=300))


@fuzz(2800)
@given(file=FILES)
def test_checkpoints_load_identically_twice_or_raise_value_error_and_never_run_a_payload(box, file):
    rng = random.Random(file if isinstance(file, int) else 0)
    kind = rng.choice([0, 1, 1, 2, 2])
    raw = file if isinstance(file, bytes) else _saved(_state(rng)) if kind < 2 else rng.choice(box.payloads)[1]
    _write(path := box.work / "checkpoint-00000001.pt", raw if kind == 0 else _corrupt(raw, rng, 1 - kind / 4))
    result = twice("checkpoint.load", ckpt.load, (ValueError,), path, key=_comparable)
    assert result[0] == "ok" or str(path) in result[2]
    assert not box.canary.exists()


_NP_DTYPES = [np.uint8, np.int64, np.float16, np.float32, np.float64, np.longdouble, ">f4", ">i8", bool,
              np.complex64, "U3", "S2", "M8[s]"]  # fmt: skip
_CONFIGS = ["{", "[1, 2]", "null", '"x"', "[" * 5000, '{"image_size": NaN}', "\x00", "{}"]


def _rooms_bytes(arrays: dict, seed: int, calls: list) -> bytes:
    """An .npz: intact, a field dropped or of another dtype/shape/values/config, a payload, or damaged bytes."""
    rng = random.Random(seed)
    arrays, key, kind = dict(arrays), rng.choice(sorted(arrays)), rng.choice([0, 1, 2, 2, 2, 3, 4, 5])
    if kind == 1:
        del arrays[key]
    elif kind == 2:
        shape = arrays[key].shape if rng.random() < 0.6 else tuple(rng.randint(0, 3) for _ in range(rng.randint(0, 5)))
        values = np.random.default_rng(seed % 2**32).normal(size=shape) * 10.0 ** rng.randint(-3, 40)
        if rng.random() < 0.3:
            values.flat[: rng.randint(0, values.size)] = rng.choice([np.nan, np.inf, -1.0, 256.0])
        with np.errstate(all="ignore"):
            arrays[key] = values.astype(rng.choice(_NP_DTYPES))
    elif kind == 3:
        arrays["config"] = np.array(rng.choice(_CONFIGS))
    elif kind == 4:
        arrays[key] = np.array([rng.choice(calls)], dtype=object)  # np.savez pickles it
    np.savez(buffer := io.BytesIO(), **arrays)
    return _corrupt(buffer.getvalue(), rng, 1.0 if kind == 5 else 0.0)


@fuzz(500)
@given(file=FILES)
def test_rooms_caches_load_identically_twice_or_raise_value_error_naming_the_file(box, file):
    path = box.work / "cache.npz"
    _write(path, file if isinstance(file, bytes) else _rooms_bytes(box.rooms, file, box.calls))
    result = twice("load_rooms", load_rooms, (ValueError,), path, key=_comparable)
    assert result[0] == "ok" or str(path) in result[2]
    assert not box.canary.exists()


#: posteriordb: each posterior's data fields, "n" the length, "vec" [n] numbers, "pos" [n] scales, "counts" [n]
#: counts, "mat" [n, 2] numbers, "scale" one positive number, "lags" K in 1..n-1
# fmt: off
_FIELDS = {"eight_schools-eight_schools_noncentered": {"J": "n", "y": "vec", "sigma": "pos"},
           "kidiq-kidscore_momiq": {"N": "n", "mom_iq": "vec", "kid_score": "vec"},
           "earnings-logearn_height": {"N": "n", "height": "vec", "earn": "pos"},
           "arK-arK": {"T": "n", "y": "vec", "K": "lags"}, "sblrc-blr": {"N": "n", "X": "mat", "y": "vec"},
           "garch-garch11": {"T": "n", "y": "vec", "sigma1": "scale"},
           "gp_pois_regr-gp_pois_regr": {"N": "n", "x": "vec", "k": "counts"},
           "low_dim_gauss_mix-low_dim_gauss_mix": {"N": "n", "y": "vec"}}
_JUNK = [None, "3", [], [[1], [2, 3]], [1, "a"], float("nan"), -1, 0, 2.5, 10**30, 1e308, True, {"a": 1}, [[[1]]]]
_ZIPS = [zipfile.ZIP_DEFLATED, zipfile.ZIP_STORED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA]
# fmt: on


def _posterior_files(name: str, rng: random.Random) -> list[bytes]:
    """data.json, posterior.json and the reference archive: mostly valid, with one part changed or damaged."""
    n = rng.randint(2, 6)
    make = {"n": lambda: n, "lags": lambda: rng.randint(1, n - 1), "scale": lambda: rng.uniform(0.1, 2),
            "vec": lambda: [rng.uniform(-9, 9) for _ in range(n)], "mat": lambda: [[rng.uniform(-1, 1)] * 2] * n,
            "pos": lambda: [rng.uniform(0.1, 9)] * n, "counts": lambda: [rng.randint(0, 9)] * n}  # fmt: skip
    data, info = {field: make[kind]() for field, kind in _FIELDS[name].items()}, {"name": name, "dimensions": {}}
    chains = [{"mu": [rng.uniform(-1, 1) for _ in range(3)], "tau": [0.5, 0.6, 0.7]} for _ in range(2)]
    roll = rng.random()
    if roll < 0.35:  # a field changed, dropped or added
        data[rng.choice([*data, "extra"])] = rng.choice(_JUNK)
    elif roll < 0.45:
        data.pop(rng.choice(list(data)))
    elif roll < 0.55:
        info = rng.choice([[], None, {"name": name}, {"name": "x", "dimensions": {}}, {"name": name, "dimensions": 1}])
    elif roll < 0.7:
        chains[rng.randint(0, 1)][rng.choice(["mu", "tau", "other"])] = rng.choice(_JUNK)
    elif roll < 0.75:
        chains = rng.choice([[], {}, [{}], [[1, 2]], None])
    with zipfile.ZipFile(buffer := io.BytesIO(), "w", rng.choice(_ZIPS)) as archive:
        archive.writestr(rng.choice([f"{name}.json", f"{name}.json", "draws.txt"]), json.dumps(chains))
    files, part = [json.dumps(data).encode(), json.dumps(info).encode(), buffer.getvalue()], rng.randrange(3)
    files[part] = _corrupt(files[part], rng, 0.3)
    return files


@fuzz(900)
@given(seed=SEEDS)
def test_posteriordb_folders_load_identically_twice_or_raise_value_error_naming_the_file(box, seed):
    rng = random.Random(seed)
    name = rng.choice(sorted(_FIELDS))
    (folder := box.work / "posteriordb" / name).mkdir(parents=True, exist_ok=True)
    for file, content in zip(["data.json", "posterior.json", "reference_draws.json.zip"], _posterior_files(name, rng)):
        _write(folder / file, content)
    key = lambda post: _comparable((post.model_kwargs, post.reference_draws))  # noqa: E731
    result = twice("posteriordb.load", pdb.load, (ValueError,), name, folder.parent, key=key)
    assert result[0] == "ok" or str(folder) in result[2]


# run folders, weights: latent_dim small or absurd (10**12 fails at once); 10**7..10**9 would be allocated (GBs)
_LATENT = [1, 2, 2, 3, 0, -1, 2.0, "2", True, None, 10**12, 10**30]
_SETTINGS = [{}, {}, {"beta": 4.0}, {"beta": "x"}, {"gamma": -1}, {"capacity_steps": 3}, {"nope": 1}, [], None, "s",
             {"arch": "conv"}, {"kind": "vae"}, {"beta": float("nan")}, {"tc_weight": 1e308}, {"1": 2}]  # fmt: skip
_STATES = [{"format": 1, "module": None}, [1, 2], {"module": {}}, {"module": [1]}, {"module": "x"}, {},
           {"module": {"encoder.0.weight": torch.zeros(2)}}, {"module": {"encoder.0.weight": "x"}}]  # fmt: skip


def _model_fields(rng: random.Random) -> dict:
    """What a summary or manifest entry says the model is: mostly buildable (conv, small), else anything."""
    fields = {"model": rng.choice([*MODELS, *MODELS, "nope", None, 1, ["vae"]]), "latent_dim": rng.choice(_LATENT),
              "arch": rng.choice(["conv"] * 3 + ["mlp", "x", None]), "settings": rng.choice(_SETTINGS)}  # fmt: skip
    return {k: v for k, v in fields.items() if rng.random() < 0.95}


@fuzz(250)
@given(seed=SEEDS)
def test_run_folders_that_do_not_fit_are_refused_with_value_error_naming_the_file(box, seed):
    rng = random.Random(seed)
    (run := box.work / "run" / "checkpoints").mkdir(parents=True, exist_ok=True)
    _write(run / "checkpoint-00000001.pt", _saved(rng.choice(_STATES)))
    _write(run.parent / "summary.json", _corrupt(json.dumps(_model_fields(rng)).encode(), rng, 0.3))
    result = twice("load_run", load_run, (ValueError,), run.parent)
    assert result[0] == "refused" and (str(run.parent / "summary.json") in result[2] or str(run) in result[2])


@fuzz(120)
@given(seed=SEEDS, blob=st.binary(max_size=100))
def test_shipped_weights_load_identically_twice_or_are_refused_and_never_run_a_payload(box, seed, blob):
    rng = random.Random(seed)
    raw = [box.weights, box.weights, _corrupt(box.weights, rng), rng.choice(box.payloads)[1], blob,
           _saved(rng.choice(_STATES))][rng.randrange(6)]  # fmt: skip
    _write(pretrained.WEIGHTS / "w.pt", raw)
    fits = {"model": "vae", "latent_dim": 2, "arch": "conv", "settings": {}}
    entry = {"file": "w.pt" if rng.random() < 0.8 else rng.choice(["../run/summary.json", "", ".", "..", None, 3]),
             "sha256": rng.choice([pretrained.sha256(pretrained.WEIGHTS / "w.pt")] * 9 + ["0", None]),
             **(fits if rng.random() < 0.5 else _model_fields(rng))}  # fmt: skip
    manifest = {"format": 1, "models": {"m": entry}} if rng.random() < 0.9 else _json(rng)
    _write(pretrained.MANIFEST, _corrupt(json.dumps(manifest).encode(), rng, 0.2))
    key = lambda loaded: _comparable((loaded[1], loaded[0].state_dict()))  # noqa: E731
    twice("pretrained.load", pretrained.load, (ValueError, FileNotFoundError), "m", key=key)
    assert not box.canary.exists()
