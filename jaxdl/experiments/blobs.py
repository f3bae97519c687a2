"""Tutorial 0: the blob classifier, trained by full-batch SGD as one compiled scan.

Tutorial: ``make_blobs(1000, 2 features, 2 centers, std 3, random_state=1)``,
``Linear(2,5) -> Linear(5,1) -> Sigmoid``, ``nn.BCELoss``, SGD lr 5e-4, 1000
full-batch epochs; its log ends at loss 0.2125, accuracy 92.90%. With
``init=tutorial`` this starts from the exact weights the tutorial's PyTorch
code drew and prints the same ten log lines. Because one seed's 92.90% says
little, the same training also runs from ``seeds`` initialisations at once
(``jax.vmap``) and the spread of final accuracies is reported.
"""

from __future__ import annotations

import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxdl import plots, stats
from jaxdl.claims import PERCENT, Claim, Run, between
from jaxdl.data import make_blobs_dataset
from jaxdl.errors import JaxdlError
from jaxdl.experiments import Experiment
from jaxdl.experiments.settings import BlobsConfig as Config
from jaxdl.functional.losses import binary_cross_entropy_with_logits
from jaxdl.models.blobs import BlobClassifier, tutorial_log, tutorial_params
from jaxdl.progress import progress_bar
from jaxdl.results import RunResult
from jaxdl.rundir import RunDir
from jaxdl.train import compile_ahead, full_batch_scan, timed_call

TUTORIAL_ACCURACY = 92.90  # percent, the tutorial's last log line
TUTORIAL_LOSS = 0.2125


def make_loss_fn(model: BlobClassifier):
    """``loss(params, (x, y)) -> (mean BCE, {"accuracy": fraction})``, class 1 where P >= 0.5.

    Args:
      model: the classifier, whose output is one logit per point.

    Returns:
      ``loss_fn(params, (x, y))`` for points ``x`` ``(n, 2)`` and labels ``y`` ``(n,)``
      in {0, 1}: the mean binary cross-entropy and ``{"accuracy": fraction correct}``.
    """

    def loss_fn(params, batch):
        x, y = batch
        logits = model.apply({"params": params}, x)
        labels = y.astype(logits.dtype)
        accuracy = jnp.mean((logits >= 0) == (y == 1))
        return binary_cross_entropy_with_logits(logits, labels), {"accuracy": accuracy}

    return loss_fn


def make_trainer(config: Config):
    """``(model, loss_fn, train)``; ``train(params, batch) -> (params, history)`` is unjitted.

    Args:
      config: the run's settings; ``hidden``, ``init``, ``lr`` and ``epochs`` are read
        (``init=tutorial`` builds the model with PyTorch's scheme; :func:`initial_params`
        then gives the tutorial's weights).

    Returns:
      The :class:`~jaxdl.models.blobs.BlobClassifier`, :func:`make_loss_fn`'s loss, and
      :func:`~jaxdl.train.full_batch_scan`'s ``train`` for SGD over ``config.epochs``.
    """
    model = BlobClassifier(hidden=config.hidden, init_scheme="torch" if config.init == "tutorial" else config.init)
    loss_fn = make_loss_fn(model)
    return model, loss_fn, full_batch_scan(loss_fn, optax.sgd(config.lr), config.epochs)


def train_then_score(train, loss_fn):
    """``(params, batch) -> (final params, history, loss_fn(final params, batch))``.

    Args:
      train: ``train(params, batch) -> (params, history)``, as :func:`make_trainer` returns it.
      loss_fn: ``loss_fn(params, batch) -> (loss, metrics)``, to score the trained parameters.

    Returns:
      The unjitted function training then scoring, one program when jitted.
    """

    def train_and_evaluate(params, batch):
        final, history = train(params, batch)
        return final, history, loss_fn(final, batch)

    return train_and_evaluate


def initial_params(config: Config, model: BlobClassifier, x: jax.Array, seeds: int = 0):
    """The run's initial parameters and, stacked, those of ``seeds`` more (None for 0).

    The run starts from ``key(seed)`` (or the tutorial's weights); the others from
    ``fold_in(key(seed), 1)`` split ``seeds`` ways, which keeps them apart.
    One compiled program draws them all, a loop over the keys: run op by op,
    each random operation would compile a program of its own, and vmapped over
    the keys, XLA compiles the 64 seeds' draw for longer than the loop
    (``docs/performance.md``).

    Args:
      config: the run's settings; ``seed`` and ``init`` are read.
      model: the classifier to initialise.
      x: the points, ``(n, 2)``; only the first row's shape is used.
      seeds: further initialisations to draw (0: none).

    Returns:
      ``(params, stacked)``: the run's parameters, and the others with a leading axis of
      ``seeds`` (None when ``seeds`` is 0).
    """
    own = config.init != "tutorial"

    @jax.jit
    def draw(x):
        keys = [jax.random.key(config.seed)[None]] if own else []
        if seeds:
            keys.append(jax.random.split(jax.random.fold_in(jax.random.key(config.seed), 1), seeds))
        drawn = jax.lax.map(lambda key: model.init(key, x)["params"], jnp.concatenate(keys))
        first = jax.tree.map(lambda p: p[0], drawn) if own else None
        return first, (jax.tree.map(lambda p: p[int(own) :], drawn) if seeds else None)

    first, stacked = draw(x[:1]) if own or seeds else (None, None)
    return (first if own else tutorial_params()), stacked


