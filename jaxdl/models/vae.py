"""Tutorial 2's variational autoencoder on MNIST, its reparameterisation and its loss, in one place.

Encoder 784 -> 400 (ReLU) -> (mean, log-variance) of a 20-D Gaussian;
decoder 20 -> 400 (ReLU) -> 784 Bernoulli logits. The loss per image is the
negative ELBO: BCE summed over pixels (reconstruction) plus the analytic
KL(q(z|x) || N(0, I)), in nats. With ``num_classes > 0`` the encoder and
decoder also see a one-hot label (a conditional VAE), so a chosen digit can
be generated: the tutorial's open question.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxdl.functional.activations import relu
from jaxdl.functional.losses import binary_cross_entropy_with_logits, gaussian_kl
from jaxdl.models.classifiers import dense


def with_label(x: jax.Array, labels: jax.Array | None, num_classes: int) -> jax.Array:
    """``x`` with the one-hot label appended, for a conditional VAE (``num_classes > 0``); else ``x``.

    Args:
      x: ``(B, d)`` images or latents.
      labels: ``(B,)`` integer labels; ignored (may be None) when ``num_classes`` is 0.
      num_classes: the one-hot width, 0 for an unconditional VAE.

    Returns:
      ``(B, d + num_classes)``, in ``x``'s dtype.
    """
    if not num_classes:
        return x
    return jnp.concatenate([x, jax.nn.one_hot(labels, num_classes, dtype=x.dtype)], axis=-1)


def reparameterize(key: jax.Array, mean: jax.Array, logvar: jax.Array) -> jax.Array:
    """z = mean + sigma * eps with eps ~ N(0, I): a sample whose gradient flows to mean and logvar.

    Args:
      key: a ``jax.random`` key for eps.
      mean: ``(..., latents)`` means of q(z|x).
      logvar: log-variances, same shape; sigma = exp(logvar / 2).

    Returns:
      A sample z, shaped like ``mean``.

    Example:
      >>> z = reparameterize(jax.random.key(0), jnp.zeros((2, 3)), jnp.full((2, 3), -100.0))
      >>> float(jnp.abs(z).max()) < 1e-6  # sigma = exp(-50): z is the mean
      True
    """
    eps = jax.random.normal(key, mean.shape, mean.dtype)
    return mean + jnp.exp(0.5 * logvar) * eps


class VAE(nn.Module):
    """Takes images ``(B, 784)`` in [0, 1]; a conditional VAE also takes ``labels`` ``(B,)`` int.

    Returns ``(logits, mean, logvar)``: the reconstruction's Bernoulli logits and q(z|x). Needs a
    ``"sample"`` RNG stream for the reparameterisation (``apply(..., rngs={"sample": key})``).

    Attributes:
      latents: the dimension of z (the tutorial's 20).
      hidden: the width of the encoder's and decoder's hidden layer (400).
      features: pixels per image (784).
      num_classes: > 0 conditions the encoder and decoder on the one-hot label.
    """

    latents: int = 20
    hidden: int = 400
    features: int = 784
    num_classes: int = 0

    def setup(self):
        """Declares the five dense layers (PyTorch's ``nn.Linear`` initialisation)."""
        extra = self.num_classes
        self.enc = dense(self.hidden, self.features + extra)
        self.enc_mean = dense(self.latents, self.hidden)
        self.enc_logvar = dense(self.latents, self.hidden)
        self.dec = dense(self.hidden, self.latents + extra)
        self.dec_out = dense(self.features, self.hidden)

    def _with_label(self, x: jax.Array, labels: jax.Array | None) -> jax.Array:
        return with_label(x, labels, self.num_classes)

    def encode(self, image: jax.Array, labels: jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
        """q(z|x): the posterior's mean and log-variance.

        Args:
          image: ``(B, features)`` pixels in [0, 1].
          labels: ``(B,)`` labels for a conditional VAE, else None.

        Returns:
          ``(mean, logvar)``, each ``(B, latents)``.
        """
        h = relu(self.enc(self._with_label(image, labels)))
        return self.enc_mean(h), self.enc_logvar(h)

    def decode(self, z: jax.Array, labels: jax.Array | None = None) -> jax.Array:
        """Bernoulli logits of the 784 pixels; ``sigmoid`` of them is the image.

        Args:
          z: ``(B, latents)`` latents, e.g. drawn from N(0, I) to generate.
          labels: ``(B,)`` labels for a conditional VAE (the digits to draw), else None.

        Returns:
          ``(B, features)`` logits.
        """
        return self.dec_out(relu(self.dec(self._with_label(z, labels))))

    def __call__(self, image: jax.Array, labels: jax.Array | None = None, train: bool = False):
        """Encodes, samples z by :func:`reparameterize` and decodes.

        Args:
          image: ``(B, features)`` pixels in [0, 1].
          labels: ``(B,)`` integer labels; required when ``num_classes > 0``.
          train: unused (the VAE has no dropout or batch norm); taken so every model has one signature.

        Returns:
          ``(logits, mean, logvar)``: ``(B, features)`` reconstruction logits and q(z|x)'s ``(B, latents)``
          parameters, the arguments :func:`vae_loss` takes.

        Raises:
          ValueError: when a conditional VAE gets no labels.
        """
        if self.num_classes and labels is None:
            raise ValueError("a conditional VAE (num_classes > 0) needs labels")
        mean, logvar = self.encode(image, labels)
        z = reparameterize(self.make_rng("sample"), mean, logvar)
        return self.decode(z, labels), mean, logvar


def vae_loss(outputs, batch) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Negative ELBO per image (nats) and its two terms; ``batch["inputs"]`` holds the images in [0, 1].

    Args:
      outputs: ``(logits, mean, logvar)`` from :class:`VAE`.
      batch: a dict with ``"inputs"``, ``(B, 784)`` images in [0, 1] (the Bernoulli targets).

    Returns:
      ``(loss, terms)``: ``(B,)`` negative ELBOs, and ``{"reconstruction", "kl"}``, each ``(B,)``, that
      add up to it.
    """
    logits, mean, logvar = outputs
    image = batch["inputs"]
    reconstruction = binary_cross_entropy_with_logits(logits, image, reduction="none").sum(-1)
    kl = gaussian_kl(mean, logvar, reduction="none").sum(-1)
    return reconstruction + kl, {"reconstruction": reconstruction, "kl": kl}
