"""Drawing is notebook-safe: figures come back as objects, the user's backend and pyplot stay untouched."""

import subprocess
import sys


def test_plots_return_figures_without_switching_the_backend_or_opening_pyplot_figures(tmp_path):
    code = f"""
import matplotlib
matplotlib.use("svg")  # a user's backend choice, as a notebook's inline backend would be
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from kirchhoffnet.diffusion import plots as diffusion_plots
from kirchhoffnet.hardware import plots as hardware_plots
from kirchhoffnet.io.figures import save_figure
from kirchhoffnet.tasks import plots as task_plots
figure = task_plots.samples_vs_data(np.random.randn(50, 2), np.random.randn(50, 2), None, "t")
assert isinstance(figure, Figure)
fig, ax = plt.subplots()
assert task_plots.loss_curves({{"epoch": [1, 2], "train_loss": [2.0, 1.0], "val_loss": [None, 1.5]}}, "t", ax=ax) is fig
assert isinstance(diffusion_plots.sample_panels({{"a": np.random.randn(20, 2)}}), Figure)
assert isinstance(hardware_plots.plot_quantization({{}}, "t"), Figure)
assert save_figure(figure, r"{tmp_path / "x.png"}").read_bytes()[:4] == b"\\x89PNG"
assert matplotlib.get_backend() == "svg", matplotlib.get_backend()
assert plt.get_fignums() == [1], plt.get_fignums()  # only the user's own figure
print("ok")
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]
