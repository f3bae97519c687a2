"""Forward gradients that learn (Ren et al., 2023): local losses and activity perturbation against backprop.

The MLP on flattened MNIST or CIFAR-10 images (``dataset``: only the inputs'
loading and width change) is cut into blocks (a dense layer and ReLU each), and
every block has linear heads to the ten classes: its local losses. The methods train it
from the same initialisations, on the same batches, with Adam at the same rate,
for the same epochs:

* ``backprop``: the exact gradient of the network's loss, end to end;
* ``lg-bp``: the exact gradient of each block's local loss, with
  ``stop_gradient`` between blocks (greedy local learning, no forward gradient);
* ``fg-w``: the local losses, each block's dense layer estimated by a
  weight-perturbed forward gradient (``(fan_in + 1) H`` directions);
* ``fg-a``: the local losses, each block's dense layer estimated by an
  activity-perturbed forward gradient (``H`` directions per example).

* ``heads``: the heads alone, the dense layers frozen at their start: the
  floor that a linear read-out of random ReLU features reaches, which the
  other local methods lift only as far as their dense layers learn.

``lg-bp`` against ``backprop`` is what local losses cost; ``fg-a`` against
``lg-bp`` is what the forward gradient costs. Every method trains ``seeds``
replicas at once under ``jax.vmap``; the figures are their mean with a 95%
interval. The cosine of each estimator to the exact local gradient is measured
at the start for several numbers of tangents k, against the theory for the
weight-perturbed one, ``E[cos^2] = k / (k + n - 1)``. See
:mod:`jaxdl.forward_learning` for the estimators.
"""

from __future__ import annotations

import functools
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.flatten_util import ravel_pytree

from jaxdl import data as data_lib
from jaxdl import forward_learning as fl
from jaxdl import plots, stats
from jaxdl.claims import PERCENT, Claim, Run, at_most
from jaxdl.compilation_cache import level_0_options, run_once
from jaxdl.experiments import Experiment
from jaxdl.experiments.settings import ForwardLearningConfig as Config
from jaxdl.results import RunResult
from jaxdl.rundir import RunDir

NAMES = {
    "backprop": "backprop (end to end)",
    "lg-bp": "LG-BP (local losses, backprop in each block)",
    "fg-w": "FG-W (local losses, weight-perturbed)",
    "fg-a": "FG-A (local losses, activity-perturbed)",
    "heads": "heads only (dense layers frozen)",
}
COLORS = {"backprop": "tab:blue", "lg-bp": "tab:purple", "fg-w": "tab:orange", "fg-a": "tab:green", "heads": "gray"}
DATASETS = {"mnist": "MNIST", "cifar10": "CIFAR-10"}
ESTIMATOR = {"lg-bp": "backprop", "fg-w": "weight", "fg-a": "activity", "heads": "backprop"}