def _fraction(value) -> float:
    """A float32 accuracy (a multiple of 1/n) as a clean float: 0.948, not 0.9480000734."""
    return round(float(value), 6)


def _first_non_finite(values: np.ndarray) -> int | None:
    bad = np.flatnonzero(~np.isfinite(values))
    return int(bad[0]) if bad.size else None


def run(config: Config, run_dir: RunDir) -> RunResult:
    """Trains the blob classifier full-batch, logs as the tutorial does, then trains the ``seeds`` others.

    Args:
      config: the run's settings.
      run_dir: where history.jsonl and the figures (decision boundary, curves, seed accuracies) go.

    Returns:
      The figures: final and last-logged loss and accuracy, the tutorial's, timings, and with
      ``seeds`` the seeds' accuracies and their interval.

    Raises:
      JaxdlError: the loss became NaN or infinite (the history up to that epoch is kept).
    """
    x_np, y_np = make_blobs_dataset(config.n_samples, config.cluster_std, config.data_seed)
    batch = (jnp.asarray(x_np), jnp.asarray(y_np))
    model, loss_fn, train = make_trainer(config)
    params, seed_params = initial_params(config, model, x_np, config.seeds)

    stages = 3
    with progress_bar(stages, "blobs", unit="stage") as bar:
        bar.set_postfix_str("compiling")
        # One program trains and scores the result: a second would compile on its own.
        compiled, compile_seconds = compile_ahead(jax.jit(train_then_score(train, loss_fn)), params, batch)
        bar.update()
        bar.set_postfix_str(f"training {config.epochs} epochs")
        (final_params, history, (final_loss, final_metrics)), train_seconds = timed_call(compiled, params, batch)
        bar.update()
        history = {k: np.asarray(v) for k, v in history.items()}

        records = [
            {
                "epoch": i + 1,
                "loss": float(history["loss"][i]),
                "accuracy": _fraction(history["accuracy"][i]),
            }
            for i in range(config.epochs)
        ]
        bad = _first_non_finite(history["loss"])
        run_dir.append_history(records if bad is None else records[: bad + 1])
        if bad is not None:
            raise JaxdlError(
                f"the loss became {history['loss'][bad]} at epoch {bad + 1}; "
                f"lower lr (now {config.lr}); history up to that epoch is in {run_dir.path}"
            )
        bar.clear()
        # Tutorial semantics: the figures logged at epoch k are computed before
        # the k-th update.
        for record in records[config.log_every - 1 :: config.log_every]:
            print("Epoch {} loss {:.4f} acc {:.2f}%".format(record["epoch"], record["loss"], 100 * record["accuracy"]))

        metrics: dict[str, Any] = {
            "train_loss": float(final_loss),
            "train_accuracy": _fraction(final_metrics["accuracy"]),
            "logged_loss": records[-1]["loss"],
            "logged_accuracy": records[-1]["accuracy"],
            "tutorial_loss": TUTORIAL_LOSS,
            "tutorial_accuracy": TUTORIAL_ACCURACY / 100,
            "epochs": config.epochs,
            "compile_seconds": compile_seconds,
            "train_seconds": train_seconds,
            "seconds_per_epoch": train_seconds / config.epochs,
            "examples_per_second": config.epochs * config.n_samples / train_seconds,
        }

        # The boundary evaluates the model now: once the seeds are dispatched, XLA
        # runs them first. They train while Python draws and saves the figures.
        boundary = _boundary_figure(config, model, final_params, x_np, y_np, metrics)
        seed_study = _start_seed_study(config, seed_params, train, loss_fn, batch) if config.seeds > 0 else None
        bar.set_postfix_str("figures" + (f", {config.seeds} seeds training at once" if seed_study else ""))
        run_dir.save_figure(boundary, "decision_boundary.png")
        run_dir.save_figure(_curves_figure(config, history), "loss_accuracy.png")
        result = RunResult(metrics)
        if seed_study:
            metrics.update(seed_study())
            result.intervals["seed_accuracy_mean"] = stats.interval(metrics["seed_accuracies"])
            run_dir.save_figure(_seed_figure(config, model, metrics), "seed_accuracy.png")
        bar.update()
    return result


