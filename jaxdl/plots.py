"""Figures. Each function returns a matplotlib Figure; ``RunDir.save_figure`` writes it."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import matplotlib

if "inline" not in os.environ.get("MPLBACKEND", ""):  # a notebook's kernel draws inline; runs write files only
    matplotlib.use("Agg")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from jaxdl.results import Group  # noqa: E402

_FILE_BACKENDS = {"agg", "cairo", "pdf", "pgf", "ps", "svg", "template"}


def save_shown_figures(script: str | None) -> None:
    """Makes ``plt.show()`` save its figures beside ``script`` when the backend draws to files only.

    A tutorial notebook run as ``python NOTEBOOK.py`` has no window to draw in, and ``plt.show()``
    would drop its figures; after this call each shown figure goes to ``NOTEBOOK_figures/NN.png``
    and a line says where. In a Jupyter kernel (``script`` None: there is no ``__file__``) or with
    an interactive backend, nothing changes. A notebook calls it as
    ``plots.save_shown_figures(globals().get("__file__"))``.

    Args:
      script: the running script's path (its ``__file__``), or None in a notebook kernel.
    """
    if script is None or plt.get_backend().lower() not in _FILE_BACKENDS:
        return
    folder = Path(script).with_name(Path(script).stem + "_figures")
    shown = iter(range(1, 10**6))

    def show(*args, **kwargs) -> None:
        for number in plt.get_fignums():
            folder.mkdir(exist_ok=True)
            path = folder / f"{next(shown):02d}.png"
            plt.figure(number).savefig(path, dpi=100)
            plt.close(number)
            print(f"figure saved to {path}")

    plt.show = show


def decision_boundary(
    predict_proba: Callable[[np.ndarray], np.ndarray],
    x: np.ndarray,
    y: np.ndarray,
    title: str = "",
    resolution: int = 150,  # grid points per axis: 300 drew the same picture at twice the cost
) -> Figure:
    """Scatter of 2-D points coloured by label over the model's P(y = 1), with the 0.5 contour.

    Args:
      predict_proba: maps ``(M, 2)`` float32 points to ``(M,)`` probabilities of class 1.
      x: ``(N, 2)`` points.
      y: ``(N,)`` labels, 0 or 1.
      title: the axes' title; a default names the contour.
      resolution: grid points per axis at which ``predict_proba`` is evaluated.

    Returns:
      The figure.
    """
    pad = 0.05 * (x.max(axis=0) - x.min(axis=0))
    lo, hi = x.min(axis=0) - pad, x.max(axis=0) + pad
    gx, gy = np.meshgrid(np.linspace(lo[0], hi[0], resolution), np.linspace(lo[1], hi[1], resolution))
    grid = np.stack([gx.ravel(), gy.ravel()], axis=1).astype(np.float32)
    prob = np.asarray(predict_proba(grid)).reshape(gx.shape)

    fig, ax = plt.subplots(figsize=(6, 5))
    fill = ax.contourf(gx, gy, prob, levels=np.linspace(0, 1, 21), cmap="RdBu_r", alpha=0.35)
    ax.contour(gx, gy, prob, levels=[0.5], colors="k", linewidths=1.5)
    for label, colour in ((0, "tab:blue"), (1, "tab:red")):
        pts = x[y == label]
        ax.scatter(pts[:, 0], pts[:, 1], s=12, c=colour, edgecolors="none", label=f"class {label}")
    fig.colorbar(fill, ax=ax, label="P(class 1)")
    ax.set_xlabel("$x_1$")
    ax.set_ylabel("$x_2$")
    ax.set_title(title or "data and decision boundary (black: P = 0.5)")
    ax.legend(loc="best")
    return fig


def loss_accuracy_curves(
    loss: Sequence[float],
    accuracy: Sequence[float],
    xlabel: str = "epoch",
    reference: tuple[float, float] | None = None,
    title: str = "",
) -> Figure:
    """Side-by-side loss and accuracy (in %) curves, as in the tutorial's figure.

    Args:
      loss: one training loss per step or epoch.
      accuracy: the matching accuracies, as fractions in [0, 1].
      xlabel: what one point is ("epoch", "step").
      reference: an optional (loss, accuracy %) pair drawn as dashed lines (the tutorial's final values).
      title: the figure's title, or "" for none.

    Returns:
      The figure.
    """
    steps = np.arange(1, len(loss) + 1)
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    ax_loss.plot(steps, loss, label="training loss")
    ax_acc.plot(steps, 100 * np.asarray(accuracy), color="tab:orange", label="training accuracy")
    if reference is not None:
        ax_loss.axhline(reference[0], ls="--", c="gray", lw=1, label=f"tutorial final {reference[0]:.4f}")
        ax_acc.axhline(reference[1], ls="--", c="gray", lw=1, label=f"tutorial final {reference[1]:.2f}%")
    ax_loss.set(xlabel=xlabel, ylabel="loss", title="Training loss")
    ax_acc.set(xlabel=xlabel, ylabel="accuracy (%)", title="Training accuracy")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def distribution(
    values: Sequence[float],
    xlabel: str,
    reference: float | None = None,
    reference_label: str = "",
    title: str = "",
    unit: str = "",
) -> Figure:
    """Histogram of a figure over many runs, with its mean and a reference value marked.

    Args:
      values: one value per run.
      xlabel: what the values are.
      reference: a value to mark with a dashed line (the tutorial's), or None.
      reference_label: the reference's legend entry; by default the value itself.
      title: the axes' title.
      unit: appended to the mean in the legend (e.g. "%").

    Returns:
      The figure.
    """
    values = np.asarray(values)
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.hist(values, bins=min(30, max(5, len(values) // 3)), color="tab:blue", alpha=0.8)
    ax.axvline(values.mean(), c="k", lw=1.5, label=f"mean {values.mean():.2f}{unit}")
    if reference is not None:
        ax.axvline(reference, c="tab:red", ls="--", lw=1.5, label=reference_label or f"{reference}")
    ax.set(xlabel=xlabel, ylabel="runs", title=title)
    ax.legend()
    return fig


def image_grid(
    images: np.ndarray,
    captions: Sequence[str] | None = None,
    columns: int = 8,
    title: str = "",
) -> Figure:
    """uint8 images (N, H, W, C) in a grid, each with its caption (e.g. "3: cat").

    Args:
      images: uint8 ``(N, H, W, C)``, C 1 (drawn in gray) or 3.
      captions: one caption per image, or None.
      columns: images per row.
      title: the figure's title.

    Returns:
      The figure.
    """
    n = len(images)
    rows = max(1, -(-n // columns))
    fig, axes = plt.subplots(rows, columns, figsize=(1.4 * columns, 1.6 * rows + 0.4), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= n:
            continue
        image = images[i]
        if image.shape[-1] == 1:
            ax.imshow(image[..., 0], cmap="gray", vmin=0, vmax=255, interpolation="nearest")
        else:
            ax.imshow(image, interpolation="nearest")
        if captions is not None:
            ax.set_title(captions[i], fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def scatter_classes(
    points: np.ndarray, labels: np.ndarray, class_names: Sequence[str], title: str = "", axis_name: str = "x"
) -> Figure:
    """2-D points coloured by class; axes named ``axis_name``_1 and _2.

    Args:
      points: ``(N, 2)`` points, e.g. VAE latents.
      labels: ``(N,)`` integer labels.
      class_names: the classes in label order, for the legend.
      title: the axes' title.
      axis_name: the letter the axes are named by ("x", "z").

    Returns:
      The figure.
    """
    fig, ax = plt.subplots(figsize=(6, 5))
    for label, name in enumerate(class_names):
        pts = points[labels == label]
        shown = name if name == str(label) else f"{label}: {name}"
        ax.scatter(pts[:, 0], pts[:, 1], s=12, edgecolors="none", label=shown)
    ax.set(xlabel=f"${axis_name}_1$", ylabel=f"${axis_name}_2$", title=title)
    ax.legend()
    return fig


def epoch_curves(
    history: Sequence[dict],
    metrics: Sequence[str] = ("loss", "accuracy"),
    title: str = "",
    test: dict[str, float] | None = None,
    step_losses: Sequence[float] | None = None,
) -> Figure:
    """One panel per metric: train and validation values per epoch, the final test value as a star.

    ``step_losses`` (one per training step of the epochs ending at the last
    record) adds the training loss within epochs, so a run of one epoch still
    shows a curve: a moving average over a twentieth of an epoch.

    Args:
      history: the run's epoch records (``history.jsonl``), each with ``"epoch"`` and
        ``"train_<metric>"``/``"val_<metric>"`` keys.
      metrics: the metrics to draw, one panel each; accuracies are drawn in %.
      title: the figure's title.
      test: ``{metric: value}`` measured on the test split at the end, or None.
      step_losses: per-step training losses, or None.

    Returns:
      The figure.
    """
    fig, axes = plt.subplots(1, len(metrics), figsize=(5 * len(metrics), 4), squeeze=False)
    epochs = [r["epoch"] for r in history]
    if step_losses is not None and len(step_losses) and "loss" in metrics:
        ax = axes[0][list(metrics).index("loss")]
        losses = np.asarray(step_losses, float)
        steps_per_epoch = max(len(losses) // max(len(epochs), 1), 1)
        first = epochs[-1] - len(losses) / steps_per_epoch  # the steps end with the last epoch
        window = max(steps_per_epoch // 20, 1)
        smooth = np.convolve(losses, np.ones(window) / window, mode="valid")
        x = first + (np.arange(len(smooth)) + window) / steps_per_epoch
        ax.plot(x, smooth, c="tab:blue", lw=1, alpha=0.5, label=f"train, per step (mean of {window})")
    for ax, metric in zip(axes[0], metrics, strict=True):
        for split, style in (("train", "-o"), ("val", "--s")):
            key = f"{split}_{metric}"
            if key in history[0]:
                scale = 100 if metric == "accuracy" else 1
                ax.plot(epochs, [scale * r[key] for r in history], style, ms=4, label=f"{split} (epoch mean)")
        if test and metric in test:
            scale = 100 if metric == "accuracy" else 1
            ax.plot([epochs[-1]], [scale * test[metric]], "*", ms=12, c="tab:red", label="test (end)")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.set(xlabel="epoch", ylabel=metric + (" (%)" if metric == "accuracy" else ""), title=metric)
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def _band(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per column of ``values`` (replicas x epochs, NaN for a diverged replica): the mean and its
    95% Student t interval (no band for one replica)."""
    from jaxdl.stats import interval

    rows = [interval(list(column)) for column in values.T]
    mean = np.array([r["mean"] if r["mean"] is not None else np.nan for r in rows])
    half = np.array([r["half_width"] if r["half_width"] is not None else 0.0 for r in rows])
    return mean, mean - half, mean + half


def replica_curves(
    history: Sequence[dict],
    metrics: Sequence[str],
    groups: Sequence[tuple[dict, Sequence[int]]],
    test: dict[str, np.ndarray] | None = None,
    title: str = "",
) -> Figure:
    """Replicas' training curves, a band of the 95% interval around each group's mean.

    Per group of replicas (a swept setting, or all seeds), the mean over its replicas with a shaded
    95% interval, train solid and validation dashed; the test mean and interval at the end as a point
    with an error bar.

    Args:
      history: epoch records holding ``"replicas": {"train_<metric>": [one value per replica], ...}``.
      metrics: the metrics to draw, one panel each.
      groups: ``(settings, replica indices)`` pairs; settings name the group in the legend.
      test: ``{"test_<metric>": (R,) values}`` at the end, or None.
      title: the figure's title.

    Returns:
      The figure.
    """
    fig, axes = plt.subplots(1, len(metrics), figsize=(5.5 * len(metrics), 4.2), squeeze=False)
    epochs = np.array([r["epoch"] for r in history])
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, metric in zip(axes[0], metrics, strict=True):
        scale = 100 if metric == "accuracy" else 1
        for g, (settings, members) in enumerate(groups):
            color = colors[g % len(colors)]
            label = ", ".join(f"{k}={v:g}" for k, v in settings.items()) or f"mean of {len(members)} seeds"
            for split, style in (("train", "-"), ("val", "--")):
                key = f"{split}_{metric}"
                if key not in history[0].get("replicas", {}):
                    continue
                values = np.array([[np.nan if r["replicas"][key][i] is None else r["replicas"][key][i]
                                    for r in history] for i in members], float) * scale  # fmt: skip
                mean, low, high = _band(values)
                ax.plot(epochs, mean, style, c=color, marker="o", ms=3, label=f"{split}, {label}")
                ax.fill_between(epochs, low, high, color=color, alpha=0.2, lw=0)
            if test and f"test_{metric}" in test:
                values = np.asarray(test[f"test_{metric}"], float)[list(members)][None] * scale
                mean, low, high = _band(values.T)
                ax.errorbar(epochs[-1] + 0.15 * (g + 1), mean, yerr=[mean - low, high - mean], fmt="*", ms=10,
                            c=color, capsize=3, label=f"test, {label}")  # fmt: skip
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.set(xlabel="epoch", ylabel=metric + (" (%)" if metric == "accuracy" else ""),
               title=f"{metric}: mean and 95% interval over seeds")  # fmt: skip
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def sweep(key: str, groups: Sequence[Group], metric: str, title: str = "") -> Figure:
    """A swept setting against a metric, with 95% intervals over seeds.

    Each group's mean over seeds with its 95% interval as an error bar, one line per combination of the
    other swept settings; a log axis for a setting whose values span more than a factor of 10.

    Args:
      key: the swept setting on the x axis.
      groups: one :class:`jaxdl.results.Group` per combination of settings: its ``settings`` and its
        ``intervals`` (per metric, the summary from :func:`jaxdl.stats.interval`).
      metric: the metric on the y axis (in % when it ends in "accuracy").
      title: the axes' title; a default names the metric and the setting.

    Returns:
      The figure.
    """
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    scale = 100 if metric.endswith("accuracy") else 1
    others: dict[tuple, list[Group]] = {}
    for group in groups:
        rest = tuple((k, v) for k, v in group.settings.items() if k != key)
        others.setdefault(rest, []).append(group)
    values = sorted({g.settings[key] for g in groups})
    for rest, members in others.items():
        members = sorted(members, key=lambda g: g.settings[key])
        x = np.array([g.settings[key] for g in members], float)
        summaries = [g.intervals[metric] for g in members]
        y = np.array([np.nan if s["mean"] is None else s["mean"] for s in summaries]) * scale
        err = np.array([0.0 if s["half_width"] is None else s["half_width"] for s in summaries]) * scale
        n = max(s["n"] for s in summaries)
        label = (", ".join(f"{k}={v:g}" for k, v in rest) or metric) + f" (N={n} seeds)"
        ax.errorbar(x, y, yerr=err, fmt="o-", capsize=4, label=label)
    if min(values) > 0 and max(values) / min(values) > 10:
        ax.set_xscale("log")
    ax.set(xlabel=key, ylabel=metric + (" (%)" if scale == 100 else ""),
           title=title or f"{metric} against {key}: mean and 95% interval over seeds")  # fmt: skip
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def mode_ratios(records: Sequence[dict], crossover: float) -> Figure:
    """Forward/reverse time ratio (median and 95% interval) and FLOP ratio against n/m, with the theory.

    Args:
      records: one dict per (n, m) network of the autodiff-modes experiment, with ``"n"``, ``"m"``,
        ``"time_ratio_fwd_over_rev"`` (and optionally its ``"time_ratio_low"``/``"time_ratio_high"``),
        ``"flop_ratio_fwd_over_rev"``, ``"chain_flops_f1"`` and ``"chain_flops_r1"``.
      crossover: the fitted n/m where forward mode stops being faster, marked if finite.

    Returns:
      The figure.
    """
    fig, (ax_t, ax_f) = plt.subplots(1, 2, figsize=(12, 4.8))
    sizes = sorted({r["m"] for r in records})
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, m in enumerate(sizes):
        c = colors[i % len(colors)]
        pts = sorted((r for r in records if r["m"] == m), key=lambda r: r["n"])
        x = np.array([r["n"] / m for r in pts])
        y = np.array([r["time_ratio_fwd_over_rev"] for r in pts])
        err = [y - [r.get("time_ratio_low", v) for r, v in zip(pts, y, strict=True)],
               [r.get("time_ratio_high", v) for r, v in zip(pts, y, strict=True)] - y]  # fmt: skip
        ax_t.errorbar(x, y, yerr=err, fmt="o-", c=c, capsize=3, label=f"m = {m}")
        ax_f.loglog(x, [r["flop_ratio_fwd_over_rev"] for r in pts], "o", c=c, label=f"XLA, m = {m}")
        ax_f.loglog(x, [r["chain_flops_f1"] / max(r["chain_flops_r1"], 1) for r in pts], "x", c=c, ms=8,
                    label=f"(F1)/(R1), m = {m}")  # fmt: skip
    ax_t.set(xscale="log", yscale="log")
    for ax in (ax_t, ax_f):
        ax.axhline(1, c="gray", lw=1)
        ax.axvline(1, c="gray", lw=1, ls=":")
        ax.set_xlabel("n / m (inputs / outputs)")
        ax.grid(alpha=0.3, which="both")
    if np.isfinite(crossover):
        ax_t.axvline(crossover, c="tab:red", ls="--", label=f"fitted crossover n/m = {crossover:.2g}")
    ax_t.set(ylabel="time jacfwd / time jacrev (median, 95% interval)",
             title="measured here: above 1 jacfwd is slower, below 1 faster")  # fmt: skip
    ax_f.set(ylabel="FLOPs jacfwd / FLOPs jacrev", title="FLOPs: XLA's cost analysis (o) and the chain rule (x)")
    ax_f.text(0.02, 0.02, "(F1)/(R1) multiplies the layer Jacobians, the first (last) taken as given;\n"
              "jacfwd (jacrev) also pushes the n (m) seed vectors through the first (last)\nlayer: n h n (m h m) "
              "more multiply-adds, which dominate for large n (m),\nso XLA's ratio lies further from 1 at the ends",
              transform=ax_f.transAxes, fontsize=7, va="bottom")  # fmt: skip
    ax_t.legend(fontsize=8)
    ax_f.legend(fontsize=6, ncol=2, loc="upper left")
    fig.tight_layout()
    return fig


def overlaid_curves(
    records: Sequence[dict], keys: Sequence[str], ylabel: str, title: str = "", x: str = "epoch"
) -> Figure:
    """Several series on one axis (dashed after the first, so coinciding curves stay visible).

    Args:
      records: dicts holding ``x`` and every key of ``keys``.
      keys: the series to draw, each a key of the records.
      ylabel: the y axis's label.
      title: the axes' title; by default "the curves coincide".
      x: the key of the x values.

    Returns:
      The figure.
    """
    fig, ax = plt.subplots(figsize=(6.5, 4))
    epochs = [r[x] for r in records]
    for i, key in enumerate(keys):
        ax.plot(epochs, [r[key] for r in records], "-" if i == 0 else "--", lw=2.5 - i, label=key)
    ax.set(xlabel=x, ylabel=ylabel, title=title or "the curves coincide")
    ax.grid(alpha=0.3)
    ax.legend()
    return fig


def consistency(records: Sequence[dict], metrics: dict) -> Figure:
    """Monte Carlo error against sample size (log-log) and gradient-estimator variances.

    Args:
      records: one dict per sample size, ``{"samples", "rmse"}``.
      metrics: the Monte Carlo experiment's metrics: ``"rmse_slope"``, ``"gradient_exact"`` and per
        estimator (score, score_baseline, pathwise) ``"gradient_<name>_variance"`` and ``"_mean"``.

    Returns:
      The figure.
    """
    fig, (ax_e, ax_g) = plt.subplots(1, 2, figsize=(11, 4.2))
    s = np.array([r["samples"] for r in records])
    rmse = np.array([r["rmse"] for r in records])
    ax_e.loglog(s, rmse, "o-", label=f"RMSE of the estimator (fitted slope {metrics['rmse_slope']:.3f})")
    ax_e.loglog(s, rmse[0] / np.sqrt(s), "k--", lw=1, label="1/sqrt(S)")
    ax_e.set(xlabel="samples S", ylabel="RMSE", title="consistency: error falls like 1/sqrt(S)")
    ax_e.grid(alpha=0.3, which="both")
    ax_e.legend(fontsize=8)
    names = ["score", "score_baseline", "pathwise"]
    variances = [metrics[f"gradient_{n}_variance"] for n in names]
    ax_g.bar(
        ["score function", "score + baseline", "pathwise"], variances, color=["tab:red", "tab:orange", "tab:green"]
    )
    # A linear axis from 0: bar heights compare as the variances do (a log axis's floor would not).
    ax_g.set_ylim(0, 1.2 * max(variances))
    ax_g.set(
        ylabel="variance of the gradient estimate", title=f"unbiased gradients (exact {metrics['gradient_exact']:.3f})"
    )
    for i, n in enumerate(names):
        ax_g.annotate(
            f"variance {variances[i]:.2g}\nmean {metrics[f'gradient_{n}_mean']:.3f}",
            (i, variances[i]),
            ha="center",
            va="bottom",
            fontsize=8,
        )
    fig.tight_layout()
    return fig


def universal_approximation(x: np.ndarray, truth: np.ndarray, fits: dict, records: Sequence[dict]) -> Figure:
    """1-D fits for several widths next to the max error against the width (1-D and 2-D).

    Args:
      x: the 1-D grid the fits were evaluated on.
      truth: the target function on ``x``.
      fits: ``{width: the fitted network's values on x}``.
      records: one dict per fit, ``{"dim", "width", "max_error"}``.

    Returns:
      The figure.
    """
    fig, (ax_f, ax_e) = plt.subplots(1, 2, figsize=(11, 4.2))
    ax_f.plot(x, truth, "k", lw=2.5, label="f")
    for width, y in fits.items():
        ax_f.plot(x, y, lw=1, label=f"N = {width}")
    ax_f.set(xlabel="x", ylabel="value", title="one hidden layer of N sigmoids")
    ax_f.legend(fontsize=7, ncol=2)
    for dim in sorted({r["dim"] for r in records}):
        pts = [r for r in records if r["dim"] == dim]
        ax_e.loglog([r["width"] for r in pts], [r["max_error"] for r in pts], "o-", label=f"{dim}-D target")
    ax_e.set(xlabel="hidden width N", ylabel="max |G^N(x) - f(x)| on a fine grid", title="error against width")
    ax_e.grid(alpha=0.3, which="both")
    ax_e.legend()
    fig.tight_layout()
    return fig


def minibatch(sizes: Sequence[int], variance: Sequence[float], curves: dict) -> Figure:
    """Gradient variance against batch size; SGD loss against epochs and against seconds.

    Args:
      sizes: the batch sizes B.
      variance: the total variance of the minibatch gradient at each size.
      curves: ``{B: [{"epoch", "seconds", "loss"}, ...]}`` full-batch losses of SGD runs.

    Returns:
      The figure.
    """
    fig, (ax_v, ax_e, ax_t) = plt.subplots(1, 3, figsize=(15, 4.2))
    ax_v.loglog(sizes, variance, "o-", label="measured")
    ax_v.loglog(sizes, variance[0] / np.asarray(sizes, float), "k--", lw=1, label="1/B")
    ax_v.set(xlabel="batch size B", ylabel="total variance of the minibatch gradient", title="variance against B")
    ax_v.grid(alpha=0.3, which="both")
    ax_v.legend()
    for b, history in curves.items():
        ax_e.plot([r["epoch"] for r in history], [r["loss"] for r in history], label=f"B = {b}")
        ax_t.plot([r["seconds"] for r in history], [r["loss"] for r in history], label=f"B = {b}")
    ax_e.set(xlabel="epoch", ylabel="full-batch loss", title="SGD: loss against epochs")
    ax_t.set(xlabel="seconds (compiled epochs)", ylabel="full-batch loss", title="SGD: loss against time")
    for ax in (ax_e, ax_t):
        ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    return fig


def gradient_norms(at_init: dict, after: dict, init_norms: dict) -> Figure:
    """Per-layer weight-gradient norms: by activation at initialisation, after training, by initialisation.

    Args:
      at_init: ``{activation: [norm per layer]}`` at initialisation.
      after: the same after some SGD steps.
      init_norms: ``{initialisation: [norm per layer]}``.

    Returns:
      The figure, three panels on a log scale.
    """
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.5), sharey=False)
    for ax, series, title in (
        (axes[0], at_init, "by activation, at initialisation"),
        (axes[1], after, "by activation, after SGD steps"),
        (axes[2], init_norms, "ReLU (sigmoid where named) by initialisation"),
    ):
        for name, norms in series.items():
            values = np.maximum(np.asarray(norms), 1e-30)
            ax.semilogy(np.arange(1, len(values) + 1), values, "o-", ms=3, label=name)
        ax.set(xlabel="layer (1 = nearest the input)", ylabel="|dL/dW|", title=title)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def optimizer_paths(paths: dict, functions: dict) -> Figure:
    """Optimizer trajectories over the contours of each 2-D test function.

    Args:
      paths: ``{problem: {optimizer name: (steps, 2) array of iterates}}``.
      functions: ``{problem: f}``, f mapping a ``(2,)`` array to a positive scalar.

    Returns:
      The figure, one panel per problem.
    """
    fig, axes = plt.subplots(1, len(paths), figsize=(6.5 * len(paths), 5), squeeze=False)
    for ax, (problem, by_name) in zip(axes[0], paths.items(), strict=True):
        every = np.concatenate(list(by_name.values()))
        finite = every[np.all(np.isfinite(every), axis=1)]
        lo, hi = finite.min(0) - 0.3, finite.max(0) + 0.3
        lo, hi = np.minimum(lo, [-1.6, -0.4]), np.maximum(hi, [1.3, 1.6])
        gx, gy = np.meshgrid(np.linspace(lo[0], hi[0], 300), np.linspace(lo[1], hi[1], 300))
        f = functions[problem]
        z = np.asarray(jax.vmap(jax.vmap(lambda a, b, f=f: f(jnp.stack([a, b]))))(gx, gy))
        ax.contour(gx, gy, np.log10(z + 1e-3), levels=25, cmap="Greys", linewidths=0.6)
        for name, path in by_name.items():
            (line,) = ax.plot(path[:, 0], path[:, 1], "-", lw=1.2, label=name)
            ax.plot(path[-1, 0], path[-1, 1], "o", ms=5, color=line.get_color())
        ax.set(xlim=(lo[0], hi[0]), ylim=(lo[1], hi[1]), title=f"{problem} (contours of log f)")
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def range_test(rates: np.ndarray, losses: np.ndarray, smooth: np.ndarray, suggested: float) -> Figure:
    """The learning-rate range test: the loss per step as the rate rises, and the suggested rate.

    Args:
      rates: the learning rate of each step, rising.
      losses: the training loss at each step.
      smooth: the smoothed losses.
      suggested: the rate to mark (where the smoothed loss falls fastest).

    Returns:
      The figure.
    """
    fig, ax = plt.subplots(figsize=(6.5, 4))
    ax.semilogx(rates, losses, alpha=0.4, label="loss per step")
    ax.semilogx(rates, smooth, lw=2, label="smoothed")
    ax.axvline(suggested, c="tab:red", ls="--", label=f"suggested lr {suggested:.3g} (steepest descent)")
    ax.set(xlabel="learning rate (rising each step)", ylabel="training loss", title="learning-rate range test")
    ax.set_ylim(0, min(float(np.nanmax(smooth[np.isfinite(smooth)])) * 1.5, 10))
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return fig