def _images(config: Config, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """``(x, y, x_test, y_test)``: random subsets of ``n_train`` and ``n_test`` images (0: all), flattened.

    With ``validation`` > 0 the "test" images are that many held out of the training split instead.

    MNIST's pixels go to [0, 1]; CIFAR-10's are standardised per channel by the training images' statistics
    (as :func:`jaxdl.experiments.image_classifier.image_task` does). Only this, and so the input width, depends
    on the dataset.
    """
    train = data_lib.load(config.dataset, "train", data=config.data or None)
    if config.validation:  # for tuning: held-out training images stand in for the test split, which stays unread
        train, held_out = data_lib.train_val_split(train, config.validation, seed=config.seed)
    else:
        held_out = data_lib.load(config.dataset, "test", data=config.data or None)
    splits = []
    for ds, limit in ((train, config.n_train), (held_out, config.n_test)):
        rows = np.sort(rng.choice(len(ds), limit, replace=False)) if 0 < limit < len(ds) else np.arange(len(ds))
        splits.append((ds.inputs[rows], np.asarray(ds.labels[rows], np.int32)))
    (train, y), (test, y_test) = splits
    channels = train.shape[-1]
    unit = (np.zeros(channels), np.ones(channels))  # (x / 255 - 0) / 1: MNIST's pixels as they are
    standardize = data_lib.standardize(*(data_lib.channel_stats(train) if config.dataset == "cifar10" else unit))

    def flat(images):
        return np.asarray(standardize({"inputs": images}, None, False)["inputs"]).reshape(len(images), -1)

    return flat(train), y, flat(test), y_test


def _gradient_fn(method: str, tangents: int, signs: bool):
    """``(params, x, y, key) -> (loss of the network's output, gradient or estimate)`` of one method;
    FG-A averages ``tangents`` tangents (random ``signs`` or normal), FG-W draws one."""
    if method == "backprop":
        return lambda p, x, y, key: jax.value_and_grad(fl.end_to_end_loss)(p, x, y)

    def local(p, x, y, key):
        k = tangents if method == "fg-a" else 1
        losses, grads = fl.local_gradients(p, x, y, key, estimator=ESTIMATOR[method], num_tangents=k, signs=signs)
        if method == "heads":  # the dense layers keep their start: a floor that the dense layers' learning lifts
            grads = {
                b: {"dense": jax.tree.map(jnp.zeros_like, g["dense"]), "head": g["head"]} for b, g in grads.items()
            }
        return losses[-1], grads  # the last block's loss is the network's

    return local


@jax.jit
def _accuracy(params, x, y):
    """Each replica's accuracy on ``(x, y)``: one program for every method."""
    return jax.vmap(lambda p: jnp.mean(jnp.argmax(fl.blocked_mlp_apply(p, x), -1) == y))(params)


def _train(method: str, config: Config, params, batches: np.ndarray, x, y, x_test, y_test, key) -> dict[str, Any]:
    """Trains the replicas ``params`` (stacked over seeds) for ``len(batches)`` epochs; one compiled epoch.

    ``batches[e, s]`` holds the rows of seed s's steps in epoch e, the same for every method.
    """
    tx, grads_of = optax.adam(config.lr), _gradient_fn(method, config.tangents, config.signs)

    def step(carry, rows, x, y):
        params, opt_state, key = carry
        key, sub = jax.random.split(key)
        loss, grads = grads_of(params, x[rows], y[rows], sub)
        updates, opt_state = tx.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state, key), loss

    def epoch(state, rows, x, y):  # rows: (seeds, steps, batch)
        return jax.vmap(lambda s, r: jax.lax.scan(lambda c, b: step(c, b, x, y), s, r))(state, rows)

    seeds = len(batches[0])
    state = (params, jax.vmap(tx.init)(params), jax.random.split(key, seeds))
    x, y, x_test, y_test = (jnp.asarray(a) for a in (x, y, x_test, y_test))
    start = time.perf_counter()
    compiled = jax.jit(epoch).lower(state, batches[0], x, y).compile()
    compile_seconds = time.perf_counter() - start
    memory = compiled.memory_analysis()
    accuracies, losses, seconds = [np.asarray(_accuracy(state[0], x_test, y_test))], [], 0.0
    for rows in batches:
        start = time.perf_counter()
        state, loss = jax.block_until_ready(compiled(state, rows, x, y))
        seconds += time.perf_counter() - start
        accuracies.append(np.asarray(_accuracy(state[0], x_test, y_test)))
        losses.append(np.asarray(loss).mean(1))
    return {
        "accuracy": np.stack(accuracies, 1),  # (seeds, epochs + 1), epoch 0 the initialisation
        "loss": np.stack(losses, 1),  # (seeds, epochs): the network's training loss, mean over each epoch
        "ms_per_step": 1e3 * seconds / batches.shape[0] / batches.shape[2],
        "compile_seconds": compile_seconds,
        "temp_bytes": int(memory.temp_size_in_bytes) if memory else None,
        "params": jax.tree.map(lambda p: p[0], state[0]),  # seed 0's trained network
    }


