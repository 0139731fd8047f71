"""What the ONNX tracer needs of our generator: plain weights and traceable operations.

Three things in our generator do not trace into ONNX opset 15 as they are: weight norm
computed per call (it would be exported as a dozen nodes per convolution); the
relative-position shift of the Conformer's attention, a strided view of the scores
(``as_strided`` with an offset that depends on the length: ONNX has no such view); and
``Tensor.diff`` and ``torch.searchsorted`` of the spline flows, which have no ONNX symbolic. :func:`plain_generator`
gives a copy with the weights folded; :func:`traceable_operations`, for the time of the
export, swaps the shift for an equal one made of pad, reshape and slice and gives
``aten::diff`` (two slices and a subtraction) and ``aten::searchsorted`` (a count of the
knots at or below each value) symbolics.
"""

import contextlib
import copy
from typing import Iterator

import torch
import torch.nn.functional as F

from torch.onnx import symbolic_helper

from espnet2_vits_ext.layers import relative_attention

ONNX_OPSET = 15  # Piper's exports use opset 15; its runtime (onnxruntime) runs it


def plain_generator(generator: torch.nn.Module) -> torch.nn.Module:
    """A copy of ``generator`` in eval mode with every weight norm folded into its weight."""
    plain = copy.deepcopy(generator).eval()
    for module in plain.modules():
        if torch.nn.utils.parametrize.is_parametrized(module, "weight"):
            torch.nn.utils.parametrize.remove_parametrizations(module, "weight")
        elif hasattr(module, "weight_g"):
            torch.nn.utils.remove_weight_norm(module)
    for parameter in plain.parameters():
        parameter.requires_grad_(False)
    return plain


def padded_rel_shift(scores: torch.Tensor) -> torch.Tensor:
    """The result of ``relative_attention.rel_shift`` by pad, reshape and slice.

    Args:
        scores: Position scores (B, H, T, 2T-1); column k is relative position T-1-k.

    Returns:
        Tensor: (B, H, T, T) with ``out[..., i, j] = scores[..., i, T-1-i+j]``.
    """
    batch, heads, length, width = scores.shape
    # A zero column in front makes each row one longer than the stride between rows that
    # moves query i+1 one position right; read as rows of width 2T-1 after dropping the
    # first T entries, row i starts at column T-1-i.
    padded = F.pad(scores, (1, 0)).reshape(batch, heads, width + 1, length)
    shifted = padded[:, :, 1:].reshape(batch, heads, length, width)
    return shifted[..., :length]


@symbolic_helper.parse_args("v", "i", "i", "v", "v")
def _diff_symbolic(graph, values, order, dim, prepend, append):
    """ONNX nodes of ``values.diff(dim=dim)``: ``values[1:] - values[:-1]`` along ``dim``."""
    if order != 1 or not symbolic_helper._is_none(prepend) or not symbolic_helper._is_none(append):
        raise ValueError("export: only the first difference without prepend/append is exportable")

    def constant(value: int):
        return graph.op("Constant", value_t=torch.tensor([value], dtype=torch.long))

    axes = constant(dim)
    later = graph.op("Slice", values, constant(1), constant(torch.iinfo(torch.long).max), axes)
    earlier = graph.op("Slice", values, constant(0), constant(-1), axes)
    return graph.op("Sub", later, earlier)


@symbolic_helper.parse_args("v", "v", "i", "i", "v", "v")
def _searchsorted_symbolic(graph, sorted_sequence, values, out_int32, right, side, sorter):
    """ONNX nodes of ``searchsorted(sorted_sequence, values, right=True)`` (..., M):
    for sorted rows, the number of entries at or below each value."""
    if out_int32 or not right or not symbolic_helper._is_none(sorter):
        raise ValueError("export: only searchsorted(..., right=True) without sorter is exportable")
    # (..., 1, K + 1) <= (..., M, 1) -> (..., M, K + 1), summed over the knots.
    at_or_below = graph.op(
        "LessOrEqual",
        symbolic_helper._unsqueeze_helper(graph, sorted_sequence, [-2]),
        symbolic_helper._unsqueeze_helper(graph, values, [-1]),
    )
    counts = graph.op("Cast", at_or_below, to_i=7)  # 7: INT64
    last_axis = graph.op("Constant", value_t=torch.tensor([-1], dtype=torch.long))
    return graph.op("ReduceSum", counts, last_axis, keepdims_i=0)


@contextlib.contextmanager
def traceable_operations() -> Iterator[None]:
    """Within the block the relative attention shifts its scores by :func:`padded_rel_shift`
    and ``aten::diff`` and ``aten::searchsorted`` export to ONNX."""
    strided = relative_attention.rel_shift
    relative_attention.rel_shift = padded_rel_shift
    torch.onnx.register_custom_op_symbolic("aten::diff", _diff_symbolic, ONNX_OPSET)
    torch.onnx.register_custom_op_symbolic("aten::searchsorted", _searchsorted_symbolic, ONNX_OPSET)
    try:
        yield
    finally:
        relative_attention.rel_shift = strided
        torch.onnx.unregister_custom_op_symbolic("aten::diff", ONNX_OPSET)
        torch.onnx.unregister_custom_op_symbolic("aten::searchsorted", ONNX_OPSET)
