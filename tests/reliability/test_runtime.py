"""Values that validate but fail later, and silent wrong answers (issue 20, classes 3 and 4).

Every example of the issue is a regression test here; the property test at the end mutates numeric
leaves of the shipped configs towards extremes and requires that the pre-flight refuses them or a
bounded run ends with finite results or a KirchhoffError. Default: 16 mutated configs; the sweep is
``KIRCHHOFFNET_RUNTIME_EXAMPLES=300 PYTHONPATH=src python -m pytest tests/reliability/test_runtime.py -m slow``.
"""

from __future__ import annotations

import importlib
import json
import math
import os
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import kirchhoffnet as kn
from kirchhoffnet._finite import finite_number, require_finite
from kirchhoffnet.cli.main import app
from kirchhoffnet.config import apply_overrides, load_config, parse_config, preflight
from kirchhoffnet.errors import ConfigError, KirchhoffError, SolverError, ToolError, TrainingError
from kirchhoffnet.hardware import PhysicalDesign
from kirchhoffnet.hardware.metrics import Metric
from kirchhoffnet.hardware.noise import simulate_noisy
from kirchhoffnet.hardware.variation import Variation, sigma_sweep, summarize
from kirchhoffnet.io import write_json_atomic
from kirchhoffnet.runtime import LIMIT_ENV
from kirchhoffnet.solve.solver import MAX_FIXED_STEPS
from kirchhoffnet.tasks.flow2d import Flow2dTask
from kirchhoffnet.training import train

from ..conftest import small_circuit
from ..training.helpers import tiny_flow, tiny_regression
from .fuzz import REPO, load, paths

runner = CliRunner()
pytestmark = pytest.mark.usefixtures("one_torch_thread")


# ---- class 3: values that validate but fail later ------------------------------------------------


def _diffusion(**sections: Any) -> dict[str, Any]:
    """A minimal diffusion config of the shared family (``task: diffusion``) with ``sections`` added."""
    return {
        "task": "diffusion",
        "data": "ring",
        "train": {"epochs": 1, "steps_per_epoch": 1, "batch_size": 8, "lr": 1e-3},
        **sections,
    }


def test_beta_max_that_overflows_every_sampler_is_refused_at_validation():
    with pytest.raises(ConfigError, match=r"^sde\.beta_max: ∫β = .* overflows the samplers.*<= 88\.7 .*\(in config\)$"):
        parse_config(_diffusion(sde={"beta_max": 1e308}))
    with pytest.raises(ConfigError, match=r"^sample\.ode_beta_scale: 25 × ∫β = 100 .*limit is 88\.7"):
        parse_config(_diffusion(sample={"ode_beta_scale": 25.0}))  # ∫β = 4.005 on its own
    config = parse_config(_diffusion(sde={"beta_max": 170.0}))  # ∫β = 85: allowed
    assert config.task == "diffusion" and config.sde.beta_max == 170.0
    with pytest.raises(ConfigError, match=r"^sde\.beta_max: ∫β = .* overflows"):  # and through --set
        train(apply_overrides(_diffusion(), ["sde.beta_max=1e308"]), progress=False)