def _mean_cos2(params, x, y, exact, keys, *, k: int, estimator: str, signs: bool) -> jax.Array:
    """Each block's squared cosine to ``exact`` averaged over one estimate per key; the network, the data
    and the exact gradients are arguments, not constants of the program."""

    def one(key):
        est = fl.local_gradients(params, x, y, key, estimator=estimator, num_tangents=k, signs=signs)[1]
        return jnp.stack(
            [fl.cosine(est[b]["dense"], exact[b]["dense"]) ** 2 for b in map(fl.block_name, range(len(params)))]
        )

    return jax.lax.map(one, keys).mean(0)  # one draw at a time: k tangents of every weight are enough


@functools.cache
def _mean_cos2_program():
    """:func:`_mean_cos2` compiled once per k and estimator, which the end-of-training cosines reuse; made on
    first use, when the backend that decides its compiler options is known."""
    return jax.jit(_mean_cos2, static_argnames=("k", "estimator", "signs"), compiler_options=level_0_options())


def _cosines(
    params, x, y, ks: list[int], draws: int, key: jax.Array, signs: bool, estimators=("weight", "activity")
) -> dict[str, np.ndarray]:
    """Per forward estimator, the root-mean-square cosine of each block's dense gradient to LG-BP's: (k, blocks);
    the activity-perturbed tangents are random ``signs`` or normal, as in training."""
    _, exact = run_once(functools.partial(fl.local_gradients, estimator="backprop"), params, x, y, key)
    out = {}
    for estimator in estimators:
        rows = []
        for k in ks:
            keys = jax.random.split(jax.random.fold_in(key, k), draws)
            cos2 = _mean_cos2_program()(params, x, y, exact, keys, k=k, estimator=estimator, signs=signs)
            rows.append(np.sqrt(np.asarray(cos2)))
        out[estimator] = np.stack(rows)
    return out


