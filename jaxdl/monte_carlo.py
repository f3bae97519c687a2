"""Monte Carlo estimators and gradient estimators (tutorial 0), as pure functions of a PRNG key.

An expectation E_{x ~ p}[f(x)] is estimated by the mean of f over S samples:
unbiased for every S, and consistent (its error falls like 1/sqrt(S)). For
the gradient d/dtheta E_{x ~ N(theta, sigma^2)}[f(x)] there are two classic
unbiased estimators (Mohamed et al. 2020, the tutorial's [5]):

- score function (REINFORCE): f(x) * d/dtheta log p(x; theta) = f(x) (x - theta) / sigma^2,
  optionally with a baseline b subtracted from f (still unbiased, lower variance);
- pathwise (reparameterisation): x = theta + sigma * eps, so the gradient is f'(x).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

Fn = Callable[[jax.Array], jax.Array]


def mc_estimate(key: jax.Array, f: Fn, sampler: Callable[[jax.Array, int], jax.Array], num_samples: int) -> jax.Array:
    """(1/S) sum_i f(x_i) with x_i = sampler(key, S)[i].

    Args:
      key: a ``jax.random`` key, passed to ``sampler``.
      f: the integrand, applied to the whole batch of samples at once (vectorised).
      sampler: ``sampler(key, n)`` returns n draws from p, e.g. :func:`gaussian_sampler`.
      num_samples: S; the estimate's standard error falls like 1 / sqrt(S).

    Returns:
      The estimate of E_p[f(x)], a scalar.

    Example: E[x^2] = 1 for a standard normal, estimated from 100,000 draws.

      >>> float(mc_estimate(jax.random.key(0), jnp.square, gaussian_sampler(0.0, 1.0), 100_000)).__round__(2)
      1.0
    """
    return jnp.mean(f(sampler(key, num_samples)))


def gaussian_sampler(mean: float, std: float) -> Callable[[jax.Array, int], jax.Array]:
    """``sample(key, n)``: n draws from N(mean, std^2), for :func:`mc_estimate`.

    Args:
      mean: the distribution's mean.
      std: its standard deviation.

    Returns:
      A function ``sample(key, n)`` returning an ``(n,)`` array.

    Example:
      >>> gaussian_sampler(2.0, 0.5)(jax.random.key(0), 3).shape
      (3,)
    """

    def sample(key, n):
        return mean + std * jax.random.normal(key, (n,))

    return sample


def score_function_gradient(
    key: jax.Array, f: Fn, theta: jax.Array, sigma: float, num_samples: int, baseline: bool = False
) -> jax.Array:
    """REINFORCE estimate of d/dtheta E_{N(theta, sigma^2)}[f]; ``baseline`` subtracts a leave-one-out mean of f.

    Needs only values of f, not its derivative, so it works for a non-differentiable f; its variance is
    larger than :func:`pathwise_gradient`'s.

    Args:
      key: a ``jax.random`` key for the S draws.
      f: a vectorised function of the samples; need not be differentiable.
      theta: the mean of the sampling distribution, a scalar.
      sigma: its standard deviation.
      num_samples: S, at least 2 with ``baseline``.
      baseline: subtract from each f(x_i) the mean of the other samples' values (still unbiased).

    Returns:
      The gradient estimate, a scalar.

    Example: d/dtheta E[x^2] = 2 theta, here 2.

      >>> g = score_function_gradient(jax.random.key(0), jnp.square, 1.0, 1.0, 100_000, baseline=True)
      >>> abs(float(g) - 2.0) < 0.1
      True
    """
    x = theta + sigma * jax.random.normal(key, (num_samples,))
    fx = f(x)
    if baseline:  # leave-one-out: each sample's baseline ignores that sample, so the estimate stays unbiased
        fx = fx - (jnp.sum(fx) - fx) / (num_samples - 1)
    return jnp.mean(fx * (x - theta) / sigma**2)


def pathwise_gradient(key: jax.Array, f: Fn, theta: jax.Array, sigma: float, num_samples: int) -> jax.Array:
    """Reparameterisation estimate: the mean of d/dtheta f(theta + sigma * eps), by jax.grad.

    Args:
      key: a ``jax.random`` key for the S draws of eps ~ N(0, 1).
      f: a vectorised, differentiable function of the samples.
      theta: the mean of the sampling distribution, a scalar array.
      sigma: its standard deviation.
      num_samples: S.

    Returns:
      The gradient estimate, shaped like ``theta``.

    Example:
      >>> g = pathwise_gradient(jax.random.key(0), jnp.square, jnp.array(1.0), 1.0, 10_000)
      >>> abs(float(g) - 2.0) < 0.1
      True
    """
    eps = jax.random.normal(key, (num_samples,))
    return jax.grad(lambda t: jnp.mean(f(t + sigma * eps)))(theta)


def gan_discriminator_loss(
    key: jax.Array, discriminator: Fn, generator: Fn, data_sampler, latent_dim: int, batch: int
) -> jax.Array:
    """Tutorial 0's GAN loss by Monte Carlo: -mean log D(x) - mean log(1 - D(G(z))), z ~ N(0, I).

    Args:
      key: a ``jax.random`` key, split for the data and the noise.
      discriminator: D, a batch of points to probabilities of "real", in (0, 1).
      generator: G, a ``(batch, latent_dim)`` noise batch to fake points.
      data_sampler: ``data_sampler(key, batch)`` returns real points.
      latent_dim: the dimension of z.
      batch: how many real and how many fake points.

    Returns:
      The discriminator's loss, a scalar; minimising it trains D to tell real from fake.
    """
    data_key, noise_key = jax.random.split(key)
    x = data_sampler(data_key, batch)
    z = jax.random.normal(noise_key, (batch, latent_dim))
    return -jnp.mean(jnp.log(discriminator(x))) - jnp.mean(jnp.log1p(-discriminator(generator(z))))
