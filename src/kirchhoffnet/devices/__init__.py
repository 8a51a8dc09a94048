"""Two-terminal device families: the I-V laws on the circuit's edges.

Each family is one class; defining it registers it. ``resolve("ShiftTanh2")`` or
``resolve(ShiftTanh2())`` gives an instance, ``available()`` lists the names.
"""

from kirchhoffnet.devices.base import AffineActivation, Device, available, resolve
from kirchhoffnet.devices.conductance import Conductance
from kirchhoffnet.devices.mos import MosRelu
from kirchhoffnet.devices.relu import ShiftLeakyRelu1, ShiftLeakyRelu2, ShiftRelu1, ShiftRelu2
from kirchhoffnet.devices.tanh import ShiftTanh1, ShiftTanh2
from kirchhoffnet.devices.transistor import TransistorTable

__all__ = [
    "AffineActivation",
    "Conductance",
    "Device",
    "MosRelu",
    "ShiftLeakyRelu1",
    "ShiftLeakyRelu2",
    "ShiftRelu1",
    "ShiftRelu2",
    "ShiftTanh1",
    "ShiftTanh2",
    "TransistorTable",
    "available",
    "resolve",
]
