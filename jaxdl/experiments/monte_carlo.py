"""Tutorial 0's Monte Carlo claims, measured with many independent estimators at once (vmap over keys).

1. Unbiased and consistent: E[cos x] for x ~ N(mu, sigma^2) is cos(mu) exp(-sigma^2 / 2). For each
   sample size S, ``repeats`` independent estimators; their mean must sit within its confidence
   interval of the truth, and their RMSE must fall like S^(-1/2) (the fitted log-log slope).
2. The GAN discriminator loss for a fixed D and G, by Monte Carlo, against Gauss-Hermite quadrature.
3. Gradient estimators of d/dtheta E_{x ~ N(theta, sigma^2)}[2 + cos x] (exact: -sin(theta) exp(-sigma^2/2)):
   score function with and without a baseline, and pathwise; their means and variances side by side.
   The constant 2 leaves the gradient alone but inflates the score function's variance, which is
   what a baseline (a control variate) takes away.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxdl import monte_carlo as mc
from jaxdl import plots
from jaxdl.claims import Claim, Run, at_most, between
from jaxdl.experiments import Experiment
from jaxdl.experiments.settings import MonteCarloConfig as Config
from jaxdl.rundir import RunDir


def _expectation(config: Config, key) -> tuple[list[dict], dict[str, Any]]:
    truth = math.cos(config.mu) * math.exp(-(config.sigma**2) / 2)
    sampler = mc.gaussian_sampler(config.mu, config.sigma)
    records = []
    sizes = [10**k for k in range(int(math.log10(config.max_samples)) + 1)]
    for s in sizes:
        keys = jax.random.split(jax.random.fold_in(key, s), config.repeats)
        estimates = np.asarray(
            jax.jit(jax.vmap(lambda k, s=s: mc.mc_estimate(k, jnp.cos, sampler, s)))(keys), np.float64
        )
        mean, se = estimates.mean(), estimates.std(ddof=1) / math.sqrt(config.repeats)
        records.append({
            "samples": s, "mean_of_estimators": mean, "standard_error": se, "z_score": (mean - truth) / se,
            "rmse": float(np.sqrt(np.mean((estimates - truth) ** 2))),
        })  # fmt: skip
    slope = float(np.polyfit(np.log10(sizes), np.log10([r["rmse"] for r in records]), 1)[0])
    return records, {
        "expectation_true": truth,
        "expectation_max_abs_z": max(abs(r["z_score"]) for r in records),
        "rmse_slope": slope,
    }


def _gan(config: Config, key) -> dict[str, Any]:
    def discriminator(x):
        return jax.nn.sigmoid(1.5 * x[..., 0] - 1.0)

    def generator(z):
        return 0.5 * z + 0.3

    def data_sampler(k, n):
        return (2.0 + jax.random.normal(k, (n,)))[:, None]

    nodes, weights = np.polynomial.hermite_e.hermegauss(80)  # E over N(0, 1)
    weights = weights / weights.sum()
    d_real = 1 / (1 + np.exp(-(1.5 * (2.0 + nodes) - 1.0)))
    d_fake = 1 / (1 + np.exp(-(1.5 * (0.5 * nodes + 0.3) - 1.0)))
    truth = float(-(weights @ np.log(d_real)) - (weights @ np.log1p(-d_fake)))
    out = {"gan_loss_true": truth}
    for m in (16, 256, 4096):
        keys = jax.random.split(jax.random.fold_in(key, m), config.repeats)
        est = np.asarray(
            jax.vmap(lambda k, m=m: mc.gan_discriminator_loss(k, discriminator, generator, data_sampler, 1, m))(keys)
        )
        out[f"gan_loss_mean_m{m}"] = float(est.mean())
        out[f"gan_loss_std_m{m}"] = float(est.std(ddof=1))
    return out


def _gradients(config: Config, key) -> dict[str, Any]:
    theta, s, n = jnp.float32(config.mu), config.sigma, config.gradient_samples
    exact = -math.sin(config.mu) * math.exp(-(s**2) / 2)
    keys = jax.random.split(key, config.repeats)

    def f(x):
        return 2.0 + jnp.cos(x)

    estimators = {
        "score": lambda k: mc.score_function_gradient(k, f, theta, s, n),
        "score_baseline": lambda k: mc.score_function_gradient(k, f, theta, s, n, baseline=True),
        "pathwise": lambda k: mc.pathwise_gradient(k, f, theta, s, n),
    }
    out: dict[str, Any] = {"gradient_exact": exact}
    for name, estimator in estimators.items():
        est = np.asarray(jax.jit(jax.vmap(estimator))(keys), np.float64)
        out[f"gradient_{name}_mean"] = float(est.mean())
        out[f"gradient_{name}_variance"] = float(est.var(ddof=1))
        out[f"gradient_{name}_z"] = float((est.mean() - exact) / (est.std(ddof=1) / math.sqrt(len(est))))
    return out


def run(config: Config, run_dir: RunDir) -> dict[str, Any]:
    """The three studies of the module docstring, each estimator repeated ``config.repeats`` times.

    Writes one history record per sample size S (the mean of the estimators,
    its standard error and z-score against the truth, the RMSE) and
    ``consistency.png``.

    Args:
      config: ``mu`` and ``sigma`` of the Gaussian, ``max_samples`` (S runs
        over the powers of 10 up to it), ``repeats``, ``gradient_samples`` and
        the seed.
      run_dir: where the history and the figure go.

    Returns:
      Metrics: ``expectation_true`` (cos(mu) exp(-sigma^2 / 2)),
      ``expectation_max_abs_z`` (the worst |z| over S: about 3 or less is
      unbiased) and ``rmse_slope`` (the fitted log-log slope, theory -0.5);
      ``gan_loss_true`` (by quadrature) and ``gan_loss_mean_mM``/
      ``gan_loss_std_mM`` for M = 16, 256 and 4096 samples; and
      ``gradient_exact`` with ``gradient_E_mean``, ``gradient_E_variance`` and
      ``gradient_E_z`` for each estimator E of ``score``, ``score_baseline``
      and ``pathwise``.
    """
    key = jax.random.key(config.seed)
    records, metrics = _expectation(config, jax.random.fold_in(key, 1))
    run_dir.append_history(records)
    metrics.update(_gan(config, jax.random.fold_in(key, 2)))
    metrics.update(_gradients(config, jax.random.fold_in(key, 3)))
    print(f"E[cos x] = {metrics['expectation_true']:.6f}; the mean of {config.repeats} estimators is within "
          f"{metrics['expectation_max_abs_z']:.2f} standard errors of it at every S; "
          f"RMSE slope {metrics['rmse_slope']:.3f} (theory -0.5)")  # fmt: skip
    gan = [f"{metrics[f'gan_loss_mean_m{m}']:.4f} +- {metrics[f'gan_loss_std_m{m}']:.4f}" for m in (16, 256, 4096)]
    print(
        f"GAN discriminator loss: quadrature {metrics['gan_loss_true']:.4f}; Monte Carlo, m=16/256/4096: "
        + ", ".join(gan)
    )
    print(f"gradient (exact {metrics['gradient_exact']:.4f}), mean / variance over {config.repeats} estimates of "
          f"{config.gradient_samples} samples: " + "; ".join(
              f"{name} {metrics[f'gradient_{name}_mean']:.4f} / {metrics[f'gradient_{name}_variance']:.2e}"
              for name in ("score", "score_baseline", "pathwise")))  # fmt: skip
    run_dir.save_figure(plots.consistency(records, metrics), "consistency.png")
    return metrics


EXPERIMENT = Experiment(
    name="monte-carlo",
    description="tutorial 0: Monte Carlo unbiasedness and 1/sqrt(S) consistency, GAN loss, score vs pathwise "
    "gradients",
    config=Config,
    run=run,
    smallest=("max_samples=1000", "repeats=200"),
    claims=(
        Run(name="monte-carlo", quick=("repeats=200",), claims=(
            Claim(source="tutorial 0", statement="the Monte Carlo estimate is unbiased: worst |z| of the mean of 1,000 "
                  "estimators", tutorial="unbiased", metric="expectation_max_abs_z", fmt="{:.2f}",
                  target=at_most(3.0, "<= 3")),
            Claim(source="tutorial 0", statement="its error falls like 1/sqrt(S): fitted log-log slope",
                  tutorial="-0.5", metric="rmse_slope", fmt="{:.3f}", target=between(-0.55, -0.45, "-0.5 +- 0.05")),
        )),
    ),
)  # fmt: skip