def test_a_fixed_step_of_1e_12_is_refused_before_any_grid_is_built(tmp_path):
    """torchdiffeq builds the whole grid up front: 1 time unit at 1e-12 is 10¹² points (4 TB)."""
    with pytest.raises(ConfigError, match=r"^solver\.step_size: 1e-12 makes 1e\+12 rk4 steps .* limit of 1e\+07"):
        train(tiny_flow("solver.method=rk4", "solver.step_size=1e-12"), tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()
    with pytest.raises(ConfigError, match=r"^step_size: 1e-12 makes"):  # the library checks too
        kn.simulate(small_circuit(), torch.ones(1, 3), solver=kn.Solver("rk4", step_size=1e-12))


def test_the_fixed_step_limit_is_what_the_policy_says():
    circuit = small_circuit(slices=1)
    at_limit = kn.Solver("euler", step_size=1.0 / MAX_FIXED_STEPS)
    assert at_limit.fixed_steps(circuit.times) == MAX_FIXED_STEPS
    with pytest.raises(ConfigError, match="steps"):
        kn.simulate(circuit, torch.ones(1, 3), solver=kn.Solver("euler", step_size=0.5 / MAX_FIXED_STEPS))


@pytest.mark.parametrize(
    ("times", "message"),
    [
        ([0.0, 1e300], r"circuit\.times\[1\] = 1e\+300 is not representable in float32"),
        ([1e10, 1e10 + 1.0], r"circuit\.times: slice 0 from 1e\+10 to 1e\+10 has zero length in float32"),
    ],
)
def test_times_outside_the_dtype_are_refused(tmp_path, times, message):
    with pytest.raises(ConfigError, match=message):
        train(tiny_flow(f"circuit.times={times}"), tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


def test_times_beyond_float32_still_run_in_float64():
    preflight(tiny_flow("circuit.times=[0, 1e300]", "circuit.capacitance=1e300", "dtype=float64"))


def test_a_step_longer_than_the_slice_is_one_step_not_a_bare_assert():
    """rk4 with step 1e30 made a 1-point grid that failed torchdiffeq's message-less assert, whose
    empty message then crashed the error reporter. A step past the slice's end is one step."""
    circuit = small_circuit().double()
    x = torch.randn(3, 3, dtype=torch.float64)
    huge, _ = kn.simulate(circuit, x, solver=kn.Solver("rk4", step_size=1e30))
    one_step, _ = kn.simulate(circuit, x, solver=kn.Solver("rk4", step_size=1.0))  # slices of 1 time unit
    assert torch.equal(huge, one_step)
    back, _ = kn.simulate(circuit, huge, solver=kn.Solver("rk4", step_size=1e30), reverse=True)
    assert torch.isfinite(back).all()


@pytest.mark.parametrize("integrator", ["fused", "torchdiffeq"])
def test_tolerances_below_the_dtypes_resolution_say_so(integrator):
    """rtol = atol = 1e-30 in float32 shrank the step until it underflowed, and the error blamed NaN parameters."""
    solver = kn.Solver(rtol=1e-30, atol=1e-30, integrator=integrator)
    with pytest.raises(SolverError, match=r"rtol 1e-30 and atol 1e-30 are below float32's resolution \(1\.2e-07\)"):
        kn.simulate(small_circuit(), torch.ones(2, 3), solver=solver)
    tight, _ = kn.simulate(
        small_circuit().double(), torch.ones(2, 3, dtype=torch.float64), solver=solver.with_tolerance(1e-12, 1e-12)
    )
    assert torch.isfinite(tight).all()  # float64 meets what float32 cannot


def test_a_message_less_torchdiffeq_assert_is_a_solver_error(monkeypatch):
    simulate_module = importlib.import_module("kirchhoffnet.solve.simulate")  # the package exports a function

    def failing(*args: Any, **kwargs: Any) -> None:
        raise AssertionError

    monkeypatch.setattr(simulate_module, "odeint", failing)
    with pytest.raises(SolverError, match=r"^slice 0 \(t from 0 to 1\) failed at t = 0: torchdiffeq's internal check"):
        kn.simulate(small_circuit(), torch.ones(2, 3), solver=kn.Solver(integrator="torchdiffeq"))


def test_an_assert_in_the_adjoint_backward_solve_is_a_solver_error(monkeypatch):
    import kirchhoffnet.solve._adjoint as adjoint_module

    real = adjoint_module.odeint
    calls = {"n": 0}

    def backward_fails(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] > 1:  # the forward solve is the first call
            raise AssertionError("underflow in dt 0.0")
        return real(*args, **kwargs)

    monkeypatch.setattr(adjoint_module, "odeint", backward_fails)
    circuit = small_circuit("ShiftTanh2", slices=1)
    # torchdiffeq's steps (the fused integrator, the default, does not call odeint)
    v, _ = kn.simulate(circuit, torch.ones(2, 3), gradient=kn.Adjoint(), solver=kn.Solver(integrator="torchdiffeq"))
    assert calls["n"] == 1, "the ShiftTanh2 slice should take the analytic adjoint"
    with pytest.raises(SolverError, match=r"^the adjoint \(backward\) solve from t = 1 to 0 failed: underflow"):
        v.sum().backward()


def test_hw_noise_with_a_tiny_dt_is_refused_before_stepping():
    flow = kn.Flow(small_circuit(slices=1))
    with pytest.raises(ConfigError, match=r"^dt: 1e-09 makes 1e\+09 euler steps .* limit of 1e\+07"):
        simulate_noisy(flow, torch.zeros(2, 3), PhysicalDesign(), dt=1e-9)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--dt", "nan"], "--dt must be a finite number in (0, inf], got nan"),
        (["--dt", "1e-9"], "dt: 1e-09 makes 1e+09 euler steps"),
        (["--excess", "inf"], "--excess must be a finite number"),
    ],
)
def test_hw_noise_options_are_one_line_errors(tmp_path, args, message):
    kn.save(kn.Flow(small_circuit(num_nodes=3, slices=1)), tmp_path / "flow.safetensors", {"dataset": "twomoon"})
    result = runner.invoke(
        app, ["hw", "noise", str(tmp_path / "flow.safetensors"), "--samples", "4", *args, "--out", str(tmp_path / "o")]
    )
    assert result.exit_code == 2, result.output
    assert result.output.count("\n") == 1 and result.output.startswith("error: ") and message in result.output
    assert not (tmp_path / "o").exists()


