"""The training loss's curvature on tutorial 1's CIFAR-10 MLP and CNN, from Hessian-vector products.

For each network (trained here for ``epochs``, or restored from the newest
checkpoint of an earlier ``jaxdl run cifar10-mlp`` / ``cifar10-cnn`` with
``from_run_mlp`` / ``from_run_cnn``), on a fixed batch of training images with
the training loss as the engine computes it (batch norm on batch statistics, a
fixed dropout mask):

- the top ``top_k`` Hessian eigenvalues by Lanczos (:mod:`jaxdl.curvature`),
  checked first against ``eigvalsh`` of the exact Hessian of a digits MLP small
  enough to form it;
- the eigenvalue density by stochastic Lanczos quadrature, at initialisation
  and after training;
- filter-normalised 1-D and 2-D loss slices around the parameters (Li et al.,
  2018); the MLP has no batch norm, the CNN has it after every layer;
- the cost of one Hessian-vector product in each order: the compiled
  program's time (median of blocked calls) and temporary memory. Forward mode
  alone gives one number per pass, v' H v, not H v (that takes n passes), so
  its row is the one-pass v' H v.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.flatten_util import ravel_pytree

from jaxdl import config as config_lib
from jaxdl import curvature, plots
from jaxdl import data as data_lib
from jaxdl.claims import Claim, Run, at_most
from jaxdl.compilation_cache import run_once
from jaxdl.errors import JaxdlError
from jaxdl.experiments import Experiment, cifar10
from jaxdl.experiments.settings import CurvatureConfig as Config
from jaxdl.functional import mlp_apply, mlp_init, softmax_cross_entropy
from jaxdl.models import CNN, MLP
from jaxdl.rundir import RunDir, read_json
from jaxdl.train import Checkpoints, Task, classification_loss, fit, init_state, steps_per_epoch
from jaxdl.train.timing import stable_seconds


def _restore(name: str, path: str, train: dict) -> tuple[Task, Any]:
    """The task and trained TrainState of the newest checkpoint in an earlier run directory."""
    experiment = {"mlp": "cifar10-mlp", "cnn": "cifar10-cnn"}[name]
    try:
        saved = read_json(Path(path) / "config.json")
    except (OSError, ValueError) as e:
        raise JaxdlError(f"setting from_run_{name}: cannot read {path}/config.json ({e})") from None
    if saved.get("experiment") != experiment:
        raise JaxdlError(f"setting from_run_{name}: {path} holds a {saved.get('experiment')} run, not {experiment}")
    config_class = cifar10.MLPConfig if name == "mlp" else cifar10.CNNConfig
    fields = {f.name for f in dataclasses.fields(config_class)}
    run_config = config_lib.resolve(config_class, config_lib.as_overrides({k: v for k, v in saved["config"].items()
                                                                           if k in fields}))  # fmt: skip
    if name == "mlp":
        task, tx = Task(MLP(hidden=run_config.hidden), classification_loss, cifar10.normalize_batch), optax.adam(1.0)
    else:
        task = cifar10.cnn_task(run_config)
        tx = cifar10.cnn_optimizer(run_config, steps_per_epoch(len(train["labels"]), run_config.batch_size))
    state, _ = init_state(task, tx, train, jax.random.key(0))
    checkpoints = Checkpoints(Path(path) / "checkpoints")
    latest = checkpoints.latest()
    if latest is None:
        raise JaxdlError(f"setting from_run_{name}: {path} holds no checkpoint")
    state, _ = checkpoints.restore(latest, state)
    checkpoints.close()
    print(f"{name}: restored epoch {latest} of {path}")
    return task, state


def _trained(name: str, config: Config, train: dict) -> tuple[Task, Any, Any]:
    """(task, state at initialisation, trained state)."""
    if name == "mlp":
        task, tx = Task(MLP(), classification_loss, cifar10.normalize_batch), optax.adam(1e-3)
    else:
        cnn_config = cifar10.CNNConfig(recipe="tutorial", batch_size=config.batch_size)
        task, tx = cifar10.cnn_task(cnn_config), cifar10.cnn_optimizer(cnn_config, 1)
    state, shuffle_key = init_state(task, tx, train, jax.random.key(config.seed), batch_size=config.batch_size)
    restore_from = config.from_run_mlp if name == "mlp" else config.from_run_cnn
    if restore_from:
        task, trained = _restore(name, restore_from, train)
        return task, state, trained
    if config.epochs == 0:
        return task, state, state
    result = fit(task, state, train, epochs=config.epochs, batch_size=config.batch_size, key=shuffle_key,
                 log=lambda line: print(f"{name}: {line}"))  # fmt: skip
    return task, state, jax.device_get(result.state)


def _loss_of(task: Task):
    """The training loss ``loss(params, batch_stats, batch, key)``: batch statistics and the dropout key fixed,
    so it is a function of the parameters alone, with its data as arguments (see :mod:`jaxdl.curvature`).

    The CNN sees the batch as one group here: its groups only keep a CPU's cores busy in a training step
    (see ``CNN.groups``) and compute the same function, while each group doubles the second-order programs
    that XLA compiles."""
    if isinstance(task.model, CNN):
        task = dataclasses.replace(task, model=task.model.clone(batch_groups=1))

    def loss(params, batch_stats, batch, key):
        losses, _, _ = task.forward(params, batch_stats, batch, key, train=True)
        return jnp.mean(losses)

    return loss


def _hvp_costs(loss, data: tuple, params, key: jax.Array, samples: int) -> dict[str, dict[str, float]]:
    """Time (at most ``samples`` timed samples) and temporary memory of one HVP of ``loss(params, *data)``
    per order, data as arguments."""
    v = jax.jit(lambda params: jax.tree.map(lambda p: jax.random.normal(key, p.shape, p.dtype), params))(params)
    programs = {
        "fwd-over-rev": lambda p, v, d: curvature.hvp(lambda q: loss(q, *d), p, v, "fwd-over-rev"),
        "rev-over-fwd": lambda p, v, d: curvature.hvp(lambda q: loss(q, *d), p, v, "rev-over-fwd"),
        "rev-over-rev": lambda p, v, d: curvature.hvp(lambda q: loss(q, *d), p, v, "rev-over-rev"),
        "fwd-over-fwd (v'Hv)": lambda p, v, d: curvature.second_directional_derivative(lambda q: loss(q, *d), p, v),
        "gradient (reference)": lambda p, v, d: jax.grad(loss)(p, *d),
    }
    costs = {}
    for order, fn in programs.items():
        start = time.perf_counter()
        compiled = jax.jit(fn).lower(params, v, data).compile()
        compile_seconds = time.perf_counter() - start
        jax.block_until_ready(compiled(params, v, data))
        seconds, low, high = stable_seconds(compiled, params, v, data, min_samples=5, max_samples=samples)
        memory = compiled.memory_analysis()
        costs[order] = {"ms": 1e3 * seconds, "ms_low": 1e3 * low, "ms_high": 1e3 * high, "compile_s": compile_seconds,
                        "temp_mb": memory.temp_size_in_bytes / 2**20 if memory else None}  # fmt: skip
    return costs


def _digits_loss(p, x, y):
    return softmax_cross_entropy(mlp_apply(p, x, activation=jnp.tanh), y)


def lanczos_against_exact(seed: int, k: int = 5, iterations: int = 30) -> float:
    """Largest relative error of Lanczos's top ``k`` eigenvalues against ``eigvalsh`` of the exact Hessian.

    The network is a 64-8-10 tanh MLP at initialisation on 500 of
    scikit-learn's digits (610 parameters, small enough to form the Hessian),
    in float64, so the error measures Lanczos, not rounding.

    Args:
      seed: seeds the MLP's initialisation and Lanczos's starting vector.
      k: how many of the largest eigenvalues to compare.
      iterations: Lanczos iterations (at least ``k``).

    Returns:
      ``max |lanczos - exact| / |exact|`` over the top ``k``.
    """
    with jax.enable_x64(True):
        ds = data_lib.load("digits", "train")
        x = jnp.asarray(data_lib.normalize(ds.inputs[:500], "unit").reshape(500, -1), jnp.float64)
        y = jnp.asarray(ds.labels[:500])
        params = jax.jit(lambda key: jax.tree.map(lambda a: a.astype(jnp.float64), mlp_init(key, [64, 8, 10])))(
            jax.random.key(seed)
        )  # one program, not one per operation
        flat, unravel = ravel_pytree(params)
        hessian = jax.jit(jax.hessian(lambda q, x, y: _digits_loss(unravel(q), x, y)))(flat, x, y)  # one program
        exact = np.sort(np.linalg.eigvalsh(np.asarray(hessian)))
        top = curvature.top_eigenvalues(_digits_loss, params, x, y, k=k, key=jax.random.key(seed),
                                        iterations=iterations)  # fmt: skip
        exact = exact[::-1][:k]
        return float(np.max(np.abs(top - exact) / np.abs(exact)))


def run(config: Config, run_dir: RunDir) -> dict[str, Any]:
    """The Lanczos check, then each network's eigenvalues, spectral density, loss slices and HVP costs.

    Writes one history record per network and HVP order (milliseconds with
    their 95% interval, compile seconds, temporary MiB), ``spectrum.png`` and
    ``slices.png``.

    Args:
      config: the networks ("mlp,cnn"), their training (``epochs``, or
        ``from_run_mlp``/``from_run_cnn``), the probe batch's size
        (``hvp_batch``), and the Lanczos, density and slice settings.
      run_dir: where the history and figures go.

    Returns:
      Metrics: ``lanczos_exact_max_relative_error`` (see
      :func:`lanczos_against_exact`), and for each network NAME:
      ``NAME_parameters`` (count), ``NAME_top_eigenvalues`` (the top
      ``top_k``, largest first), ``NAME_top_eigenvalue``, ``NAME_loss`` (the
      training loss on the probe batch) and ``NAME_hvp_costs``
      (``{order: {"ms", "ms_low", "ms_high", "compile_s", "temp_mb"}}``).
    """
    check_error = lanczos_against_exact(config.seed)
    print(f"Lanczos against the exact Hessian (digits MLP, 610 parameters): top 5 agree to {check_error:.2g}")
    metrics: dict[str, Any] = {"lanczos_exact_max_relative_error": check_error}
    train_ds = cifar10.sample(data_lib.load("cifar10", "train", data=config.data or None), config.train_size)
    train = train_ds.arrays()
    # a random sample: the copies are stored class by class, so the first images are all airplanes
    rows = np.sort(np.random.default_rng(config.seed).choice(len(train_ds), min(config.hvp_batch, len(train_ds)),
                                                             replace=False))  # fmt: skip
    batch = {k: jnp.asarray(v[rows]) for k, v in train.items()}
    batch["mask"] = jnp.ones(len(batch["labels"]), bool)
    key = jax.random.key(config.seed)
    densities, slices, costs = {}, {}, {}
    for index, name in enumerate(config.networks):
        task, initial, trained = _trained(name, config, train)
        loss = _loss_of(task)
        loss_key = jax.random.fold_in(key, 10 + index)
        params, data = trained.params, (trained.batch_stats, batch, loss_key)
        top = curvature.top_eigenvalues(loss, params, *data, k=config.top_k, key=jax.random.fold_in(key, 20 + index),
                                        iterations=config.lanczos_iterations)  # fmt: skip
        print(f"{name}: top {config.top_k} Hessian eigenvalues " + ", ".join(f"{v:.4g}" for v in top))
        densities[name] = {}
        for when, state in (("initialisation", initial), ("trained", trained)):
            grid, density, _ = curvature.spectral_density(
                loss, state.params, state.batch_stats, batch, loss_key, key=jax.random.fold_in(key, 30 + index),
                vectors=config.density_vectors, iterations=config.density_iterations,
            )  # fmt: skip
            densities[name][when] = (grid, density)
        directions = [  # each runs once: compiled at level 0
            run_once(curvature.filter_normalized_direction, params, jax.random.fold_in(key, 40 + index + 100 * i))
            for i in range(2)
        ]
        line_points = np.linspace(-config.slice_radius, config.slice_radius, config.slice_points)
        square_points = np.linspace(-config.slice_radius, config.slice_radius, max(config.slice_points // 2, 3))
        slices[name] = {
            "line": (line_points, curvature.loss_slice(loss, params, directions[:1], line_points, *data)),
            "square": (square_points, curvature.loss_slice(loss, params, directions, square_points, *data)),
        }
        metrics[f"{name}_parameters"] = sum(int(np.size(p)) for p in jax.tree.leaves(params))
        metrics[f"{name}_top_eigenvalues"] = [float(v) for v in top]
        metrics[f"{name}_top_eigenvalue"] = float(top[0])
        metrics[f"{name}_loss"] = float(run_once(loss, params, *data))  # one program, not one per operation
        if not config.hvp_costs:
            continue
        costs[name] = _hvp_costs(loss, data, params, jax.random.fold_in(key, 50 + index), config.hvp_samples)
        metrics[f"{name}_hvp_costs"] = costs[name]
        for order, cost in costs[name].items():
            print(f"{name}: {order:<22} {cost['ms']:8.2f} ms ({cost['ms_low']:.2f}-{cost['ms_high']:.2f})  "
                  f"{cost['temp_mb']:8.1f} MiB temporaries "
                  f"(compile {cost['compile_s']:.1f} s)")  # fmt: skip
    run_dir.append_history([{"network": n, "order": o, **c} for n, table in costs.items() for o, c in table.items()])
    run_dir.save_figure(plots.curvature_spectra(metrics, densities), "spectrum.png")
    run_dir.save_figure(plots.loss_slices(slices), "slices.png")
    return metrics


EXPERIMENT = Experiment(
    name="curvature",
    description="Hessian of the CIFAR-10 MLP and CNN: Lanczos top eigenvalues, spectral density, loss slices, "
    "HVP cost in four orders",
    config=Config,
    run=run,
    smallest=("epochs=1", "batch_size=8", "hvp_batch=16", "top_k=3", "lanczos_iterations=6", "density_vectors=1",
              "density_iterations=6", "slice_points=5", "hvp_samples=5"),  # fmt: skip
    claims=(
        Run(name="curvature", data="cifar10",
            # the quick tour leaves out the HVP cost table, no claim's figure: its CNN programs are half the run
            quick=("epochs=1", "train_size=5000", "hvp_batch=64", "top_k=5", "lanczos_iterations=10",
                   "density_iterations=10", "slice_points=9", "hvp_costs=false"), claims=(
            Claim(source="Ghorbani et al. 2019", statement="Lanczos on Hessian-vector products against eigvalsh of "
                  "the exact Hessian (610 parameters): largest relative error of the top 5 eigenvalues",
                  tutorial="", metric="lanczos_exact_max_relative_error", fmt="{:.2g}",
                  target=at_most(1e-4, "<= 1e-4")),
            Claim(source="tutorial 1", statement="trained CIFAR-10 MLP: the Hessian's largest eigenvalue", tutorial="",
                  metric="mlp_top_eigenvalue", fmt="{:.4g}"),
            Claim(source="tutorial 1", statement="trained CIFAR-10 CNN: the Hessian's largest eigenvalue", tutorial="",
                  metric="cnn_top_eigenvalue", fmt="{:.4g}"),
        )),
    ),
)  # fmt: skip
