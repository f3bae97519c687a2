"""Tutorial 2's vanishing and exploding gradients, measured in a deep MLP on real digits.

A ``depth``-layer MLP (width 64) on scikit-learn's 8x8 digits: the norm of the loss gradient with
respect to each layer's weights, at initialisation and after ``steps`` SGD steps, for sigmoid, tanh,
ReLU, leaky ReLU, ELU and maxout; then, for ReLU, the initialisation (zeros, Glorot, He, He x 3)
and batch normalisation (each pre-activation standardised over the batch). Zero initialisation
keeps every unit of a layer identical, as tutorial 3 warns: the spread across units is reported.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp

from jaxdl import data as data_lib
from jaxdl import plots
from jaxdl.claims import Claim, Run, at_least, at_most
from jaxdl.experiments import Experiment
from jaxdl.experiments.settings import ActivationsConfig as Config
from jaxdl.functional import activations as A
from jaxdl.functional.init import glorot_uniform, he_normal, zeros
from jaxdl.functional.losses import softmax_cross_entropy
from jaxdl.rundir import RunDir

WIDTH = 64
ACTIVATIONS = {
    "sigmoid": (A.sigmoid, glorot_uniform, 1),
    "tanh": (A.tanh, glorot_uniform, 1),
    "relu": (A.relu, he_normal, 1),
    "leaky_relu": (A.leaky_relu, he_normal, 1),
    "elu": (A.elu, he_normal, 1),
    "maxout": (lambda z: A.maxout(z, 2), glorot_uniform, 2),  # two pieces per unit; He init diverged here
}


def init_params(key, depth: int, init, pieces: int = 1, scale: float = 1.0) -> list[dict]:
    """Parameters of the study's MLP: ``depth`` hidden layers of width 64 on 64 inputs, then 10 logits.

    Args:
      key: PRNG key, split over the layers.
      depth: the number of hidden layers.
      init: the hidden layers' weight initialiser, ``(key, shape) -> array``
        (e.g. ``he_normal``); the output layer is always Glorot-uniform.
      pieces: linear pieces per unit: 2 for maxout, whose layers produce
        ``pieces * 64`` pre-activations that the activation reduces to 64.
      scale: a factor on the hidden weights (3.0 for the "He x 3" scheme).

    Returns:
      ``depth + 1`` layers, each ``{"w": (n_in, n_out), "b": (n_out,)}``, float32.
    """
    dims = [64] + [WIDTH] * depth
    keys = jax.random.split(key, depth + 1)
    layers = [
        {"w": scale * init(k, (n_in, pieces * n_out)), "b": jnp.zeros(pieces * n_out)}
        for k, n_in, n_out in zip(keys[:-1], dims[:-1], dims[1:], strict=True)
    ]
    layers.append({"w": glorot_uniform(keys[-1], (WIDTH, 10)), "b": jnp.zeros(10)})
    return layers


def forward(params, x, activation, batch_norm: bool = False):
    """The MLP's logits.

    Args:
      params: layers from :func:`init_params`.
      x: inputs, float ``(B, 64)``.
      activation: applied after each hidden layer, e.g. ``A.relu``.
      batch_norm: standardise each pre-activation over the batch (no learned
        scale or shift) before the activation.

    Returns:
      Logits, float ``(B, 10)``.
    """
    h = x
    for layer in params[:-1]:
        z = h @ layer["w"] + layer["b"][None]
        if batch_norm:
            z = (z - z.mean(0, keepdims=True)) / jnp.sqrt(z.var(0, keepdims=True) + 1e-5)
        h = activation(z)
    return h @ params[-1]["w"] + params[-1]["b"][None]


def _loss(params, x, y, activation, batch_norm=False):
    return softmax_cross_entropy(forward(params, x, activation, batch_norm), y)


def _norms(params, x, y, activation, batch_norm=False) -> list[float]:
    grads = jax.grad(_loss)(params, x, y, activation, batch_norm)
    return [float(jnp.linalg.norm(g["w"])) for g in grads[:-1]]


def _train(params, x, y, activation, config, batch_norm=False):
    @jax.jit
    def step(p, k):
        rows = jax.random.choice(k, x.shape[0], (config.batch_size,), replace=False)
        g = jax.grad(_loss)(p, x[rows], y[rows], activation, batch_norm)
        return jax.tree.map(lambda a, b: a - config.lr * b, p, g)

    keys = jax.random.split(jax.random.key(config.seed + 7), config.steps)
    for k in keys:
        params = step(params, k)
    return params


def run(config: Config, run_dir: RunDir) -> dict[str, Any]:
    """Per-layer gradient norms for each activation, initialisation and batch norm.

    Writes one history record per activation and layer (the norms at
    initialisation and after training) and ``gradient_norms.png``.

    Args:
      config: depth, SGD steps, batch size, learning rate and seed.
      run_dir: where the history and the figure go.

    Returns:
      Metrics, where a ratio is layer 1's weight-gradient norm over the last
      hidden layer's (far below 1: vanishing; far above: exploding):
      ``{act}_first_over_last_at_init`` and ``{act}_first_over_last_trained``
      and ``{act}_final_loss`` (full-data cross-entropy after training) for
      each activation of ``ACTIVATIONS``; ``init_{scheme}_first_over_last``
      at initialisation for the ReLU schemes ``zeros``, ``glorot``, ``he``,
      ``he_x_3``, ``he_plus_batch_norm`` and ``sigmoid_plus_batch_norm``
      (inf where the last layer's gradient is exactly 0); and
      ``zeros_unit_spread_after_training``, the largest standard deviation
      across the units of zero-initialised layer 1 (0: they stayed identical).
    """
    ds = data_lib.load("digits", "train")
    x = jnp.asarray(ds.inputs.reshape(len(ds), -1), jnp.float32) / 255.0
    x = (x - x.mean(0, keepdims=True)) / (x.std(0, keepdims=True) + 1e-6)
    y = jnp.asarray(ds.labels)
    key = jax.random.key(config.seed)
    metrics: dict[str, Any] = {}
    at_init, after = {}, {}
    for name, (activation, init, pieces) in ACTIVATIONS.items():
        params = init_params(key, config.depth, init, pieces)
        at_init[name] = _norms(params, x, y, activation)
        trained = _train(params, x, y, activation, config)
        after[name] = _norms(trained, x, y, activation)
        metrics[f"{name}_first_over_last_at_init"] = at_init[name][0] / at_init[name][-1]
        metrics[f"{name}_first_over_last_trained"] = after[name][0] / after[name][-1]
        metrics[f"{name}_final_loss"] = float(_loss(trained, x, y, activation))
    schemes = {
        "zeros (exactly 0)": (zeros, 1.0, False), "glorot": (glorot_uniform, 1.0, False), "he": (he_normal, 1.0, False),
        "he x 3": (he_normal, 3.0, False), "he + batch norm": (he_normal, 1.0, True),
        "sigmoid + batch norm": (glorot_uniform, 1.0, True),
    }  # fmt: skip
    init_norms = {}
    for name, (init, scale, bn) in schemes.items():
        activation = A.sigmoid if name.startswith("sigmoid") else A.relu
        params = init_params(key, config.depth, init, 1, scale)
        init_norms[name] = _norms(params, x, y, activation, bn)
        if name.startswith("zeros"):
            trained = _train(params, x, y, activation, config)
            metrics["zeros_unit_spread_after_training"] = float(jnp.max(jnp.std(trained[0]["w"], axis=1)))
    for name, norms in init_norms.items():
        key_name = name.split(" (")[0].replace(" ", "_").replace("+", "plus")
        metrics[f"init_{key_name}_first_over_last"] = norms[0] / norms[-1] if norms[-1] else math.inf
    for name in ACTIVATIONS:
        print(f"{name:<11} |dL/dW| first/last layer: at init {metrics[f'{name}_first_over_last_at_init']:.2e}, "
              f"after {config.steps} steps {metrics[f'{name}_first_over_last_trained']:.2e}; "
              f"loss {metrics[f'{name}_final_loss']:.3f}")  # fmt: skip
    for name, norms in init_norms.items():
        print(f"relu/sigmoid init {name:<21} |dL/dW| layer 1 {norms[0]:.2e}, layer {config.depth} {norms[-1]:.2e}")
    print(f"zero initialisation: largest spread between units of layer 1 after training "
          f"{metrics['zeros_unit_spread_after_training']:.1e} (identical units)")  # fmt: skip
    run_dir.append_history(
        [{"activation": n, "layer": i + 1, "at_init": a, "trained": b}
         for n in ACTIVATIONS for i, (a, b) in enumerate(zip(at_init[n], after[n], strict=True))]
    )  # fmt: skip
    run_dir.save_figure(plots.gradient_norms(at_init, after, init_norms), "gradient_norms.png")
    return metrics


EXPERIMENT = Experiment(
    name="activations",
    description="tutorial 2: per-layer gradient norms of a 20-layer MLP for six activations, initialisations and "
    "batch norm",
    config=Config,
    run=run,
    smallest=("depth=8", "steps=5"),
    claims=(
        Run(name="activations", quick=("steps=50",), claims=(
            Claim(source="tutorial 2", statement="sigmoid gradients vanish with depth: layer-1 / layer-20 "
                  "gradient norm at init", tutorial="vanishing", metric="sigmoid_first_over_last_at_init", fmt="{:.2g}",
                  target=at_most(1e-3, "<= 1e-3")),
            Claim(source="tutorial 2", statement="... and ReLU's do not", tutorial="",
                  metric="relu_first_over_last_at_init", fmt="{:.2g}", target=at_least(1e-2, ">= 1e-2")),
        )),
    ),
)  # fmt: skip