def test_data_sizes_count_in_the_memory_preflight(tmp_path, monkeypatch):
    monkeypatch.setenv(LIMIT_ENV, "8")
    with pytest.raises(ConfigError, match=r"^data\.train_size: the circuit needs at least 320 GB .*lower data\."):
        train(tiny_flow("data.train_size=10000000000"), tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()
    for overrides, key in [
        (("data.n_samples=10000000000",), "data.n_samples"),
        (("baseline={hidden: [4]}", "circuit=null", "data.n_samples=10000000000"), "data.n_samples"),
    ]:
        with pytest.raises(ConfigError, match=rf"^{key}: "):
            preflight(tiny_regression(*overrides))
    with pytest.raises(ConfigError, match=r"^grid: "):
        preflight(tiny_flow("grid=1000000"))


def test_a_diffusion_width_of_1e9_is_refused_by_a_preflight(monkeypatch, tmp_path):
    monkeypatch.setenv(LIMIT_ENV, "8")
    with pytest.raises(ConfigError, match=r"^model\.width: the run needs at least 1\.6e\+10 GB but 8 GB"):
        preflight(parse_config(_diffusion(model={"kind": "crossbar", "width": 10**9})))
    with pytest.raises(
        ConfigError, match=r"^evaluate\.num_samples: .*lower evaluate\.num_samples or model\.hidden\), or set"
    ):
        preflight(parse_config(_diffusion(model={"kind": "kirchhoffnet", "hidden": 10**9})))
    with pytest.raises(ConfigError, match=r"^sample\.steps: 1e\+09 solver steps is more than the limit"):
        preflight(parse_config(_diffusion(sample={"steps": 10**9})))
    # `kirchhoffnet train` runs the same pre-flight before the run directory is made
    (tmp_path / "wide.yaml").write_text(yaml.safe_dump(_diffusion(model={"kind": "crossbar", "width": 10**9})))
    result = CliRunner().invoke(app, ["train", str(tmp_path / "wide.yaml"), "--out", str(tmp_path / "run")])
    assert result.exit_code == 2 and result.output.count("\n") == 1, result.output
    assert result.output.startswith("error: model.width: the run needs at least"), result.output
    assert not (tmp_path / "run").exists()
    for path in sorted((REPO / "configs" / "diffusion").glob("*.yaml")):  # the shipped configs pass
        preflight(load_config(path))


def test_diffusion_sample_options_are_checked_before_sampling(monkeypatch):
    from kirchhoffnet.cli.diffusion import _check_request

    monkeypatch.setenv(LIMIT_ENV, "8")
    config = parse_config(_diffusion())
    _check_request(config, 10_000, 10_000, None)
    for n, steps, guidance, message in [
        (10, 10**9, None, r"^--steps: 1e\+09 solver steps is more than the limit of 1e\+07"),
        (10, None, math.nan, r"^--guidance must be a finite number in \[-inf, inf\], got nan"),
        (10, None, 1.0, r"^--guidance: this model is unconditional"),  # was accepted and changed nothing
        (10**12, None, None, r"^-n 1000000000000: evaluate\.num_samples: the run needs at least"),
    ]:
        with pytest.raises(ConfigError, match=message):
            _check_request(config, n, steps, guidance)
    monkeypatch.setattr(type(config), "num_classes", property(lambda self: 3))
    _check_request(config, 10_000, 10_000, 1.0)  # a conditional model takes it


def test_diffusion_speed_energy_and_spice_check_their_counts_before_work(monkeypatch, tmp_path):
    """A batch of 10^12 reached the allocator (an internal error) before the same pre-flight as -n ran."""
    from kirchhoffnet.diffusion import run as diffusion_run

    monkeypatch.setenv(LIMIT_ENV, "8")
    config = parse_config(_diffusion())
    monkeypatch.setattr(diffusion_run, "load_run", lambda path: diffusion_run.Run(Path(path), config, None))
    for command, option in [("speed-energy", "--batch"), ("spice", "--samples")]:
        result = CliRunner().invoke(app, ["diffusion", command, str(tmp_path), option, str(10**12)])
        assert result.exit_code == 2, result.output
        assert result.stderr.startswith(f"error: {option} 1000000000000: evaluate.num_samples: the run needs"), (
            result.stderr
        )


def test_a_figure_format_matplotlib_cannot_write_is_refused_before_work(tmp_path, monkeypatch):
    from kirchhoffnet.diffusion import evaluate as diffusion_evaluate

    monkeypatch.setattr(diffusion_evaluate, "compare_robustness", lambda *a: pytest.fail("work started"))
    result = CliRunner().invoke(app, ["diffusion", "compare", str(tmp_path), "--out", str(tmp_path / "curves.out")])
    assert result.exit_code == 2
    assert "matplotlib cannot write 'out' figures; use one of:" in result.stderr and "png" in result.stderr


def test_a_capacitance_no_solver_can_follow_is_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"^circuit\.capacitance: 1e-30 makes .* ~1e\+30 steps .* limit of 1e\+07"):
        train(tiny_flow("circuit.capacitance=1e-30"), tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


def test_outputs_that_overflow_end_the_run_with_an_error_not_finished(tmp_path, monkeypatch):
    """Capacitance 1e-30 under rk4 made every step NaN and the run "finished" with a null validation
    loss. The pre-flight refuses it now; with the pre-flight out of the way, the loop must still not
    call such a run finished."""
    monkeypatch.setattr("kirchhoffnet.training.preflight", lambda config, training=True: None)
    config = tiny_regression("circuit.capacitance=1e-30", "solver.method=rk4", "solver.step_size=0.1")
    with pytest.raises(TrainingError, match=r"^the untrained model's validation loss is inf: .*not finite"):
        train(config, tmp_path / "run", progress=False)
    assert not (tmp_path / "run" / "model.safetensors").exists()


def test_a_run_whose_every_step_was_nan_is_not_finished(tmp_path, monkeypatch):
    """Fewer NaN steps than train.max_nan_skips, but all of them: the model was never trained."""

    def nan_loss(self: Any, model: Any, batch: Any, generator: Any) -> torch.Tensor:
        return sum(p.sum() for p in model.parameters()) * math.nan

    monkeypatch.setattr(Flow2dTask, "loss", nan_loss)
    with pytest.raises(TrainingError, match=r"every one of the 8 steps had a non-finite loss.*never trained"):
        train(tiny_flow("train.epochs=2", "train.max_nan_skips=100"), tmp_path / "run", progress=False)
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["status"].startswith("stopped: every one")
    assert not (tmp_path / "run" / "model.safetensors").exists()


# ---- class 4: silent wrong answers -------------------------------------------------------------


def _fake_spice(value: float):
    """A spice_trajectory whose ngspice returned ``value`` at every point of every wave."""

    def run(circuit: Any, inputs: Any, options: Any, **kwargs: Any) -> Any:
        waves = []
        for k in range(circuit.num_slices):
            t = np.linspace(circuit.times[k], circuit.times[k + 1], 5)
            waves.append([(t, np.full((5, circuit.slice(k).num_state), value)) for _ in range(len(inputs))])
        return SimpleNamespace(waves=waves, seconds=0.0, runs=1)

    return run


@pytest.mark.parametrize("value", [math.nan, math.inf])
def test_spice_verify_fails_when_the_simulator_returns_non_finite_voltages(monkeypatch, value):
    verify_module = importlib.import_module("kirchhoffnet.spice.verify")

    monkeypatch.setattr(verify_module, "spice_trajectory", _fake_spice(value))
    with pytest.raises(ToolError, match=r"^ngspice's node voltages of slice 0 must be finite but 404 of 404 values"):
        kn.spice.verify(small_circuit(num_nodes=3, slices=1), 2)


def test_spice_verify_cli_refuses_a_nan_max_error(tmp_path):
    kn.save(kn.Flow(small_circuit(num_nodes=3, slices=1)), tmp_path / "flow.safetensors")
    result = runner.invoke(app, ["spice", "verify", str(tmp_path / "flow.safetensors"), "--max-error", "nan"])
    assert (
        result.exit_code == 2 and result.output == "error: --max-error must be a finite number in (0, inf], got nan\n"
    )


def test_the_r2_of_a_constant_target_is_undefined_not_a_crash(tmp_path, monkeypatch):
    import kirchhoffnet.tasks.regression as regression_module

    def constant(name: str, **kwargs: Any) -> tuple[np.ndarray, np.ndarray]:
        x = np.random.default_rng(0).normal(size=(200, 5))
        return x, np.full(200, 3.0)

    monkeypatch.setattr(regression_module, "load_regression", constant)
    test = train(tiny_regression(), tmp_path / "run", progress=False).metrics["test"]
    assert test["r2"] is None and "constant" in test["r2_note"] and math.isfinite(test["mse"])


def test_r2_is_one_minus_the_relative_error():
    from kirchhoffnet.tasks.regression import r_squared

    assert r_squared(0.25, 1.0) == {"r2": 0.75}
    assert r_squared(0.0, 0.0)["r2"] is None


def counting_metric() -> tuple[Metric, list[int]]:
    """A metric of constant 1 that records how often it was evaluated."""
    calls: list[int] = []

    def evaluate(model: Any) -> float:
        calls.append(1)
        return 1.0

    return Metric("count", evaluate, higher_is_better=True), calls


@pytest.mark.parametrize(("sigmas", "threshold"), [([0.01], math.nan), ([0.01], math.inf), ([0.01, math.nan], None)])
def test_monte_carlo_checks_the_threshold_and_every_sigma_before_any_die(sigmas, threshold):
    metric, calls = counting_metric()
    with pytest.raises(ConfigError):
        sigma_sweep(small_circuit(), metric, sigmas, trials=2, threshold=threshold)
    assert not calls


def test_a_monte_carlo_whose_dies_all_failed_is_still_written(tmp_path):
    result = summarize(counting_metric()[0], Variation(edge=0.1), 0, 1.0, [-math.inf, -math.inf], threshold=0.5)
    data = result.to_dict()
    assert data["mean"] is None and data["quantiles"]["0.5"] is None and data["yield_fraction"] == 0.0
    write_json_atomic(tmp_path / "mc.json", data)  # used to raise on NaN


def test_hw_montecarlo_threshold_nan_is_refused_before_any_work(tmp_path):
    kn.save(kn.Flow(small_circuit(num_nodes=3, slices=1)), tmp_path / "flow.safetensors", {"dataset": "twomoon"})
    for args, message in [
        (["--threshold", "nan"], "error: --threshold must be a finite number in [-inf, inf], got nan\n"),
        (["--sigma", "0.1,inf"], "error: --sigma must be a finite number in [0, 1], got inf\n"),
    ]:
        result = runner.invoke(app, ["hw", "montecarlo", str(tmp_path / "flow.safetensors"), *args])
        assert result.exit_code == 2 and result.output == message


def test_require_finite_names_the_figure_and_counts_the_bad_values():
    assert require_finite("x", 1.5) == 1.5
    with pytest.raises(SolverError, match=r"^v must be finite but 2 of 3 values are NaN or inf\w* \(first nan\); fix"):
        require_finite("v", torch.tensor([1.0, math.nan, math.inf]), "fix")
    with pytest.raises(ConfigError, match=r"^x is not a number \(got str\)"):
        require_finite("x", "abc", error=ConfigError)
    assert finite_number("--a", "2", low=0, open_low=True) == 2.0
    for value in (math.nan, -math.inf, 0.0):
        with pytest.raises(ConfigError, match=r"^--a must be a finite number in \(0, 1\]"):
            finite_number("--a", value, low=0, high=1, open_low=True)


# ---- the property: validated configs pushed to extremes ----------------------------------------

BOUNDED = [
    "train.epochs=1", "train.steps_per_epoch=2", "train.batch_size=16", "train.eval_batch_size=64",
    "solver.max_steps=300", "threads=1",
]  # fmt: skip
SCORE_BOUNDED = [  # a diffusion config has no solver section: its samplers take fixed steps
    "train.epochs=1", "train.steps_per_epoch=2", "train.batch_size=16", "train.eval_batch_size=64", "threads=1",
    "score_matching.val_size=64", "evaluate.num_samples=256", "sample.steps=20", "analog.steps=20",
]  # fmt: skip
SHIPPED = {  # small enough to train two steps in about a second, without data files
    "flow2d/twomoon.yaml": [
        "data.train_size=64", "data.val_size=32", "data.test_size=32", "grid=10",
        "circuit.topology.repeat=[3, 3]", *BOUNDED,
    ],
    "density/U1.yaml": ["val_samples=32", "test_samples=32", "grid=10", "circuit.topology.repeat=[3, 3]", *BOUNDED],
    "regression/kirchhoffnet-small.yaml": ["data.n_samples=100", *BOUNDED],
    "regression/mlp.yaml": ["data.n_samples=100", *BOUNDED],
    "diffusion/ring.yaml": SCORE_BOUNDED,
    "diffusion/ring_kirchhoffnet.yaml": ["model.hidden=8", *SCORE_BOUNDED],
}  # fmt: skip
EXTREMES = [1e-30, 1e30, 1e300, 1e-12, -1e-30, 10**10, 10**30, 0]
FORMER_BUGS: list[tuple[str, tuple[str | int, ...], Any]] = [  # (config, leaf, extreme): once failed inside torch
    ("diffusion/ring.yaml", ("model", "noise_floor"), 1e300),  # OverflowError: noise_floor**2 in output_gain
    ("diffusion/ring.yaml", ("train", "lr"), 1e300),  # torch Adam: "value cannot be converted to float"
    ("flow2d/twomoon.yaml", ("train", "lr"), 1e300),  # the same, in every task
    ("diffusion/ring.yaml", ("train", "eval_batch_size"), 10**30),  # ValueError in Tensor.split (validate)
    ("diffusion/ring.yaml", ("score_matching", "val_size"), 10**10),  # 40 GB allocation: no pre-flight term
    ("diffusion/ring.yaml", ("score_matching", "val_size"), 10**30),  # TypeError from torch.randn
]
RUN_SECONDS = 60.0
"""A mutated config that passes the pre-flight must end within this (two steps and an evaluation)."""


def _small(name: str) -> dict[str, Any]:
    return apply_overrides(load(name), SHIPPED[name])


def _numeric_leaves(data: dict[str, Any]) -> list[tuple[str | int, ...]]:
    def value(path: tuple[str | int, ...]) -> Any:
        node: Any = data
        for part in path:
            node = node[part]
        return node

    return [p for p in paths(data) if isinstance(value(p), int | float) and not isinstance(value(p), bool)]


class _EnoughError(Exception):
    """Raised from on_step: the run has taken its bounded number of steps."""


def _enough(info: dict[str, Any]) -> None:
    if info["step"] >= 3:
        raise _EnoughError


def _check_runtime(name: str, path: tuple[str | int, ...], extreme: Any) -> str:
    data = _small(name)
    node: Any = data
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = extreme
    try:
        config = parse_config(data)
        preflight(config)
    except ConfigError:
        return "refused"
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="runtime-") as tmp:
        try:
            metrics = train(config, Path(tmp) / "run", progress=False, on_step=_enough).metrics
        except _EnoughError:
            return "bounded"
        except KirchhoffError:
            return "error"
        finally:
            elapsed = time.perf_counter() - start
            assert elapsed < RUN_SECONDS, f"{name} with {path} = {extreme} ran {elapsed:.0f} s"
    assert metrics["status"] in ("finished", "stopped early")
    primary = metrics["test"][metrics["primary_metric"]]
    assert primary is not None and math.isfinite(primary), f"{name} with {path} = {extreme}: {primary}"
    return "finished"


