"""Monotonic rational-quadratic spline with linear tails (the elementwise map of a spline flow).

VITS paper (Kim et al. 2021), Sec. 2.2.2 and Appendix B.3: the coupling layers of the
stochastic duration predictor are neural spline flows (Durkan et al. 2019, "Neural Spline
Flows", arXiv 1906.04032). Each element ``x`` is mapped by a monotonic spline made of
``K`` rational-quadratic bins on ``[-B, B]`` (``B`` = ``tail_bound``) and by the identity
outside it ("linear tails": the slope at both end knots is fixed to 1, so the map and its
derivative are continuous at the bounds).

The numbers are those of ESPnet's ``espnet2/gan_tts/vits/transform.py`` (itself from
``nflows``); the organisation is not: instead of boolean-mask indexing (a host-device
synchronisation on GPU for every call) the spline is evaluated on the inputs clamped into
``[-B, B]`` and the identity is selected outside with ``torch.where``. No data-dependent
assertion either: the discriminant of the inverse is clamped at 0 (it is >= 0 in exact
arithmetic and only rounding can take it below).
"""

from typing import Tuple

import torch
import torch.nn.functional as F

DEFAULT_MIN_BIN_WIDTH = 1e-3
DEFAULT_MIN_BIN_HEIGHT = 1e-3
DEFAULT_MIN_DERIVATIVE = 1e-3


def _knots(unnormalized_sizes: torch.Tensor, min_size: float, low: float, high: float) -> Tuple[torch.Tensor, torch.Tensor]:
    """Knot positions ``(..., K + 1)`` and bin sizes ``(..., K)`` of a partition of ``[low, high]``.

    Each bin gets at least ``min_size`` of the interval and a softmax share of the rest.
    The end knots are set to exactly ``low`` and ``high`` (the cumulative sum reaches 1 only
    up to rounding), the interior ones are ``low + (high - low) * cumsum(sizes)``.
    """
    num_bins = unnormalized_sizes.shape[-1]
    sizes = min_size + (1 - min_size * num_bins) * F.softmax(unnormalized_sizes, dim=-1)
    interior = (high - low) * torch.cumsum(sizes[..., :-1], dim=-1) + low
    knots = F.pad(F.pad(interior, (1, 0), value=low), (0, 1), value=high)
    return knots, knots.diff(dim=-1)


def _log_slope(theta, delta, slope_left, slope_right, denominator) -> torch.Tensor:
    """``log dy/dx`` of a bin at relative position ``theta`` (Durkan et al. 2019, eq. 5)."""
    one_minus_theta = 1 - theta
    numerator = delta.pow(2) * (
        slope_right * theta.pow(2) + 2 * delta * theta * one_minus_theta + slope_left * one_minus_theta.pow(2)
    )
    return torch.log(numerator) - 2 * torch.log(denominator)


def _forward_in_bin(x, x_k, width, y_k, height, slope_left, slope_right):
    """The spline at ``x`` inside its bin, and ``log dy/dx`` (Durkan et al. 2019, eq. 4)."""
    delta = height / width  # mean slope of the bin
    slope_excess = slope_left + slope_right - 2 * delta
    theta = (x - x_k) / width
    theta_one_minus_theta = theta * (1 - theta)
    denominator = delta + slope_excess * theta_one_minus_theta
    outputs = y_k + height * (delta * theta.pow(2) + slope_left * theta_one_minus_theta) / denominator
    return outputs, _log_slope(theta, delta, slope_left, slope_right, denominator)


