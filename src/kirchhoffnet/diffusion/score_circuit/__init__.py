"""A diffusion model whose probability-flow velocity is a KirchhoffNet circuit (issue 9).

The circuit has four kinds of nodes, all on the core [`Slice`][kirchhoffnet.Slice] machinery
(one KCL kernel, the same device families and ``edge_index`` convention):

* ground (node 0);
* ``dim`` **data nodes** (1 … dim): integrating capacitors C_x carrying the sample x;
* ``hidden`` **hidden nodes**: small capacitors C_h with a leak conductance g to ground;
* ``time_nodes`` **time nodes**: voltage sources driven with a fixed embedding of the diffusion time,
  e_k(s) = sin / cos(2π f_k s) — sources, never integrated (their dv/dt is imposed, not computed);
* ``num_classes`` **class nodes** (conditional circuits): DC voltage sources holding the one-hot label,
  1 V on the wanted class's node and 0 V elsewhere; all at 0 V is the unconditional circuit that
  classifier-free guidance's label dropout trains.

The time and class nodes are the circuit's **driven nodes**. Nonlinear devices (one learnable column each)
join every data node and every driven node to every hidden node, and the data nodes to ground and to the
driven nodes. With I(·) the KCL currents of the devices,

    C_x dx/dτ = I_x(x, h, e(s)),        C_h dh/dτ = I_h(x, h, e(s)) − g h,        s = 1 − τ.

For C_h ≪ C_x the hidden nodes sit at their equilibrium h*(x, s) (``I_h = g h``; found by relaxation
h ← I_h/g, the hidden nodes' own settling with step C_h/g), and the data nodes move with the velocity

    u(x, s) = I_x(x, h*(x, s), e(s)) / C_x.

The model is trained so that u is the **probability-flow velocity** of the VP-SDE in reverse time,
u = ½ β(s) (x + ∇log p_s(x)); equivalently the score it represents is ∇log p_s = 2 u / β − x, which is
what denoising score matching trains. Generation by the probability-flow ODE is then the circuit's own
transient: release the data capacitors at x ~ N(0, I) while the time sources sweep s from 1 to s_min.
Sampling with β ×k (the sharpening knob of the crossbar model) is the capacitors C_x / k. The reverse
SDE additionally needs dx/dτ = 2u − ½ β x + √β ξ: a gain of 2 on the device currents, a time-varying
negative conductance and a noise current source (documented, simulated digitally by the samplers).
Classifier-free guidance with strength w is two copies of the circuit on the same data nodes, one with the
label's sources and one with all class sources at 0 V, whose currents into the data nodes are mixed
(1 + w) I_x(c) − w I_x(∅) (current-mirror gains): u = (1 + w) u(x, s | c) − w u(x, s).

The package, one module per concern (each imports only those before it):

* `topology`: the node numbering and the devices' ``edge_index``;
* `settle`: the hidden nodes' balance I_h − g h and its Newton solve;
* `circuit`: ``ScoreCircuit``, the programmed devices, their
  currents, the driven nodes and the settled velocity;
* `model`: ``CircuitScoreModel``, the circuit with its VP-SDE
  and classifier-free guidance as circuit copies;
* `sample`: generation, the circuit's own transient or the reverse SDE;
* `likelihood`: log p(x) of the probability-flow density.
"""
