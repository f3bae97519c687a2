"""jaxdl: deep-learning basics in functional JAX.

The public API is re-exported here flat; submodules hold the details. Names are
imported on first use (PEP 562), so that `jaxdl list`, `jaxdl data info` and other
commands that need no JAX start without importing jax, flax and optax.
"""

from __future__ import annotations

from jaxdl.lazy import lazy_exports

__version__ = "0.1.0"

# name -> the module that defines it
_EXPORTS = {
    "resolve": "jaxdl.config",
    "setting": "jaxdl.config",
    "Dataset": "jaxdl.data",
    "load": "jaxdl.data",
    "JaxdlError": "jaxdl.errors",
    "binary_cross_entropy": "jaxdl.functional",
    "binary_cross_entropy_with_logits": "jaxdl.functional",
    "elu": "jaxdl.functional",
    "gaussian_kl": "jaxdl.functional",
    "glorot_normal": "jaxdl.functional",
    "glorot_uniform": "jaxdl.functional",
    "he_normal": "jaxdl.functional",
    "leaky_relu": "jaxdl.functional",
    "maxout": "jaxdl.functional",
    "mlp_apply": "jaxdl.functional",
    "mlp_init": "jaxdl.functional",
    "mse": "jaxdl.functional",
    "relu": "jaxdl.functional",
    "sigmoid": "jaxdl.functional",
    "softmax_cross_entropy": "jaxdl.functional",
    "softplus": "jaxdl.functional",
    "tanh": "jaxdl.functional",
    "torch_linear_bias": "jaxdl.functional",
    "torch_linear_kernel": "jaxdl.functional",
    "BlobClassifier": "jaxdl.models",
    "CNN": "jaxdl.models",
    "MLP": "jaxdl.models",
    "SmallMLP": "jaxdl.models",
    "VAE": "jaxdl.models",
    "RunDir": "jaxdl.rundir",
    "FitResult": "jaxdl.train",
    "Task": "jaxdl.train",
    "TrainState": "jaxdl.train",
    "classification_loss": "jaxdl.train",
    "compile_ahead": "jaxdl.train",
    "fit": "jaxdl.train",
    "full_batch_scan": "jaxdl.train",
    "init_state": "jaxdl.train",
    "init_replicas": "jaxdl.train",
    "injected": "jaxdl.train",
    "make_train_step": "jaxdl.train",
    "timed_call": "jaxdl.train",
}
__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
