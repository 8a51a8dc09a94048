import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from kirchhoffnet.cli.main import app
from kirchhoffnet.data.images import IMAGE_SETS
from kirchhoffnet.diffusion.run import load_run
from kirchhoffnet.diffusion.sampling import sample_run
from kirchhoffnet.errors import CheckpointError, ConfigError
from tests.data.test_class_images import write_emnist_byclass

TINY_RING = """
task: diffusion
data: ring
seed: 3
threads: 1
model: {kind: crossbar}
train: {epochs: 2, steps_per_epoch: 20, batch_size: 128, lr: 0.003, grad_clip: 1.0, ema_decay: 0.999}
sample: {steps: 20}
analog: {steps: 20}
evaluate: {num_samples: 300, chips: 2, prog_noise_levels: [0.0, 0.1], robustness_steps: 10, verify_tolerance: 0.02}
"""


@pytest.fixture(scope="module")
def ring_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("ring")
    (root / "tiny.yaml").write_text(TINY_RING)
    result = CliRunner().invoke(app, ["train", str(root / "tiny.yaml"), "--out", str(root / "run")])
    assert result.exit_code == 0, result.output
    return root / "run"


def test_train_writes_a_run_directory(ring_run):
    for name in ("config.yaml", "checkpoint.pt", "model.safetensors", "metrics.json", "loss.png", "samples.png"):
        assert (ring_run / name).is_file()
    run = load_run(ring_run)
    assert run.config.seed == 3 and run.model.net.width == 14
    metrics = json.loads((ring_run / "metrics.json").read_text())
    assert metrics["task"] == "diffusion" and metrics["primary_metric"] == "kl_pooled" and metrics["steps"] == 40
    assert np.isfinite(metrics["test"]["kl_pooled"]) and metrics["test"]["solver"] == "pf-ode"
    assert len(metrics["history"]["val_loss"]) == 3  # the untrained model and two epochs