def _start_seed_study(config, params, train, loss_fn, batch):
    """Compiles and starts training the ``seeds`` initialisations ``params`` (stacked) in one vmapped call.

    Returns ``finish() -> metrics``, which waits for the result. The call is
    dispatched asynchronously, so the caller can work meanwhile; hence
    ``seeds_wall_seconds``, from dispatch to result, includes whatever ran
    alongside (``scripts/bench_blobs.py`` times the seeds alone).
    """

    train_and_evaluate = train_then_score(train, loss_fn)

    def accuracy(p):
        return train_and_evaluate(p, batch)[2][1]["accuracy"]

    compiled, compile_seconds = compile_ahead(jax.jit(jax.vmap(accuracy)), params)
    start = time.perf_counter()
    pending = compiled(params)

    def finish() -> dict[str, Any]:
        accuracies = np.round(np.asarray(jax.block_until_ready(pending), np.float64), 6)
        return {
            "seeds": config.seeds,
            "seed_accuracy_mean": float(accuracies.mean()),
            "seed_accuracy_std": float(accuracies.std(ddof=1)) if accuracies.size > 1 else 0.0,
            "seed_accuracy_min": float(accuracies.min()),
            "seed_accuracy_max": float(accuracies.max()),
            "seed_accuracies": accuracies.tolist(),
            "seeds_below_tutorial": float(np.mean(accuracies < TUTORIAL_ACCURACY / 100)),
            "seeds_compile_seconds": compile_seconds,
            "seeds_wall_seconds": time.perf_counter() - start,  # figures drawn meanwhile
        }

    return finish


def _boundary_figure(config, model, params, x, y, metrics):
    predict = jax.jit(lambda pts: jax.nn.sigmoid(model.apply({"params": params}, pts)))
    title = f"blobs: init={config.init}, {config.epochs} epochs, train accuracy {100 * metrics['train_accuracy']:.2f}%"
    return plots.decision_boundary(predict, x, y, title=title)


def _curves_figure(config, history):
    return plots.loss_accuracy_curves(
        history["loss"],
        history["accuracy"],
        reference=(TUTORIAL_LOSS, TUTORIAL_ACCURACY),
        title=f"blobs: full-batch SGD, lr {config.lr}, init={config.init}",
    )


def _seed_figure(config, model, metrics):
    return plots.distribution(
        100 * np.asarray(metrics["seed_accuracies"]),
        xlabel="final training accuracy (%)",
        reference=TUTORIAL_ACCURACY,
        reference_label=f"tutorial {TUTORIAL_ACCURACY:.2f}%",
        title=f"{config.seeds} initialisations (init={model.init_scheme}), {config.epochs} epochs",
        unit="%",
    )


EXPERIMENT = Experiment(
    name="blobs",
    description="tutorial 0: 2-D blob classifier, full-batch SGD as one lax.scan, 64 seeds via vmap",
    config=Config,
    run=run,
    smallest=("epochs=50", "seeds=3", "log_every=25"),
    claims=(
        Run(name="blobs-tutorial-init", settings=("init=tutorial",), claims=(
            Claim(source="tutorial 0", statement="Linear(2,5)-Linear(5,1)-sigmoid, SGD lr 5e-4, 1000 full-batch epochs "
                  "on make_blobs, from the tutorial's initial weights: last logged accuracy", tutorial="92.90%",
                  metric="logged_accuracy", fmt=PERCENT, target=between(0.9285, 0.9295, "= 92.90%")),
            Claim(source="tutorial 0", statement="... and its last logged loss", tutorial="0.2125",
                  metric="logged_loss", fmt="{:.4f}", target=between(0.21245, 0.21255, "= 0.2125")),
        )),
        Run(name="blobs", claims=(
            Claim(source="tutorial 0", statement="the same network from 64 random initialisations (vmap): mean train "
                  "accuracy", tutorial="92.90% (one initialisation)", metric="seed_accuracy_mean", fmt=PERCENT),
        )),
    ),
)  # fmt: skip


def check_tutorial_log(records: list[dict[str, Any]]) -> list[str]:
    """Differences between printed log lines and the tutorial's (empty when they agree).

    Args:
      records: the run's per-epoch records (``epoch``, ``loss``, ``accuracy`` as a fraction),
        in order from epoch 1.

    Returns:
      One line per logged epoch whose loss (4 decimals) or accuracy (2 decimals, in
      percent) differs from the tutorial's.
    """
    problems = []
    for expected in tutorial_log():
        got = records[expected["epoch"] - 1]
        line = f"{got['loss']:.4f} {100 * got['accuracy']:.2f}"
        want = f"{expected['loss']:.4f} {expected['acc']:.2f}"
        if line != want:
            problems.append(f"epoch {expected['epoch']}: got {line}, tutorial {want}")
    return problems