@st.composite
def extreme_configs(draw: st.DrawFn) -> tuple[str, tuple[str | int, ...], Any]:
    name = draw(st.sampled_from(sorted(SHIPPED)))
    leaves = _numeric_leaves(_small(name))
    path = draw(st.sampled_from(leaves))
    return name, path, draw(st.sampled_from(EXTREMES))


def _property(examples: int):
    @settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(extreme_configs())
    def check(case: tuple[str, tuple[str | int, ...], Any]) -> None:
        old = os.environ.get(LIMIT_ENV)
        os.environ[LIMIT_ENV] = "8"
        try:
            _check_runtime(*case)
        finally:
            if old is None:
                del os.environ[LIMIT_ENV]
            else:
                os.environ[LIMIT_ENV] = old

    return check


def test_extreme_values_are_refused_or_run_to_finite_results_or_errors():
    _property(24)()  # 16 before the diffusion configs joined the four others


@pytest.mark.parametrize(("name", "path", "extreme"), FORMER_BUGS)
def test_extreme_values_that_once_failed_inside_torch_are_refused_or_errors(name, path, extreme, monkeypatch):
    monkeypatch.setenv(LIMIT_ENV, "8")
    # a crash inside torch escapes _check_runtime as a non-Kirchhoff exception; a finished run must be finite
    assert _check_runtime(name, path, extreme) in ("refused", "error", "bounded", "finished")


