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
    """``x`` with the one-hot label appended, for a conditional VAE (``num_classes > 0``); else ``x``."""
    if not num_classes:
        return x
    return jnp.concatenate([x, jax.nn.one_hot(labels, num_classes, dtype=x.dtype)], axis=-1)


def reparameterize(key: jax.Array, mean: jax.Array, logvar: jax.Array) -> jax.Array:
    """z = mean + sigma * eps with eps ~ N(0, I): a sample whose gradient flows to mean and logvar."""
    eps = jax.random.normal(key, mean.shape, mean.dtype)
    return mean + jnp.exp(0.5 * logvar) * eps


class VAE(nn.Module):
    """Takes images ``(B, 784)`` in [0, 1]; a conditional VAE also takes ``labels`` ``(B,)`` int.

    Returns ``(logits, mean, logvar)``: the reconstruction's Bernoulli logits and q(z|x).
    """

    latents: int = 20
    hidden: int = 400
    features: int = 784
    num_classes: int = 0  # > 0: condition encoder and decoder on the one-hot label

    def setup(self):
        extra = self.num_classes
        self.enc = dense(self.hidden, self.features + extra)
        self.enc_mean = dense(self.latents, self.hidden)
        self.enc_logvar = dense(self.latents, self.hidden)
        self.dec = dense(self.hidden, self.latents + extra)
        self.dec_out = dense(self.features, self.hidden)

    def _with_label(self, x: jax.Array, labels: jax.Array | None) -> jax.Array:
        return with_label(x, labels, self.num_classes)

    def encode(self, image: jax.Array, labels: jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
        h = relu(self.enc(self._with_label(image, labels)))
        return self.enc_mean(h), self.enc_logvar(h)

    def decode(self, z: jax.Array, labels: jax.Array | None = None) -> jax.Array:
        """Bernoulli logits of the 784 pixels; ``sigmoid`` of them is the image."""
        return self.dec_out(relu(self.dec(self._with_label(z, labels))))

    def __call__(self, image: jax.Array, labels: jax.Array | None = None, train: bool = False):
        if self.num_classes and labels is None:
            raise ValueError("a conditional VAE (num_classes > 0) needs labels")
        mean, logvar = self.encode(image, labels)
        z = reparameterize(self.make_rng("sample"), mean, logvar)
        return self.decode(z, labels), mean, logvar


def vae_loss(outputs, batch) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Negative ELBO per image (nats) and its two terms; ``batch["inputs"]`` holds the images in [0, 1]."""
    logits, mean, logvar = outputs
    image = batch["inputs"]
    reconstruction = binary_cross_entropy_with_logits(logits, image, reduction="none").sum(-1)
    kl = gaussian_kl(mean, logvar, reduction="none").sum(-1)
    return reconstruction + kl, {"reconstruction": reconstruction, "kl": kl}
