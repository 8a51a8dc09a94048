"""Data paths written in a config file are relative to that file (a config and its data travel together);
paths given with --set stay relative to the working directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from kirchhoffnet.config import load_config

REPO = Path(__file__).resolve().parents[2]


def test_mnist_offline_reads_the_repository_data_folder_from_any_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # not the repository: the old cwd-relative root would point into tmp_path
    config = load_config(REPO / "configs" / "mnist_gen" / "mnist_offline.yaml")
    assert Path(config.data.root) == REPO / "data" / "mnist"
    overridden = load_config(REPO / "configs" / "mnist_gen" / "mnist_offline.yaml", ["data.root=elsewhere"])
    assert overridden.data.root == "elsewhere"  # the command line's own relative path


@pytest.mark.parametrize("name", ["classify/mnist.yaml", "classify/cifar10.yaml", "classify/svhn.yaml"])
def test_every_shipped_image_root_is_the_repository_data_folder(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = load_config(REPO / "configs" / name)
    assert Path(config.data.root).parent == REPO / "data"


def test_a_config_elsewhere_anchors_its_roots_and_the_latent_folder(tmp_path):
    folder = tmp_path / "configs" / "mine"  # a copy of the repository's layout elsewhere
    folder.mkdir(parents=True)
    (folder / "gen.yaml").write_text((REPO / "configs" / "mnist_gen" / "mnist_offline.yaml").read_text())
    assert Path(load_config(folder / "gen.yaml").data.root) == tmp_path / "data" / "mnist"
    (folder / "latent.yaml").write_text(
        "task: diffusion\ndata: latent\nmodel: {kind: crossbar}\nlatent: {dataset: emnist_byclass, data_dir: emnist}\n"
        "train: {epochs: 1, batch_size: 8, lr: 0.001}\n"
    )
    assert Path(load_config(folder / "latent.yaml").latent.data_dir) == folder / "emnist"