def test_a_settle_step_count_no_run_can_finish_is_refused_by_the_preflight():
    data = load("diffusion/ring_kirchhoffnet.yaml")
    data["model"]["settle_steps"] = 10**10
    config = parse_config(data)  # validates: the bound is the pre-flight's to give
    with pytest.raises(ConfigError, match=r"^model\.settle_steps: "):
        preflight(config)


@pytest.mark.slow
def test_extreme_values_sweep():
    _property(int(os.environ.get("KIRCHHOFFNET_RUNTIME_EXAMPLES", "300")))()


def test_every_numeric_leaf_of_the_shipped_configs_is_mutable():
    """The property reaches every key: the shrunk shipped configs validate, and list items count."""
    for name in SHIPPED:
        leaves = _numeric_leaves(_small(name))
        preflight(parse_config(_small(name)))
        assert any(p[-1] == "lr" for p in leaves)
    assert ("circuit", "times", 1) in _numeric_leaves(_small("flow2d/twomoon.yaml"))


def test_the_shipped_run_configs_pass_the_preflight():
    shipped = sorted((REPO / "configs").glob("*/*.yaml"))
    assert any(path.parent.name == "diffusion" for path in shipped)  # diffusion configs are run configs too
    for path in shipped:
        preflight(load_config(path))


