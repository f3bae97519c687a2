"""Tutorial 2's regularisers on an over-fitting setting: dropout, L2 weight decay, early stopping, clipping.

A wide MLP (784 or 64 inputs -> 512 -> 512 -> 10) trained with Adam on a few hundred images, a fifth
of whose labels are replaced by wrong ones, over-fits: it memorises the wrong labels, so training loss
falls to ~0 while validation loss rises (without label noise, 8x8 digits are too easy for any
regulariser to matter: every variant ends within 0.5 points of 96% validation accuracy). The same run
is repeated with dropout, with decoupled weight decay (AdamW), with early stopping on validation loss
and with gradient clipping; the generalisation gap (validation minus training loss, and training minus
validation accuracy; training figures are on the noisy labels, with dropout active) is reported for
each, and the curves are drawn side by side.
"""

from __future__ import annotations

import flax.linen as nn
import numpy as np
import optax

from jaxdl import data as data_lib
from jaxdl import plots, stats
from jaxdl.claims import Claim, Run, at_least
from jaxdl.errors import JaxdlError
from jaxdl.experiments import Experiment
from jaxdl.experiments.common import unit_pixels
from jaxdl.experiments.settings import RegularizationConfig as Config
from jaxdl.models.classifiers import dense
from jaxdl.results import RunResult
from jaxdl.rundir import RunDir
from jaxdl.train.fit import fit
from jaxdl.train.replicas import init_replicas
from jaxdl.train.task import Task, classification_loss


class WideMLP(nn.Module):
    """Two wide ReLU layers, each followed by dropout, then 10 logits: wide enough to memorise noisy labels.

    Attributes:
      hidden: the width of both hidden layers.
      drop_rate: the dropout rate after each hidden layer (0: none).
    """

    hidden: int = 512
    drop_rate: float = 0.0

    @nn.compact
    def __call__(self, x, train: bool = False):
        """Logits for a batch of images.

        Args:
          x: inputs ``(B, ...)``, flattened to ``(B, features)``.
          train: apply dropout (which then needs a ``"dropout"`` PRNG stream).

        Returns:
          Logits, ``(B, 10)``.
        """
        x = x.reshape(x.shape[0], -1)
        for i in range(2):
            x = nn.relu(dense(self.hidden, x.shape[-1], f"fc{i + 1}")(x))
            x = nn.Dropout(self.drop_rate, deterministic=not train)(x)
        return dense(10, self.hidden, "out")(x)


def _data(config: Config):
    train = data_lib.load(config.dataset, "train", data=config.data or None)
    if config.n_train + config.n_val > len(train):
        raise JaxdlError(f"n_train + n_val = {config.n_train + config.n_val} exceeds the {len(train)} training images")
    order = np.random.default_rng(config.seed).permutation(len(train))
    pick = {"train": order[: config.n_train], "val": order[config.n_train : config.n_train + config.n_val]}
    split = {k: {"inputs": train.inputs[v], "labels": train.labels[v]} for k, v in pick.items()}
    split["train"]["labels"] = noisy_labels(split["train"]["labels"], config.label_noise, config.seed)
    return split


def noisy_labels(labels: np.ndarray, fraction: float, seed: int, num_classes: int = 10) -> np.ndarray:
    """Replace ``round(fraction * n)`` labels by a different class drawn uniformly.

    Memorising them is pure over-fitting, so the validation curves separate
    the regularisers clearly.

    Args:
      labels: integer class labels ``(n,)``; not modified.
      fraction: the share of labels to replace, in [0, 1].
      seed: fixes which labels are replaced and by what.
      num_classes: the number of classes; a replacement is never the true class.

    Returns:
      A copy of ``labels`` with the chosen ones replaced.

    Example:
      >>> labels = np.arange(10)
      >>> int((noisy_labels(labels, 0.2, seed=0) != labels).sum())
      2
    """
    rng = np.random.default_rng([seed, 1])
    flip = rng.choice(len(labels), round(fraction * len(labels)), replace=False)
    labels = labels.copy()
    labels[flip] = (labels[flip] + rng.integers(1, num_classes, len(flip))) % num_classes
    return labels