def regularization(histories: dict) -> Figure:
    """Train (solid) and validation (dashed) loss and accuracy per epoch, one column per regulariser.

    Args:
      histories: ``{regulariser: epoch records with train_/val_ loss and accuracy}``.

    Returns:
      The figure.
    """
    n = len(histories)
    fig, axes = plt.subplots(2, n, figsize=(4 * n, 6.4), sharex=True, sharey="row", squeeze=False)
    for col, (name, history) in enumerate(histories.items()):
        epochs = [r["epoch"] for r in history]
        for row, metric in enumerate(("loss", "accuracy")):
            ax = axes[row][col]
            ax.plot(epochs, [r[f"train_{metric}"] for r in history], "-", label="train")
            ax.plot(epochs, [r[f"val_{metric}"] for r in history], "--", label="validation")
            ax.grid(alpha=0.3)
        gap = history[-1]["val_loss"] - history[-1]["train_loss"]
        axes[0][col].set(title=f"{name} (loss gap {gap:.2f})", yscale="log")
        axes[1][col].set(xlabel="epoch", title=f"validation accuracy {100 * history[-1]['val_accuracy']:.1f}%")
    axes[0][0].set_ylabel("loss")
    axes[1][0].set_ylabel("accuracy")
    axes[0][0].legend()
    fig.tight_layout()
    return fig