def test_a_seed_past_64_bits_is_a_usage_error_on_every_command():
    """``sample --seed 2**70`` overflowed inside torch (an internal error) after the run was opened."""
    for args in (["sample", "run"], ["train", "config.yaml"], ["diffusion", "sample", "run"], ["eval", "run"]):
        result = CliRunner().invoke(app, [*args, "--seed", str(2**70)])
        assert result.exit_code == 2 and result.stderr.count("\n") == 1, result.stderr
        assert result.stderr.startswith("error: Invalid value for '--seed'"), result.stderr


def test_samples_the_disk_cannot_hold_are_refused_before_work(tmp_path, monkeypatch):
    from kirchhoffnet.errors import StorageError
    from kirchhoffnet.io import paths

    run = tmp_path / "run"
    train(tiny_flow(), run, progress=False)
    free = SimpleNamespace(free=10**6, total=10**7, used=9 * 10**6)
    monkeypatch.setattr(paths.shutil, "disk_usage", lambda path: free)
    with pytest.raises(StorageError, match=r"needs 0\.008 GB and the disk has 0\.001 GB free; ask for less"):
        kn.training.sample_run(run, 10**6, tmp_path / "samples")  # 10^6 × 2 float32 = 8 MB
    assert not (tmp_path / "samples").exists()