@pytest.mark.parametrize("solver", ["euler", "pf-ode", "analog", "analog-ode"])
def test_sample_command_writes_an_array(ring_run, tmp_path, solver):
    out = tmp_path / "samples.npy"
    args = [
        "diffusion",
        "sample",
        str(ring_run),
        "-n",
        "50",
        "--solver",
        solver,
        "--prog-noise",
        "0.05",
        "--out",
        str(out),
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    samples = np.load(out)
    assert samples.shape == (50, 2) and samples.dtype == np.float32 and np.isfinite(samples).all()
    assert json.loads(result.stdout)["prog_noise"] == 0.05


def test_a_chip_seed_is_reproducible_and_noise_matters(ring_run):
    run = load_run(ring_run)
    first = sample_run(run, 40, "pf-ode", prog_noise=0.1, chip_seed=1)[0]
    again = sample_run(run, 40, "pf-ode", prog_noise=0.1, chip_seed=1)[0]
    other = sample_run(run, 40, "pf-ode", prog_noise=0.1, chip_seed=2)[0]
    assert np.array_equal(first, again) and not np.allclose(first, other)


def test_evaluate_writes_metrics_and_figures(ring_run):
    result = CliRunner().invoke(app, ["diffusion", "evaluate", str(ring_run)])
    assert result.exit_code == 0, result.output
    metrics = json.loads((ring_run / "evaluation.json").read_text())
    for solver in ("euler", "analog", "euler (exact)"):  # a 40-step model: its SDE samples may all leave [−4, 4]
        assert metrics[solver]["kl_pooled"] is None or np.isfinite(metrics[solver]["kl_pooled"])
    for solver in ("pf-ode", "analog-ode", "pf-ode (exact)"):
        assert np.isfinite(metrics[solver]["kl_pooled"])
    assert metrics["pf-ode"]["kl_pooled"] == pytest.approx(metrics["analog-ode"]["kl_pooled"], rel=1e-3)
    assert [p["prog_noise"] for p in metrics["robustness"]["curve"]] == [0.0, 0.1]
    assert len(metrics["robustness"]["curve"][1]["kl_pooled_per_chip"]) == 2
    verified = metrics["robustness_write_verify"]
    assert verified["verify_tolerance"] == 0.02 and [p["prog_noise"] for p in verified["curve"]] == [0.0, 0.1]
    # without programming noise there is nothing to verify: both curves start at the same chip
    assert verified["curve"][0]["kl_pooled_per_chip"] == metrics["robustness"]["curve"][0]["kl_pooled_per_chip"]
    assert metrics["speed_energy"]["ratios"]["latency_speedup"] > 0
    for name in ("samples.png", "robustness.png", "speed_energy.txt", "speed_energy.json"):
        assert (ring_run / name).is_file()


def test_compare_plots_evaluated_runs(ring_run, tmp_path):
    result = CliRunner().invoke(app, ["diffusion", "evaluate", str(ring_run)])
    assert result.exit_code == 0, result.output
    out = tmp_path / "both.png"
    result = CliRunner().invoke(app, ["diffusion", "compare", str(ring_run), str(ring_run), "--out", str(out)])
    assert result.exit_code == 0, result.output
    table = json.loads(result.stdout)
    assert out.is_file() and set(table[ring_run.name]) == {"0.0", "0.1"}
    assert set(table[f"{ring_run.name}, write-verify ±0.02"]) == {"0.0", "0.1"}
    before = json.loads((ring_run / "evaluation.json").read_text())
    args = ["diffusion", "evaluate", str(ring_run), "--robustness-only", "--verify-tolerance", "0.05"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    after = json.loads((ring_run / "evaluation.json").read_text())
    assert after["euler"] == before["euler"] and after["robustness"] == before["robustness"]  # same chips, same seeds
    assert after["robustness_write_verify"]["verify_tolerance"] == 0.05
    result = CliRunner().invoke(app, ["diffusion", "compare", str(tmp_path)])
    assert result.exit_code == 1 and "evaluation.json does not exist" in result.output


def test_write_verify_programs_a_more_faithful_chip(ring_run, tmp_path):
    run = load_run(ring_run)
    exact = sample_run(run, 40, "pf-ode")[0]
    open_loop = sample_run(run, 40, "pf-ode", prog_noise=0.1, chip_seed=1)[0]
    verified, info = sample_run(run, 40, "pf-ode", prog_noise=0.1, chip_seed=1, verify_tolerance=0.01)
    assert info["verify_tolerance"] == 0.01
    # weights within ±1 % instead of ~±10 %: the samples move far less away from the ideal chip's
    assert float((verified - exact).abs().max()) < 0.5 * float((open_loop - exact).abs().max())
    out = tmp_path / "verified.npy"
    args = ["diffusion", "sample", str(ring_run), "-n", "8", "--solver", "pf-ode", "--prog-noise", "0.1"]
    result = CliRunner().invoke(app, [*args, "--chip", "1", "--verify-tolerance", "0.01", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["verify_tolerance"] == 0.01


def test_training_can_start_from_a_run(ring_run, tmp_path):
    head = "task: diffusion\ndata: ring\nseed: 5\nmodel: {kind: crossbar}\n"
    head += "evaluate: {num_samples: 50}\nsample: {steps: 5}\n"
    train = "train: {epochs: 1, steps_per_epoch: 1, batch_size: 8, lr: 1.0e-12}\n"
    (tmp_path / "fine.yaml").write_text(f"{head}{train}score_matching: {{init_from: '{ring_run}'}}\n")
    result = CliRunner().invoke(app, ["train", str(tmp_path / "fine.yaml"), "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    start, tuned = load_run(ring_run).model.state_dict(), load_run(tmp_path / "run").model.state_dict()
    for name, value in start.items():
        # one Adam step of 1e-12 from the loaded weights (a fresh seed-5 model would differ by O(0.1))
        torch.testing.assert_close(tuned[name], value, rtol=0, atol=1e-9)
    (tmp_path / "missing.yaml").write_text(f"{head}{train}score_matching: {{init_from: '{tmp_path / 'nowhere'}'}}\n")
    result = CliRunner().invoke(app, ["train", str(tmp_path / "missing.yaml"), "--out", str(tmp_path / "other")])
    assert result.exit_code == 2 and "score_matching.init_from:" in result.output and "does not exist" in result.output


def test_speed_energy_command_prints_the_report(ring_run):
    args = ["diffusion", "speed-energy", str(ring_run), "--batch", "20", "--assume", "digital_power_w=300"]
    result = CliRunner().invoke(app, [*args, "--assume", "drive_hold_s=0.002"])
    assert result.exit_code == 0, result.output
    assert "throughput speed-up" in result.output and "digital_power_w = 300.0" in result.output
    report = json.loads((ring_run / "speed_energy.json").read_text())
    assert report["assumptions"]["digital_batch"] == 20 and not report["conditional"]
    analog, digital = report["analog"], report["digital"]
    assert analog["latency_terms_s"]["drive_hold"] == 0.002 and analog["latency_terms_s"]["integration"] == 1e-3
    assert analog["energy_j"] == pytest.approx(sum(analog["energy_terms_j"].values()))
    assert analog["crossbar_power_w"] > 0 and analog["energy_terms_j"]["noise_source"] > 0  # the reverse SDE
    assert digital["batched_energy_per_sample_j"] == pytest.approx(
        300.0 * report["assumptions"]["digital_batch_time_s"] / 20
    )
    assert report["ratios"]["latency_speedup"] == pytest.approx(digital["single_latency_s"] / analog["latency_s"])
    result = CliRunner().invoke(
        app, ["diffusion", "speed-energy", str(ring_run), "--batch", "5", "--solver", "analog-ode"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads((ring_run / "speed_energy.json").read_text())["analog"]["energy_terms_j"]["noise_source"] == 0
    bad = CliRunner().invoke(app, ["diffusion", "speed-energy", str(ring_run), "--batch", "5", "--assume", "gpu=1"])
    assert bad.exit_code == 2 and "speed/energy assumption gpu: Extra inputs are not permitted" in bad.output
    bad = CliRunner().invoke(app, ["diffusion", "speed-energy", str(ring_run), "--assume", "digital_power_w"])
    assert bad.exit_code == 2 and "--assume takes NAME=VALUE with a number" in bad.output
    bad = CliRunner().invoke(app, ["diffusion", "speed-energy", str(ring_run), "--solver", "euler"])
    assert bad.exit_code == 2 and "speed/energy solver" in bad.output


def test_read_noise_acts_on_the_analog_loop_only(ring_run, tmp_path):
    run = load_run(ring_run)
    quiet, info = sample_run(run, 40, "analog-ode", seed=1)
    noisy, noisy_info = sample_run(run, 40, "analog-ode", seed=1, read_noise=0.2)
    assert info["read_noise"] == 0 and noisy_info["read_noise"] == 0.2
    assert not torch.allclose(quiet, noisy)  # the probability-flow ODE is deterministic: only the reads differ
    with pytest.raises(ConfigError, match="--read-noise acts on the analog loop"):
        sample_run(run, 4, "pf-ode", read_noise=0.05)
    out = tmp_path / "noisy.npy"
    args = ["diffusion", "sample", str(ring_run), "-n", "8", "--solver", "analog", "--read-noise", "0.05"]
    result = CliRunner().invoke(app, [*args, "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["read_noise"] == 0.05
    bad = CliRunner().invoke(app, [*args[:-2], "--read-noise", "1.5", "--out", str(out)])
    assert bad.exit_code == 2 and "read noise is a relative standard deviation" in bad.output


def test_cli_errors_are_one_line(tmp_path, ring_run):
    result = CliRunner().invoke(app, ["diffusion", "sample", str(tmp_path)])
    assert result.exit_code == 1  # not a run directory: a runtime failure
    assert "is not a trained diffusion run directory" in result.output and "Traceback" not in result.output
    result = CliRunner().invoke(app, ["diffusion", "sample", str(ring_run), "--solver", "rk45"])
    assert (
        result.exit_code == 2
        and "unknown solver 'rk45'; choose one of: analog, analog-ode, euler, pf-ode" in result.output
    )
    (tmp_path / "bad.yaml").write_text("task: diffusion\ndata: ring\ntrian: {}\n")
    result = CliRunner().invoke(app, ["train", str(tmp_path / "bad.yaml")])
    assert result.exit_code == 2 and "trian: unknown key; valid keys here:" in result.output
    result = CliRunner().invoke(app, ["diffusion", "train", str(tmp_path / "bad.yaml")])
    assert result.exit_code == 2 and "No such command 'train'" in result.output


def test_set_overrides_the_config_file(tmp_path):
    (tmp_path / "tiny.yaml").write_text(TINY_RING)
    args = ["train", str(tmp_path / "tiny.yaml"), "--set", "model.width=6", "--set", "train.steps_per_epoch=2"]
    result = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    run = load_run(tmp_path / "run")
    assert run.config.model.width == 6 and run.config.train.steps_per_epoch == 2 and run.config.seed == 3
    assert run.model.net.layers[0].weight.shape == (6, 2)  # the overridden width is what was built
    result = CliRunner().invoke(app, ["train", str(tmp_path / "tiny.yaml"), "--set", "model.width=-1"])
    assert result.exit_code == 2 and "model.width: must be >= 2, got -1" in result.output
    result = CliRunner().invoke(app, ["train", str(tmp_path / "tiny.yaml"), "--set", "model.width"])
    assert result.exit_code == 2 and "expected key=value" in result.output


def test_library_errors(tmp_path, ring_run):
    with pytest.raises(CheckpointError, match=r"needs config\.yaml and model\.safetensors"):
        load_run(tmp_path)
    with pytest.raises(ConfigError, match="unknown solver 'dpm'"):
        sample_run(load_run(ring_run), 4, "dpm")
    with pytest.raises(
        ConfigError, match="the write-verify tolerance must be a positive fraction of the target, got 0"
    ):
        sample_run(load_run(ring_run), 4, "pf-ode", prog_noise=0.1, verify_tolerance=0.0)


@pytest.mark.needs_dataset
def test_latent_task_end_to_end(tmp_path):
    if not (Path(IMAGE_SETS["fashion_mnist"].default_root) / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip("Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)")
    (tmp_path / "latent.yaml").write_text(
        "task: diffusion\ndata: latent\nmodel: {kind: crossbar}\n"
        "latent: {max_train_images: 300, vae_epochs: 1, classifier_epochs: 1}\n"
        "train: {epochs: 2, batch_size: 64, lr: 0.003}\nsample: {steps: 10, guidance: 1.0}\nanalog: {steps: 10}\n"
        "evaluate: {num_samples: 60, guidance_sweep: [0.0, 2.0]}\n"
    )
    runner = CliRunner()
    result = runner.invoke(app, ["train", str(tmp_path / "latent.yaml"), "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    trained = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert trained["primary_metric"] == "judge_accuracy" and 0.0 <= trained["test"]["judge_accuracy"] <= 1.0
    assert trained["steps"] == 10  # 300 images of 3 classes, 240 of them for training: 4 batches per epoch + ...
    result = runner.invoke(app, ["diffusion", "evaluate", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "run" / "evaluation.json").read_text())
    assert 0.0 <= metrics["analog"]["accuracy"] <= 1.0
    assert len(metrics["guidance_sweep"]["results"]) == 2
    result = runner.invoke(app, ["diffusion", "speed-energy", str(tmp_path / "run"), "--batch", "6"])
    assert result.exit_code == 0, result.output  # a conditional run: the classes are drawn in turn
    report = json.loads((tmp_path / "run" / "speed_energy.json").read_text())
    assert report["conditional"] and report["circuit"]["branches"] == 2  # guidance 1.0: two network copies
    for name in ("vae.safetensors", "classifier.safetensors", "latents.safetensors", "images.png", "guidance.png"):
        assert (tmp_path / "run" / name).is_file()


def test_the_paper_setting_trains_on_byclass_files_and_accounts_for_its_guided_loop(tmp_path):
    (tmp_path / "emnist").mkdir()
    write_emnist_byclass(tmp_path / "emnist", n_train=150, n_test=60)  # real-format files, synthetic images
    (tmp_path / "paper.yaml").write_text(
        "task: diffusion\ndata: latent\nmodel: {kind: crossbar}\n"
        f"latent: {{dataset: emnist_byclass, data_dir: '{tmp_path / 'emnist'}', classes: [H, K, U], pooled_size: 14,"
        " vae_epochs: 1, classifier_epochs: 1}\n"
        "train: {epochs: 1, batch_size: 30, lr: 0.003}\nsample: {steps: 10, guidance: 0.5}\nanalog: {steps: 10}\n"
        "evaluate: {num_samples: 30, guidance_sweep: [0.0]}\n"
    )
    runner = CliRunner()
    result = runner.invoke(app, ["train", str(tmp_path / "paper.yaml"), "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    assert load_run(tmp_path / "run").config.latent.classes == [17, 20, 30]  # the run records the labels
    result = runner.invoke(app, ["diffusion", "speed-energy", str(tmp_path / "run"), "--batch", "6"])
    assert result.exit_code == 0, result.output  # a conditional run: its classes are drawn in turn
    report = json.loads((tmp_path / "run" / "speed_energy.json").read_text())
    assert report["conditional"] and report["circuit"]["branches"] == 2  # guidance: two copies of the network
    assert report["circuit"]["opamps"] == 2 * (5 * 14 + 2) + 4 * 2


def test_hw_report_refuses_a_crossbar_run(ring_run, tmp_path):
    result = CliRunner().invoke(app, ["hw", "report", str(ring_run), "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "kirchhoffnet diffusion speed-energy" in result.output


def test_spice_command_refuses_a_crossbar_run(ring_run):
    result = CliRunner().invoke(app, ["diffusion", "spice", str(ring_run)])
    assert result.exit_code == 2
    assert "exports KirchhoffNet score circuits" in result.output