def forward_gradient(curves: dict, metrics: dict) -> Figure:
    """Per network: training loss against steps and against seconds, backprop and forward gradient.

    Args:
      curves: ``{network: {"backprop" | "forward": {"losses": [...], "seconds_per_step": float}}}``.
      metrics: holds ``"<network>_parameters"``, the parameter count shown in each title.

    Returns:
      The figure: a column per network.
    """
    fig, axes = plt.subplots(2, len(curves), figsize=(5 * len(curves), 7.5), squeeze=False)
    for col, (name, runs) in enumerate(curves.items()):
        for estimator, style in (("backprop", "tab:blue"), ("forward", "tab:orange")):
            losses = runs[estimator]["losses"]
            window = max(len(losses) // 50, 1)
            smooth = np.convolve(losses, np.ones(window) / window, mode="valid")
            steps = np.arange(window, len(losses) + 1)
            label = "backprop (grad)" if estimator == "backprop" else "forward gradient (one jvp)"
            axes[0][col].plot(steps, smooth, c=style, label=label)
            axes[1][col].plot(steps * runs[estimator]["seconds_per_step"], smooth, c=style, label=label)
        axes[0][col].set(title=f"{name}: {metrics[f'{name}_parameters']:,} parameters", xlabel="step",
                         ylabel=f"training loss (mean of {window} steps)")  # fmt: skip
        axes[1][col].set(xlabel="seconds (compiled steps)", ylabel="training loss")
        for ax in axes[:, col]:
            ax.set_yscale("log")
            ax.grid(alpha=0.3, which="both")
            ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def forward_learning(curves: dict, ks: Sequence[int], cosines: dict, theory: dict, dataset: str = "MNIST") -> Figure:
    """Test accuracy against epoch per method, and each forward estimator's cosine against tangents k.

    Args:
      curves: ``{label: (accuracy (seeds, epochs + 1), colour)}``, drawn as the mean and 95% interval.
      ks: the numbers of tangents measured.
      cosines: ``{estimator: (len(ks), blocks)}`` cosines to the exact local gradient.
      theory: ``{n: values at ks}``, the weight-perturbed theory for n directions.
      dataset: the images' name, for the accuracy panel's title.

    Returns:
      The figure, two panels side by side.
    """
    fig, (acc, cos) = plt.subplots(1, 2, figsize=(12, 4.5))
    for name, (accuracy, color) in curves.items():  # accuracy: (seeds, epochs + 1)
        mean, low, high = _band(100 * np.asarray(accuracy, float))
        epochs = np.arange(len(mean))
        acc.plot(epochs, mean, "o-", c=color, ms=3, label=f"{name}: {mean[-1]:.2f}%")
        acc.fill_between(epochs, low, high, color=color, alpha=0.2, lw=0)
    acc.xaxis.get_major_locator().set_params(integer=True)
    acc.set(xlabel="epoch", ylabel="test accuracy (%)", ylim=(0, 100),
            title=f"{dataset}, mean and 95% interval over {len(next(iter(curves.values()))[0])} seeds")  # fmt: skip
    acc.legend(fontsize=8, loc="lower right")
    styles = ["-", "--", ":", "-."]
    for (estimator, table), color in zip(cosines.items(), ("tab:orange", "tab:green"), strict=False):
        for b in range(table.shape[1]):
            cos.plot(
                ks, table[:, b], styles[b % 4], c=color, marker="o", ms=3, label=f"{estimator}-perturbed, block {b}"
            )
    for b, (n, values) in enumerate(theory.items()):
        cos.plot(ks, values, styles[b % 4], c="gray", lw=0.8, label=f"sqrt(k / (k + n - 1)), n = {n:,} per head")
    cos.set(xscale="log", yscale="log", xlabel="tangents k", ylabel="rms cosine to the exact local gradient",
            title="forward-gradient estimators at initialisation")  # fmt: skip
    for ax in (acc, cos):
        ax.grid(alpha=0.3, which="both")
    cos.legend(fontsize=7)
    fig.tight_layout()
    return fig


def curvature_spectra(metrics: dict, densities: dict) -> Figure:
    """Top Hessian eigenvalues (Lanczos) and the eigenvalue density at initialisation and after training.

    Args:
      metrics: holds ``"<network>_top_eigenvalues"`` for each network.
      densities: ``{network: {when: (grid, density)}}``, e.g. ``when`` "initialisation" and "trained".

    Returns:
      The figure.
    """
    names = list(densities)
    fig, axes = plt.subplots(1, 1 + len(names), figsize=(5 * (1 + len(names)), 4.2), squeeze=False)
    ax = axes[0][0]
    for name in names:
        top = metrics[f"{name}_top_eigenvalues"]
        ax.semilogy(np.arange(1, len(top) + 1), np.maximum(top, 1e-12), "o-", label=name)
    ax.set(xlabel="rank", ylabel="eigenvalue", title="top Hessian eigenvalues (Lanczos)")
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    for ax, name in zip(axes[0][1:], names, strict=True):
        for when, (grid, density) in densities[name].items():
            ax.plot(grid, np.maximum(density, 1e-12), label=when)
        ax.set_yscale("log")
        ax.set_ylim(bottom=1e-6 * max(d.max() for _, d in densities[name].values()))
        ax.set(xlabel="eigenvalue", ylabel="density", title=f"{name}: spectral density (stochastic Lanczos)")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    return fig


def loss_slices(slices: dict) -> Figure:
    """Filter-normalised 1-D slices of the loss (all networks) and a 2-D slice per network.

    Args:
      slices: ``{network: {"line": (points, values), "square": (points, values 2-D)}}``, as
        :func:`jaxdl.curvature.loss_slice` computes them.

    Returns:
      The figure.
    """
    names = list(slices)
    fig, axes = plt.subplots(1, 1 + len(names), figsize=(5 * (1 + len(names)), 4.2), squeeze=False)
    ax = axes[0][0]
    for name in names:
        points, values = slices[name]["line"]
        ax.plot(points, values, "o-", ms=3, label=name)
    ax.set(xlabel="step along a filter-normalised direction", ylabel="training loss", title="1-D loss slices")
    ax.grid(alpha=0.3)
    ax.legend()
    for ax, name in zip(axes[0][1:], names, strict=True):
        points, values = slices[name]["square"]
        contours = ax.contour(points, points, values.T, levels=15, cmap="viridis")
        ax.clabel(contours, fontsize=7)
        ax.plot([0], [0], "r*", ms=10)
        ax.set(xlabel="direction 1", ylabel="direction 2", title=f"{name}: 2-D loss slice")
    fig.tight_layout()
    return fig


def diagnostics(history: Sequence[dict], title: str = "") -> Figure:
    """The layer statistics of :class:`jaxdl.train.instruments.Instruments` against the epoch.

    Four panels, one line per layer: activation std, fraction of dead features,
    gradient norm (log scale) and log10 of the update-to-parameter ratio, with
    makemore's rule of thumb of about -3 marked.

    Args:
      history: epoch records; those with a ``"diagnostics"`` entry are drawn.
      title: the figure's title.

    Returns:
      The figure.

    Raises:
      ValueError: no record holds diagnostics.
    """
    records = [r for r in history if "diagnostics" in r]
    if not records:
        raise ValueError("no history record holds diagnostics: train with Instruments (diagnostics=true)")
    epochs = [r["epoch"] for r in records]
    panels = (
        ("activations", "std", "activation std", False),
        ("activations", "dead_fraction", "dead features (<= 0 on the whole batch)", False),
        ("parameters", "grad_norm", "gradient norm", True),
        ("parameters", "update_ratio", "log10 update / parameter norm", False),
    )
    layers = sorted({name for group in ("activations", "parameters") for name in records[-1]["diagnostics"][group]})
    colours = {name: plt.cm.tab20(i % 20) for i, name in enumerate(layers)}  # one colour per layer, all panels
    fig, axes = plt.subplots(2, 2, figsize=(13, 8))
    for ax, (group, key, label, log_scale) in zip(axes.flat, panels, strict=True):
        for layer in records[-1]["diagnostics"][group]:
            values = np.array([r["diagnostics"][group].get(layer, {}).get(key, np.nan) for r in records])
            if key == "update_ratio":
                values = np.log10(np.maximum(values, 1e-30))
            ax.plot(epochs, values, "-o", ms=3, c=colours[layer], label=layer)
        if key == "update_ratio":
            ax.axhline(-3, c="k", ls=":", lw=1)
            ax.annotate("1e-3 (makemore's rule of thumb)", (epochs[0], -3), xytext=(0, 3), textcoords="offset points",
                        fontsize=8)  # fmt: skip
        if log_scale:
            ax.set_yscale("log")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.set(xlabel="epoch", title=label)
        ax.grid(alpha=0.3)
    handles = [plt.Line2D([], [], c=colours[name], marker="o", ms=3, label=name) for name in layers]
    fig.legend(handles=handles, loc="center right", fontsize=8, title="layer")
    fig.suptitle(title or "layer statistics on a fixed training batch")
    fig.tight_layout(rect=(0, 0, 0.88, 1))
    return fig


def confusion_matrix(labels: np.ndarray, predicted: np.ndarray, class_names: Sequence[str], title: str = "") -> Figure:
    """Counts of (true class, predicted class), each row's share as colour, the diagonal being right.

    Args:
      labels: ``(N,)`` true labels.
      predicted: ``(N,)`` predicted labels.
      class_names: the classes in label order.
      title: the axes' title; by default the accuracy.

    Returns:
      The figure.
    """
    k = len(class_names)
    counts = np.zeros((k, k), int)
    np.add.at(counts, (np.asarray(labels), np.asarray(predicted)), 1)
    shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    size = max(4.0, 0.5 * k + 2)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    image = ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    for i in range(k):
        for j in range(k):
            ax.text(j, i, str(counts[i, j]), ha="center", va="center", fontsize=8,
                    color="white" if shares[i, j] > 0.5 else "black")  # fmt: skip
    ax.set_xticks(range(k), class_names, rotation=45, ha="right")
    ax.set_yticks(range(k), class_names)
    ax.set(xlabel="predicted", ylabel="true", title=title or f"accuracy {100 * np.trace(counts) / counts.sum():.2f}%")
    fig.colorbar(image, ax=ax, label="share of the true class")
    fig.tight_layout()
    return fig
