"""The issue's accuracy targets, end to end (slow: minutes of CPU; run with `pytest -m slow`)."""

from pathlib import Path

import pytest

from kirchhoffnet.config import load_config
from kirchhoffnet.data.images import IMAGE_SETS
from kirchhoffnet.data.points import sample_ring
from kirchhoffnet.diffusion.evaluate import evaluate
from kirchhoffnet.diffusion.metrics import kl_pooled
from kirchhoffnet.diffusion.run import load_run
from kirchhoffnet.diffusion.sampling import sample_run
from kirchhoffnet.training import train

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "diffusion"


@pytest.mark.slow
def test_ring_reaches_the_kl_targets(tmp_path):
    run = load_run(train(load_config(CONFIGS / "ring.yaml"), tmp_path / "run", progress=False).run_dir)
    reference = sample_ring(10_000, seed=12345)
    ode = sample_run(run, 10_000, "pf-ode")[0]
    sde = sample_run(run, 10_000, "euler")[0]
    analog_ode = sample_run(run, 10_000, "analog-ode")[0]
    assert kl_pooled(ode, reference) <= 0.01  # issue: PF-ODE ≤ 0.01 (measured 0.0082)
    assert kl_pooled(sde, reference) <= 0.05  # issue: reverse SDE ≤ 0.05 (measured 0.022)
    assert kl_pooled(analog_ode, reference) == pytest.approx(kl_pooled(ode, reference), abs=1e-3)


@pytest.mark.slow
def test_a_wider_noise_aware_network_survives_programming_noise(tmp_path):
    """Issue 8's robustness criterion, open-loop programming at σ = 0.1, mean of chips 0–2, analog SDE."""
    rise = {}
    for name in ("ring.yaml", "ring_noise_aware.yaml"):
        overrides = ["model.width=32", "evaluate.prog_noise_levels=[0.0, 0.1]", "evaluate.verify_tolerance=null"]
        train(load_config(CONFIGS / name, overrides), tmp_path / name, progress=False)
        curve = evaluate(tmp_path / name, robustness_only=True, progress=False)["robustness"]["curve"]
        rise[name] = curve[1]["kl_pooled_mean"] - curve[0]["kl_pooled_mean"]
    assert rise["ring_noise_aware.yaml"] <= 0.02  # issue: within 0.02 (measured +0.011)
    assert rise["ring.yaml"] >= 2 * max(rise["ring_noise_aware.yaml"], 0.01)  # plain degrades (measured +0.050)


@pytest.mark.slow
def test_score_circuit_reaches_the_ring_target(tmp_path):
    run = load_run(
        train(load_config(CONFIGS / "ring_kirchhoffnet_passive.yaml"), tmp_path / "run", progress=False).run_dir
    )
    assert run.model.circuit.num_nodes <= 64
    ode = sample_run(run, 10_000, "pf-ode")[0]  # the circuit's own transient, β ×1.2
    assert kl_pooled(ode, sample_ring(10_000, seed=12345)) <= 0.03  # issue 9: ≤ 0.03 (measured 0.0089)


@pytest.mark.slow
@pytest.mark.needs_dataset
@pytest.mark.parametrize(
    ("config_file", "solvers"),
    [
        ("latent.yaml", ("euler", "pf-ode", "analog", "analog-ode")),  # the crossbar: measured 100 %
        ("latent_kirchhoffnet.yaml", ("pf-ode", "euler")),  # the score circuit: measured 99.8–100 % per class
    ],
)
def test_conditional_images_are_class_faithful(tmp_path, config_file, solvers):
    if not (Path(IMAGE_SETS["fashion_mnist"].default_root) / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip("Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)")
    config = load_config(CONFIGS / config_file)
    config = config.model_copy(update={"evaluate": config.evaluate.model_copy(update={"num_samples": 600})})
    train(config, tmp_path / "run", progress=False)
    metrics = evaluate(tmp_path / "run", progress=False)
    for solver in solvers:
        assert min(metrics[solver]["accuracy_per_class"]) >= 0.9  # issue: ≥ 90 %
