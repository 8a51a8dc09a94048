"""Resistive-memory (RRAM) in-memory computing: crossbars of differential conductance pairs, a seeded
chip, the continuous-time closed-loop analog integrator, and its speed/energy model."""

from kirchhoffnet.rram.chip import Chip
from kirchhoffnet.rram.crossbar import Crossbar
from kirchhoffnet.rram.device import RRAMDevice
from kirchhoffnet.rram.loop import ClosedLoop, LoopReport, LoopSettings

__all__ = ["Chip", "ClosedLoop", "Crossbar", "LoopReport", "LoopSettings", "RRAMDevice"]