def _inverse_in_bin(y, x_k, width, y_k, height, slope_left, slope_right):
    """The inverse spline at ``y`` inside its bin, and ``log dx/dy``.

    theta solves a theta^2 + b theta + c = 0 (Durkan et al. 2019, eqs. 6-8), taken in the
    cancellation-free form 2c / (-b - sqrt(b^2 - 4ac)).
    """
    delta = height / width
    slope_excess = slope_left + slope_right - 2 * delta
    y_rel = y - y_k
    a = y_rel * slope_excess + height * (delta - slope_left)
    b = height * slope_left - y_rel * slope_excess
    c = -delta * y_rel
    discriminant = (b.pow(2) - 4 * a * c).clamp_min(0)
    theta = (2 * c) / (-b - torch.sqrt(discriminant))
    denominator = delta + slope_excess * theta * (1 - theta)
    return theta * width + x_k, -_log_slope(theta, delta, slope_left, slope_right, denominator)


def rational_quadratic_spline(
    inputs: torch.Tensor,
    unnormalized_widths: torch.Tensor,
    unnormalized_heights: torch.Tensor,
    unnormalized_derivatives: torch.Tensor,
    inverse: bool = False,
    tail_bound: float = 1.0,
    min_bin_width: float = DEFAULT_MIN_BIN_WIDTH,
    min_bin_height: float = DEFAULT_MIN_BIN_HEIGHT,
    min_derivative: float = DEFAULT_MIN_DERIVATIVE,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Apply the spline (or its inverse) elementwise, identity outside ``[-tail_bound, tail_bound]``.

    Args:
        inputs (Tensor): Values to transform, any shape ``S``.
        unnormalized_widths (Tensor): Bin-width logits ``(*S, K)``.
        unnormalized_heights (Tensor): Bin-height logits ``(*S, K)``.
        unnormalized_derivatives (Tensor): Pre-softplus slopes at the ``K - 1`` interior
            knots ``(*S, K - 1)``; the two end knots have slope 1 (linear tails).
        inverse (bool): Apply the inverse map.
        tail_bound (float): Half-width ``B`` of the interval the spline covers.
        min_bin_width (float): Smallest bin width, as a fraction of ``2 B``.
        min_bin_height (float): Smallest bin height, as a fraction of ``2 B``.
        min_derivative (float): Smallest slope at an interior knot.

    Returns:
        Tensor: Transformed values, shape ``S``.
        Tensor: ``log |d outputs / d inputs|`` elementwise, shape ``S`` (0 in the tails).

    """
    num_bins = unnormalized_widths.shape[-1]
    if min_bin_width * num_bins > 1.0 or min_bin_height * num_bins > 1.0:
        raise ValueError(f"minimal bin size ({min_bin_width}, {min_bin_height}) too large for {num_bins} bins")

    inside = (inputs >= -tail_bound) & (inputs <= tail_bound)
    # The spline is evaluated everywhere (no gather/scatter of the inside elements); outside
    # the clamped values keep it finite, so torch.where's zero gradient there stays zero.
    x = inputs.clamp(-tail_bound, tail_bound)

    knots_x, widths = _knots(unnormalized_widths, min_bin_width, -tail_bound, tail_bound)
    knots_y, heights = _knots(unnormalized_heights, min_bin_height, -tail_bound, tail_bound)
    slopes = F.pad(min_derivative + F.softplus(unnormalized_derivatives), (1, 1), value=1.0)  # (*S, K + 1)

    # Bin of each element: the last knot <= x (x = the upper bound belongs to the last bin).
    knots = knots_y if inverse else knots_x
    bin_idx = torch.searchsorted(knots, x.unsqueeze(-1), right=True) - 1
    bin_idx = bin_idx.clamp(0, num_bins - 1)  # (*S, 1)

    def at_bin(values: torch.Tensor, offset: int = 0) -> torch.Tensor:
        return values.gather(-1, bin_idx + offset).squeeze(-1)

    x_k, width = at_bin(knots_x), at_bin(widths)
    y_k, height = at_bin(knots_y), at_bin(heights)
    slope_left, slope_right = at_bin(slopes), at_bin(slopes, 1)
    solve = _inverse_in_bin if inverse else _forward_in_bin
    outputs, logabsdet = solve(x, x_k, width, y_k, height, slope_left, slope_right)
    return torch.where(inside, outputs, inputs), logabsdet.masked_fill(~inside, 0.0)

