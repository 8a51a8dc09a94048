"""train.reference_solver: each validation also under another solve, so that a network trained on a coarse fixed
step shows, epoch by epoch, how far its accuracy rests on that step's error; refused where there is no ODE solve."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from kirchhoffnet.config import SolverConfig, load_config
from kirchhoffnet.errors import ConfigError
from kirchhoffnet.tasks.plots import loss_curves
from kirchhoffnet.training import open_run, train

from .helpers import tiny_flow, tiny_regression

REPO = Path(__file__).resolve().parents[2]
COARSE = ("solver.method=euler", "solver.step_size=0.5")  # 2 steps per slice: far from the ODE
TIGHT = "train.reference_solver={method: dopri5, rtol: 1e-7, atol: 1e-7}"


@pytest.fixture(scope="module")
def coarse_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("reference") / "run"
    return run, train(tiny_flow("train.epochs=2", *COARSE, TIGHT), run, progress=False)


def test_the_reference_figures_are_the_model_under_that_solve(coarse_run):
    run, result = coarse_run
    last = result.metrics["history"]["validation"][-1]
    _, task, model = open_run(run)  # the saved parameters are the last epoch's (no average, no early stopping)
    assert model.solver.method == "euler"  # the trained solve is put back after each reference validation
    assert task.validate(model)["loss"] == pytest.approx(last["loss"], rel=1e-6)
    model.solver = SolverConfig(method="dopri5", rtol=1e-7, atol=1e-7).build()
    assert task.validate(model)["loss"] == pytest.approx(last["reference_loss"], rel=1e-6)
    # Two Euler steps per slice are not the ODE: the two figures differ, at every validation.
    for validation in result.metrics["history"]["validation"]:
        assert abs(validation["reference_loss"] - validation["loss"]) > 1e-3


def test_the_csv_has_a_reference_column_per_validation_figure(coarse_run):
    run, result = coarse_run
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    assert [float(row["val_reference_loss"]) for row in rows] == pytest.approx(
        [v["reference_loss"] for v in result.metrics["history"]["validation"]], rel=1e-6
    )


def test_the_same_solve_as_reference_repeats_the_validation(tmp_path):
    result = train(tiny_flow("train.epochs=1", "train.reference_solver={}"), tmp_path / "run", progress=False)
    for validation in result.metrics["history"]["validation"]:
        assert validation["reference_loss"] == pytest.approx(validation["loss"], rel=1e-9)


def test_without_it_validation_reports_no_reference(tmp_path):
    result = train(tiny_flow("train.epochs=1"), tmp_path / "run", progress=False)
    assert not any(key.startswith("reference_") for key in result.metrics["history"]["validation"][-1])


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (
            lambda: tiny_regression("circuit=null", "baseline={hidden: [8]}", TIGHT),
            "train.reference_solver: this run's model has no ODE solve",
        ),
        (lambda: tiny_flow("train.reference_solver={method: nope}"), r"train\.reference_solver\.method: .*nope"),
        (lambda: tiny_flow("train.reference_solver={stepsize: 0.1}"), r"train\.reference_solver\.stepsize: Extra"),
        (lambda: tiny_flow("train.reference_solver={method: rk4}"), r"train\.reference_solver: .*step size"),
    ],
)
def test_a_reference_that_cannot_be_solved_is_refused_in_one_line(config, message):
    with pytest.raises(ConfigError, match=message) as caught:
        config()
    assert "\n" not in str(caught.value)


def test_a_reference_grid_past_the_step_limit_is_refused_before_the_run_directory(tmp_path):
    config = tiny_flow("train.reference_solver={method: rk4, step_size: 1e-9}")  # 1e9 steps a slice
    with pytest.raises(ConfigError, match=r"train\.reference_solver\.step_size: 1e-09 makes 1e\+09 rk4 steps"):
        train(config, tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


def test_an_ode_net_reference_takes_no_circuit_machinery():
    with pytest.raises(ConfigError, match=r"train\.reference_solver: kernel and integrator 'fused' apply to circuits"):
        load_config(
            REPO / "configs" / "classify" / "fashion_mnist_odenet.yaml", ["train.reference_solver={integrator: fused}"]
        )


def test_the_reference_validation_leaves_the_training_unchanged(coarse_run, tmp_path):
    _, result = coarse_run
    plain = train(tiny_flow("train.epochs=2", *COARSE), tmp_path / "plain", progress=False)
    for name, value in plain.model.state_dict().items():
        assert result.model.state_dict()[name].equal(value), name


def test_the_loss_plot_draws_the_reference_curve(coarse_run):
    _, result = coarse_run
    axes = loss_curves(result.metrics["history"], "coarse").axes[0]
    assert [line.get_label() for line in axes.lines] == ["train", "validation", "validation, reference solve"]
