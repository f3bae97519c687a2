"""Pure functions over parameter pytrees, no Flax: initialisers, activations, losses, an MLP."""

from jaxdl.functional.activations import (
    elu,
    leaky_relu,
    maxout,
    relu,
    sigmoid,
    softplus,
    tanh,
)
from jaxdl.functional.init import (
    KERNEL_INITS,
    glorot_normal,
    glorot_uniform,
    he_normal,
    kernel_init,
    torch_linear_bias,
    torch_linear_kernel,
    zeros,
)
from jaxdl.functional.losses import (
    binary_cross_entropy,
    binary_cross_entropy_with_logits,
    gaussian_kl,
    mse,
    softmax_cross_entropy,
)
from jaxdl.functional.mlp import mlp_apply, mlp_init

__all__ = [
    "KERNEL_INITS",
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
    "elu",
    "gaussian_kl",
    "glorot_normal",
    "glorot_uniform",
    "he_normal",
    "kernel_init",
    "leaky_relu",
    "maxout",
    "mlp_apply",
    "mlp_init",
    "mse",
    "relu",
    "sigmoid",
    "softmax_cross_entropy",
    "softplus",
    "tanh",
    "torch_linear_bias",
    "torch_linear_kernel",
    "zeros",
]
