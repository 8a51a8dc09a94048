"""Score-based diffusion on an analog RRAM solver (Yang et al., arXiv 2404.05648): the VP-SDE, the tiny
score network, denoising score matching with the noise-aware option (the loss of the shared trainer's
diffusion task, [`kirchhoffnet.tasks.diffusion`][kirchhoffnet.tasks.diffusion]), the score-field protocol, the sampler
registry (digital and analog samplers), and the histogram KL metrics."""

from kirchhoffnet.diffusion.analog import AnalogRun, analog_sample, program_chip
from kirchhoffnet.diffusion.field import Guided, ScoreField
from kirchhoffnet.diffusion.loss import Saturation, dsm_loss
from kirchhoffnet.diffusion.metrics import kl_2d, kl_pooled
from kirchhoffnet.diffusion.samplers import DIGITAL_SOLVERS, SOLVER_ALIASES, sample
from kirchhoffnet.diffusion.score import ScoreModel, ScoreNet, TimeEmbedding
from kirchhoffnet.diffusion.sde import VPSDE

__all__ = [
    "DIGITAL_SOLVERS",
    "SOLVER_ALIASES",
    "VPSDE",
    "AnalogRun",
    "Guided",
    "Saturation",
    "ScoreField",
    "ScoreModel",
    "ScoreNet",
    "TimeEmbedding",
    "analog_sample",
    "dsm_loss",
    "kl_2d",
    "kl_pooled",
    "program_chip",
    "sample",
]