def run(config: Config, run_dir: RunDir) -> RunResult:
    """Trains every method over the seeds, measures the estimators' cosines, and draws both.

    Args:
      config: the settings.
      run_dir: where the history and ``forward_learning.png`` go.

    Returns:
      The figures (per method its mean test accuracy, ms per step and temporary bytes; the gaps
      in points, paired by seed; the cosines), each accuracy's and gap's 95% interval over seeds,
      and each seed's accuracies.
    """
    key = jax.random.key(config.seed)
    rng = np.random.default_rng(config.seed)
    x, y, x_test, y_test = _images(config, rng)
    hidden, methods, ks = list(config.hidden), list(config.methods), list(config.cosine_ks)
    sizes = [x.shape[1], *hidden]
    batch = min(config.batch_size, len(y))
    steps = len(y) // batch
    # every method starts from the same initialisations and reads the same batches: seed s of each is paired
    params = run_once(  # one program, not one per operation
        jax.vmap(lambda k: fl.blocked_mlp_init(k, sizes, 10, groups=config.groups)), jax.random.split(key, config.seeds)
    )
    batches = np.stack([
        np.stack([rng.permutation(len(y))[: steps * batch].reshape(steps, batch) for _ in range(config.seeds)])
        for _ in range(config.epochs)
    ])  # fmt: skip
    n_params = ravel_pytree(jax.tree.map(lambda p: p[0], params))[0].size
    held_out = "held-out training" if config.validation else "test"
    print(f"{DATASETS[config.dataset]} blocked MLP {'-'.join(map(str, sizes))}-10 "
          f"({n_params:,} parameters with the heads), "
          f"{len(y):,} training and {len(y_test):,} {held_out} images, {config.epochs} epochs of {steps} steps, "
          f"{config.seeds} seeds per method")  # fmt: skip

    results, metrics, intervals = {}, {"parameters": int(n_params)}, {}
    for method in methods:
        results[method] = r = _train(method, config, params, batches, x, y, x_test, y_test, jax.random.fold_in(key, 1))
        final = r["accuracy"][:, -1]
        intervals[f"{method}_test_accuracy"] = stats.interval(final.tolist())
        metrics.update({
            f"{method}_test_accuracy": float(final.mean()),
            f"{method}_ms_per_step": r["ms_per_step"],
            f"{method}_compile_seconds": r["compile_seconds"],
            f"{method}_temp_bytes": r["temp_bytes"],
        })  # fmt: skip
        print(f"{NAMES[method]}: test accuracy "
              f"{stats.format_interval(intervals[f'{method}_test_accuracy'], PERCENT)}, "
              f"{r['ms_per_step']:.2f} ms per step of {config.seeds} seeds, "
              f"{(r['temp_bytes'] or 0) / 2**20:.1f} MiB temporary")  # fmt: skip
    # paired by seed: the same start and batches, so the differences are what the method costs
    pairs = {"gap_fg_a": ("backprop", "fg-a"), "gap_lg_bp": ("backprop", "lg-bp"),
             "gap_fg_a_vs_lg_bp": ("lg-bp", "fg-a"), "gap_fg_w": ("backprop", "fg-w")}  # fmt: skip
    for name, (better, worse) in pairs.items():
        if better in results and worse in results:
            gaps = 100 * (results[better]["accuracy"][:, -1] - results[worse]["accuracy"][:, -1])
            intervals[f"{name}_points"] = stats.interval(gaps.tolist())
            metrics[f"{name}_points"] = float(gaps.mean())
    if "backprop" in results and "fg-a" in results:
        metrics["fg_a_over_backprop_time"] = results["fg-a"]["ms_per_step"] / results["backprop"]["ms_per_step"]

    # the estimators' cosines at the start, on one batch, against the exact local gradients
    first = jax.tree.map(lambda p: p[0], params)
    xb, yb = jnp.asarray(x[batches[0, 0, 0]]), jnp.asarray(y[batches[0, 0, 0]])
    cosines = _cosines(first, xb, yb, ks, config.cosine_draws, jax.random.fold_in(key, 2), config.signs)
    widths = [(n_in + 1) * n_out // config.groups for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True)]
    for estimator, table in cosines.items():
        for k, row in zip(ks, table, strict=True):
            metrics[f"cosine_{estimator}_k{k}"] = float(row.mean())
    # ... and at the end, on each forward method's own trained network (seed 0): whether its estimate
    # stays as close to the gradient once the examples are learnt
    for method, estimator in (("fg-w", "weight"), ("fg-a", "activity")):
        if method in results:
            end = _cosines(
                results[method]["params"],
                xb,
                yb,
                ks[:1],
                config.cosine_draws,
                jax.random.fold_in(key, 3),
                config.signs,
                (estimator,),
            )
            metrics[f"cosine_{estimator}_end_k{ks[0]}"] = float(end[estimator][0].mean())
    metrics["cosine_weight_theory_k1"] = float(np.mean([np.sqrt(1 / n) for n in widths]))
    # Fournier et al.: a forward gradient guessed along the local loss's gradient has that gradient's cosine
    local = fl.local_gradients(first, xb, yb, key, estimator="backprop")[1]
    e2e = jax.grad(fl.end_to_end_loss)(first, xb, yb)
    guess = [
        float(fl.cosine(local[b]["dense"], e2e[b]["dense"])) for b in (fl.block_name(i) for i in range(len(hidden)))
    ]
    metrics.update({f"guess_cosine_block{i}": c for i, c in enumerate(guess)})
    print("cosine to the exact local gradient (rms over draws, mean over blocks), k = " + ", ".join(map(str, ks)) + ": "
          + "; ".join(f"{e} " + ", ".join(f"{r.mean():.3f}" for r in t) for e, t in cosines.items())
          + "; a guess along the local loss's gradient, cosine to the end-to-end gradient per block: "
          + ", ".join(f"{c:.3f}" for c in guess))  # fmt: skip
    ends = [f"{e} {metrics[f'cosine_{e}_end_k{ks[0]}']:.3f}" for e in ("weight", "activity")
            if f"cosine_{e}_end_k{ks[0]}" in metrics]  # fmt: skip
    if ends:
        print(f"... after training, k = {ks[0]}, on the method's own network: " + ", ".join(ends))

    run_dir.append_history([
        {"method": m, "seed": config.seed + s, "epoch": e, "test_accuracy": float(a)}
        for m, r in results.items() for s, row in enumerate(r["accuracy"]) for e, a in enumerate(row)
    ])  # fmt: skip
    curves = {NAMES[m]: (r["accuracy"], COLORS[m]) for m, r in results.items()}
    theory = {n: [np.sqrt(k / (k + n - 1)) for k in ks] for n in widths}
    figure = plots.forward_learning(curves, ks, cosines, theory, DATASETS[config.dataset])
    run_dir.save_figure(figure, "forward_learning.png")
    replicas = [
        {"seed": config.seed + i, "diverged": False}
        | {f"{m}_test_accuracy": float(r["accuracy"][i, -1]) for m, r in results.items()}
        for i in range(config.seeds)
    ]
    return RunResult(figures=metrics, intervals=intervals, replicas=replicas)


def _claims(network: str, within: float) -> tuple[Claim, ...]:
    """The claims of one dataset's run: each method's accuracy, FG-A's gap to backprop (target ``within``)."""
    return (
        Claim(source="Ren et al. 2023", statement=f"{network}, 4 epochs, Adam 1e-3, 4 seeds: test accuracy, "
              "backprop end to end", tutorial="", metric="backprop_test_accuracy", fmt=PERCENT),
        Claim(source="Ren et al. 2023", statement="... greedy local losses, backprop inside each block (LG-BP)",
              tutorial="", metric="lg-bp_test_accuracy", fmt=PERCENT),
        Claim(source="Ren et al. 2023", statement="... local losses, weight-perturbed forward gradient, "
              "one tangent (FG-W)",
              tutorial="", metric="fg-w_test_accuracy", fmt=PERCENT),
        Claim(source="Ren et al. 2023", statement="... local losses, activity-perturbed forward gradient, "
              "64 random-sign tangents (FG-A)",
              tutorial="", metric="fg-a_test_accuracy", fmt=PERCENT),
        Claim(source="Ren et al. 2023", statement="... the heads alone, dense layers frozen at their start "
              "(the floor that random ReLU features give)", tutorial="", metric="heads_test_accuracy", fmt=PERCENT),
        Claim(source="Ren et al. 2023", statement=f"FG-A with local losses within {within:g} points of backprop at "
              "equal epochs: backprop's accuracy minus FG-A's, in points", tutorial="matched, they report",
              metric="gap_fg_a_points", fmt="{:.2f}", target=at_most(within, f"<= {within:g} points")),
        Claim(source="Ren et al. 2023", tutorial="",
              statement="... of which local losses alone (backprop minus LG-BP), in points",
              metric="gap_lg_bp_points", fmt="{:.2f}"),
        Claim(source="Baydin et al. 2022", statement="time per step, FG-A over backprop (64 jvps per block "
              "against one vjp)", tutorial="", metric="fg_a_over_backprop_time", fmt="{:.3g}x"),
    )  # fmt: skip


EXPERIMENT = Experiment(
    name="forward-learning",
    description="Ren et al. 2023: MNIST or CIFAR-10 MLP by backprop, local losses (LG-BP), weight- and "
    "activity-perturbed forward gradients, over seeds",
    config=Config,
    run=run,
    smallest=("epochs=1", "batch_size=8", "hidden=16,16", "seeds=2", "cosine_ks=1,2", "cosine_draws=2"),
    claims=(
        Run(name="forward-learning", data="mnist",
            quick=("n_train=2048", "n_test=1000", "epochs=2", "batch_size=64", "hidden=128,128",
                   "cosine_ks=1,4,16", "cosine_draws=8"),
            claims=_claims("MNIST MLP 784-512-512-512-10", 1.5)),
        Run(name="forward-learning-cifar10", data="cifar10", settings=("dataset=cifar10",),
            quick=("n_train=2048", "n_test=1000", "epochs=2", "batch_size=64", "hidden=128,128",
                   "cosine_ks=1,4,16", "cosine_draws=8"),
            claims=_claims("CIFAR-10 MLP 3072-512-512-512-10", 5)),
    ),
)  # fmt: skip