def run(config: Config, run_dir: RunDir) -> RunResult:
    """Trains the wide MLP with no regulariser and with each of four, and compares their generalisation.

    Each variant's run (history, and a checkpoint of its trained state: the experiment does not resume,
    so there is no checkpoint per epoch) goes in a subdirectory of ``run_dir``; the combined history and
    ``regularization.png`` in ``run_dir``.

    Args:
      config: the dataset, ``n_train``/``n_val``, ``label_noise``, the
        regularisers' settings (``drop_rate``, ``weight_decay``, ``patience``,
        ``clip_norm``), the training settings and ``seeds`` (several: each
        variant's seeds train as one vmapped program).
      run_dir: where the variants' runs and the figure go.

    Returns:
      Metrics per variant V (``none``, ``dropout``, ``weight_decay``,
      ``early_stopping``, ``clipping``), the last epoch's figures as means
      over seeds: ``V_val_accuracy``;
      ``V_loss_gap`` (validation minus training loss) and ``V_accuracy_gap``
      (training minus validation accuracy), the generalisation gap, training
      figures on the noisy labels; ``V_gain`` (validation accuracy minus
      ``none``'s, paired by seed); and ``V_epochs_run`` (fewer than
      ``epochs`` when early stopping stopped it). With several seeds, also
      ``seeds`` and ``intervals`` (a 95% interval for each mean).

    Raises:
      JaxdlError: ``n_train + n_val`` exceeds the training split.
    """
    split = _data(config)
    variants = {
        "none": (0.0, optax.adam(config.lr), None),
        "dropout": (config.drop_rate, optax.adam(config.lr), None),
        "weight decay": (0.0, optax.adamw(config.lr, weight_decay=config.weight_decay), None),
        "early stopping": (0.0, optax.adam(config.lr), config.patience),
        "clipping": (0.0, optax.chain(optax.clip_by_global_norm(config.clip_norm), optax.adam(config.lr)), None),
    }
    histories, metrics, per_seed = {}, {}, {}
    seeds = [config.seed + j for j in range(config.seeds)]
    for name, (drop_rate, tx, patience) in variants.items():
        task = Task(WideMLP(drop_rate=drop_rate), classification_loss, unit_pixels)
        state, shuffle_key = init_replicas(task, tx, split["train"], seeds)  # every seed in one program
        # The variants' runs live inside this run's directory, which is new or overwritten as a whole.
        sub = RunDir(run_dir.path / name.replace(" ", "_"), overwrite=True)
        result = fit(task, state, split["train"], epochs=config.epochs, batch_size=config.batch_size, key=shuffle_key,
                     val_data=split["val"], run_dir=sub, keep_checkpoints=config.keep_checkpoints,
                     checkpoint_every=config.epochs, patience=patience, log=lambda s: None)  # fmt: skip
        last = result.history[-1]
        histories[name] = result.history
        key = name.replace(" ", "_")
        values = {k: np.array(v, float) for k, v in last["replicas"].items()}  # each seed's figures
        per_seed[f"{key}_val_accuracy"] = values["val_accuracy"]
        per_seed[f"{key}_loss_gap"] = values["val_loss"] - values["train_loss"]
        per_seed[f"{key}_accuracy_gap"] = values["train_accuracy"] - values["val_accuracy"]
        # paired by seed: the same initialisation and batches with and without the regulariser
        per_seed[f"{key}_gain"] = values["val_accuracy"] - per_seed["none_val_accuracy"]
        metrics[f"{key}_epochs_run"] = result.epochs_run
        means = {k: float(np.mean(v)) for k, v in per_seed.items() if k.startswith(key + "_")}
        print(f"{name:<15} epochs {result.epochs_run:>3}  train acc {100 * last['train_accuracy']:6.2f}%  "
              f"val acc {100 * last['val_accuracy']:6.2f}%  gap: loss {means[f'{key}_loss_gap']:.3f}, "
              f"accuracy {100 * means[f'{key}_accuracy_gap']:.2f} points"
              + (f"  (mean of {len(seeds)} seeds)" if len(seeds) > 1 else ""))  # fmt: skip
    metrics.update({k: float(np.mean(v)) for k, v in per_seed.items()})
    result = RunResult(metrics)
    if len(seeds) > 1:
        result.intervals.update({k: stats.interval(v.tolist()) for k, v in per_seed.items()})
        metrics["seeds"] = len(seeds)
        for key in ("dropout", "weight_decay", "early_stopping", "clipping"):
            print(f"validation accuracy gain of {key.replace('_', ' ')}: "
                  f"{stats.format_interval(result.intervals[f'{key}_gain'], '{:+.2%}')}")  # fmt: skip
    run_dir.append_history([{"variant": n, **r} for n, h in histories.items() for r in h])
    run_dir.save_figure(plots.regularization(histories), "regularization.png")
    return result


EXPERIMENT = Experiment(
    name="regularization",
    description="tutorial 2: dropout, weight decay, early stopping, clipping on an over-fitting MLP; generalisation "
    "gaps",
    config=Config,
    run=run,
    smallest=("n_train=100", "n_val=200", "epochs=40", "batch_size=25", "patience=3"),
    claims=(
        Run(name="regularization", quick=("epochs=20",), seeds=4, quick_seeds=2, claims=(
            Claim(source="tutorial 2", statement="regularisation narrows the generalisation gap: validation accuracy, "
                  "none -> dropout", tutorial="", metric="dropout_gain", fmt="{:+.2%}", target=at_least(0.0, "> 0")),
            Claim(source="tutorial 2", statement="... none -> early stopping", tutorial="",
                  metric="early_stopping_gain", fmt="{:+.2%}", target=at_least(0.0, "> 0")),
        )),
    ),
)  # fmt: skip
