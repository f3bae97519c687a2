"""jaxdl: deep-learning basics in functional JAX.

The public API is re-exported here flat; submodules hold the details.
"""

from jaxdl.config import resolve, setting
from jaxdl.data import Dataset, load
from jaxdl.errors import JaxdlError
from jaxdl.functional import (
    binary_cross_entropy,
    binary_cross_entropy_with_logits,
    elu,
    gaussian_kl,
    glorot_normal,
    glorot_uniform,
    he_normal,
    leaky_relu,
    maxout,
    mlp_apply,
    mlp_init,
    mse,
    relu,
    sigmoid,
    softmax_cross_entropy,
    softplus,
    tanh,
    torch_linear_bias,
    torch_linear_kernel,
)
from jaxdl.models import CNN, MLP, VAE, BlobClassifier, SmallMLP
from jaxdl.rundir import RunDir
from jaxdl.train import (
    FitResult,
    Task,
    TrainState,
    classification_loss,
    compile_ahead,
    fit,
    full_batch_scan,
    init_state,
    make_train_step,
    timed_call,
)

__version__ = "0.1.0"

__all__ = [
    "CNN",
    "MLP",
    "VAE",
    "BlobClassifier",
    "Dataset",
    "FitResult",
    "SmallMLP",
    "Task",
    "TrainState",
    "classification_loss",
    "fit",
    "init_state",
    "load",
    "make_train_step",
    "JaxdlError",
    "RunDir",
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
    "compile_ahead",
    "elu",
    "full_batch_scan",
    "gaussian_kl",
    "glorot_normal",
    "glorot_uniform",
    "he_normal",
    "leaky_relu",
    "maxout",
    "mlp_apply",
    "mlp_init",
    "mse",
    "relu",
    "resolve",
    "setting",
    "sigmoid",
    "softmax_cross_entropy",
    "softplus",
    "tanh",
    "timed_call",
    "torch_linear_bias",
    "torch_linear_kernel",
]