def test_spice_output_points_are_bounded_like_fixed_steps():
    from kirchhoffnet.spice.netlist import SpiceOptions

    SpiceOptions(points=MAX_FIXED_STEPS)
    with pytest.raises(ConfigError, match=r"points: 1000000000 output points is more than the limit of 1e\+07"):
        SpiceOptions(points=10**9)


def test_a_nan_from_ngspice_never_passes_the_score_circuit_check(monkeypatch):
    """The fake simulator's NaN voltages reached the JSON write (an internal error) instead of failing."""
    from kirchhoffnet.diffusion import circuit_spice

    from ..diffusion.test_circuit_score import tiny

    class NanVoltages(dict):
        def __missing__(self, key: str) -> np.ndarray:
            return np.full(5, np.nan)

    class NanResult:
        def plot(self, name: str) -> dict[str, np.ndarray]:
            return NanVoltages(time=np.linspace(0.0, 1.0, 5))

    monkeypatch.setattr(circuit_spice, "run_ngspice", lambda deck, timeout_s: NanResult())
    with pytest.raises(ToolError, match=r"^ngspice's node voltages .*the simulator diverged"):
        circuit_spice.verify_score_circuit(tiny(settle_steps=5), samples=1, hidden_capacitance=0.05)


def test_an_analog_horizon_that_rounds_to_zero_is_a_config_error():
    """``analog.integration_time_s: 1e-300`` validated, then torchdiffeq refused [0, 0] (an internal error)."""
    from kirchhoffnet.rram.loop import ClosedLoop, LoopSettings

    loop = ClosedLoop.__new__(ClosedLoop)
    loop.settings = LoopSettings(integration_time_s=1e-300)
    with pytest.raises(ConfigError, match=r"^analog\.integration_time_s = 1e-300 over \d+ steps is not representable"):
        loop.run(torch.zeros(2, 2), stochastic=False)


def test_a_truncated_inputs_file_is_one_line(tmp_path):
    inputs = tmp_path / "inputs.npy"
    np.save(inputs, np.zeros((4, 2)))
    inputs.write_bytes(inputs.read_bytes()[:100])
    result = CliRunner().invoke(app, ["hw", "report", str(tmp_path), "--inputs", str(inputs)])
    assert result.exit_code == 1 and result.stderr.count("\n") == 1, result.stderr  # a truncated file


@pytest.mark.parametrize("value", [math.inf, math.nan])
def test_studies_refuse_a_trained_model_whose_own_metric_is_not_finite(value):
    """A run with capacitances of 1e-30 F validated (positive, finite) and then printed 'σ 0.1: nan ± 0'
    from `hw montecarlo`: the nominal value every study compares against was not finite."""
    from kirchhoffnet.hardware.quantize import quantization_sweep

    diverged = Metric("mse", lambda model: value)
    with pytest.raises(SolverError, match=r"^the trained model's mse must be finite but is (inf|nan); its circuit"):
        sigma_sweep(small_circuit(), diverged, [0.1], trials=2)
    with pytest.raises(SolverError, match=r"^the trained model's mse must be finite"):
        quantization_sweep(small_circuit(), diverged, [4])
