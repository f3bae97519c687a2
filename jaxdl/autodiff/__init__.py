"""Autodiff shown and checked: forward vs reverse mode, finite differences, scalar engines."""

from jaxdl.autodiff.gradcheck import GradCheckReport, check_gradients, numerical_gradient
from jaxdl.autodiff.modes import (
    chain_flops,
    chain_forward,
    chain_reverse,
    dense_layers,
    forward_gradient,
    gradient_by_jvp,
    gradient_by_vjp,
    hvp_forward_over_reverse,
    hvp_reverse_over_reverse,
    jacobian_by_columns,
    jacobian_by_rows,
)
from jaxdl.autodiff.scalar import Dual, Scalar, draw_graph, reverse_gradient, to_dot

__all__ = [
    "Dual",
    "GradCheckReport",
    "Scalar",
    "chain_flops",
    "chain_forward",
    "chain_reverse",
    "check_gradients",
    "dense_layers",
    "forward_gradient",
    "gradient_by_jvp",
    "gradient_by_vjp",
    "hvp_forward_over_reverse",
    "hvp_reverse_over_reverse",
    "jacobian_by_columns",
    "jacobian_by_rows",
    "numerical_gradient",
    "reverse_gradient",
    "to_dot",
    "draw_graph",
]
