"""Flax modules for the tutorials' networks."""

from jaxdl.models.blobs import BlobClassifier, tutorial_log, tutorial_params
from jaxdl.models.classifiers import CNN, MLP, Conv3x3, SmallMLP, count_params
from jaxdl.models.vae import VAE, reparameterize, vae_loss

__all__ = [
    "CNN",
    "MLP",
    "VAE",
    "BlobClassifier",
    "Conv3x3",
    "SmallMLP",
    "count_params",
    "reparameterize",
    "tutorial_log",
    "tutorial_params",
    "vae_loss",
]
