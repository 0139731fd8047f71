"""Prepacked oneDNN convolutions for CPU synthesis, shared by the packed decoder and flow.

``F.conv1d`` on a ``(B, C, T)`` tensor pays, at every call, a reorder of the activations into
oneDNN's blocked layout and back and, in bfloat16, a reorder of the weight. The plans here
instead keep signals as ``(B, C, 1, T)`` in channels-last layout (a 1-D conv is a 2-D conv of
height 1: time outermost, channels innermost, which oneDNN's brgemm kernels read and write as
they are) and reorder every weight once, into the layout its kernel wants.

Inference only: the packed weights are copies, outside autograd and the ``state_dict``; their
owners rebuild them when :func:`parameter_key` of the source parameters changes.
"""

import os
from typing import Any, Callable, Iterable, List, NamedTuple, Optional, Tuple

import torch

CHANNELS_LAST = torch.channels_last
PRECISIONS = ("fp32", "bf16")

# oneDNN keeps the kernels it compiled in an LRU cache of 1024 by default. Synthesis builds one
# per convolution shape and grid width (grid_width): on joe-medium, sentences of 150-635 ids
# build 774 in bf16 alone and 2072 with both precisions, and past the capacity every sentence
# rebuilt ~40 evicted kernels (25-40 ms). oneDNN reads the capacity when it first compiles a
# kernel, which in a synthesis process comes after this import; a capacity the user set stays.
PRIMITIVE_CACHE_CAPACITY = 8192
os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", str(PRIMITIVE_CACHE_CAPACITY))


class PackedConv(NamedTuple):
    """One prepacked convolution: weight (oneDNN layout), bias, geometry as 2-D lists."""

    weight: torch.Tensor
    bias: Optional[torch.Tensor]
    padding: List[int]
    stride: List[int]
    dilation: List[int]
    output_padding: Optional[List[int]]  # transposed convolutions only


def bf16_supported() -> bool:
    """Whether this CPU has native bfloat16 dot products for oneDNN (AVX512-BF16 or AMX)."""
    return torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()


def check_precision(precision: str) -> None:
    """Raise ``ValueError`` unless ``precision`` is one of :data:`PRECISIONS` and usable here."""
    if precision not in PRECISIONS:
        raise ValueError(f"inference precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "bf16" and not bf16_supported():
        raise ValueError(
            "inference precision bf16 needs a CPU with native bfloat16 (AVX512-BF16 or AMX) "
            "and PyTorch with oneDNN; this one has neither, use fp32"
        )


def runs_natively(dtype: torch.dtype) -> bool:
    """Whether oneDNN runs ``dtype`` (float32, or bfloat16 on a CPU with bfloat16 units)."""
    return torch.backends.mkldnn.is_available() and (dtype == torch.float32 or bf16_supported())


def plan_dtype(inference_precision: str) -> torch.dtype:
    """bfloat16 when a module's ``inference_precision`` or CPU autocast asks for it."""
    if inference_precision == "bf16":
        return torch.bfloat16
    if torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16:
        return torch.bfloat16
    return torch.float32


def parameter_key(modules: Iterable[torch.nn.Module]) -> Optional[list]:
    """Storage and version of every parameter of ``modules``: changes when any of them is
    loaded, moved or stepped. None for parameters made under ``inference_mode`` (they have
    no version counter), whose derived copies cannot be cached."""
    try:
        return [(p.data_ptr(), p._version) for m in modules for p in m._parameters.values() if p is not None]
    except RuntimeError:
        return None


# Calls in a row at one input width after which PackedPlanCache.plan_for_width packs for it.
CALLS_BEFORE_PACKING = 3


class PackedPlanCache:
    """Mixin for a module that keeps packed weights for CPU synthesis.

    They live in ``_packed_plans`` (dtype -> ((:func:`parameter_key`, width), plan)): never in
    the ``state_dict``, rebuilt when a parameter changes or a call has another input width,
    and left out of copies and pickles (oneDNN's packed tensors have no storage to copy; a
    copy packs its own on first use). Rebuilding for a new width costs one reorder of each
    weight, what one call of the plain path pays; running on weights packed for another
    width can cost that reorder inside every call instead (see :func:`pack_conv1d`).
    """

    _packed_plans: Optional[dict] = None

    def packed_plan(self, dtype: Any, width: int, build: Callable[[], Any]) -> Any:
        """``build()``'s plan for ``dtype`` (or another key) and inputs ``width`` steps long,
        cached while this module's parameters stay and calls keep that width."""
        parameters = parameter_key(self.modules())
        cached = (self._packed_plans or {}).get(dtype)
        key = (parameters, width)
        if parameters is not None and cached is not None and cached[0] == key:
            return cached[1]
        plan = build()
        if parameters is not None:
            self._packed_plans = {**(self._packed_plans or {}), dtype: (key, plan)}
        return plan

    def plan_for_width(self, dtype: torch.dtype, width: int, build: Callable[[Optional[int]], Any]) -> Any:
        """``build(width)``'s plan, packed for ``width``, once :data:`CALLS_BEFORE_PACKING` calls
        in a row have had this width (or while it is cached); before, ``build(None)``'s plan
        on plain weights (see :func:`pack_conv1d`), cached once.

        For a module whose width changes with nearly every sentence: oneDNN reorders a plain
        weight inside each call nearly as fast as it runs on one packed for that width, while
        a pack costs a reorder of every weight up front (joe-medium's flow: plain 7-10% slower
        a call, ~2 ms; packing ~12 ms), which pays only where a width keeps repeating.
        """
        plans = self._packed_plans = self._packed_plans or {}
        previous, calls = plans.get(("width run", dtype), (None, 0))
        calls = calls + 1 if previous == width else 1
        plans[("width run", dtype)] = (width, calls)
        packed = plans.get(dtype)
        if calls >= CALLS_BEFORE_PACKING or (packed is not None and packed[0][1] == width):
            return self.packed_plan(dtype, width, lambda: build(width))
        return self.packed_plan((dtype, "plain"), 0, lambda: build(None))

    def __getstate__(self):
        return {**super().__getstate__(), "_packed_plans": None}


def grid_width(width: int, min_step: int = 1) -> int:
    """``width`` rounded up to a coarse grid: a multiple of the power of two at most
    ``width / 8`` (so at most 1/8 of it is padding), or of ``min_step`` if that is larger.

    oneDNN builds a kernel for every input width a convolution meets (~1 ms each), and
    synthesis meets a new width with every sentence length; inputs zero-padded to this grid
    (their masks or zeroed tails keep the result unchanged) meet at most 8 widths an
    octave, whose kernels stay cached.
    """
    step = max(min_step, 1 << max(0, width.bit_length() - 4))
    return -(-width // step) * step


def pack_conv1d(weight: torch.Tensor, bias: Optional[torch.Tensor], dtype: torch.dtype, padding: int,
                dilation: int, steps: Optional[int], transposed: Optional[Tuple[int, int]] = None) -> PackedConv:
    """Prepack a 1-D conv's ``weight`` (C_out, C_in, K) (transposed: (C_in, C_out, K)).

    ``transposed`` is ``(stride, output_padding)`` of a transposed conv. ``steps`` is the input
    length to pack for: oneDNN picks its kernel, and with it the weight's layout, by the
    input's shape. The packed weight gives the same result at any length, but where the
    kernel for another length wants another layout, every call reorders the weight first
    (measured on joe's flow in bf16: a 192 -> 384, kernel-5 conv packed for 50 frames took
    11 ms at 100 frames against 0.2 ms packed for 100; the layout changes at several widths,
    differently per shape and precision). So callers pack for the widths they run. ``steps``
    None (plain convs only) keeps the weight plain, dense and only cast: oneDNN's reorder from
    there, in every call, is fast (on joe's flow a call costs 7-10% more than on its own pack).
    """
    weight4 = weight.to(dtype).unsqueeze(2)  # (.., .., 1, K)
    bias = None if bias is None else bias.to(dtype)
    pad, dil = [0, padding], [1, dilation]
    if transposed is None:
        if steps is None:
            return PackedConv(weight4.contiguous(), bias, pad, [1, 1], dil, None)
        input_size = [1, weight.size(1), 1, steps]
        packed = torch.ops.mkldnn._reorder_convolution_weight(weight4, pad, [1, 1], dil, 1, input_size)
        return PackedConv(packed, bias, pad, [1, 1], dil, None)
    stride, output_padding = transposed
    input_size = [1, weight.size(0), 1, steps]
    out_pad = [0, output_padding]
    packed = torch.ops.mkldnn._reorder_convolution_transpose_weight(
        weight4, pad, out_pad, [1, stride], dil, 1, input_size
    )
    return PackedConv(packed, bias, pad, [1, stride], dil, out_pad)


def zero_padded(x: torch.Tensor, width: int) -> torch.Tensor:
    """``x`` (B, C, 1, T) followed by zeros up to ``width`` >= T steps: (B, C, 1, width),
    channels-last, of ``x``'s dtype."""
    padded = torch.empty((x.size(0), x.size(1), 1, width), dtype=x.dtype, memory_format=CHANNELS_LAST)
    padded[:, :, :, x.size(3):] = 0
    padded[:, :, :, :x.size(3)] = x
    return padded


def conv(x: torch.Tensor, packed: PackedConv, attr: str = "none", scalars=()) -> torch.Tensor:
    """Convolution of ``x`` (B, C_in, 1, T), channels-last, with an optional fused unary
    post-op (``leaky_relu``, ``tanh``, ``sigmoid``)."""
    return torch.ops.mkldnn._convolution_pointwise(
        x, packed.weight, packed.bias, packed.padding, packed.stride, packed.dilation, 1, attr, list(scalars), ""
    )


def conv_transpose(x: torch.Tensor, packed: PackedConv) -> torch.Tensor:
    """Transposed convolution of ``x`` (B, C_in, 1, T), channels-last."""
    return torch.ops.mkldnn._convolution_transpose_pointwise(
        x, packed.weight, packed.bias, packed.padding, packed.output_padding,
        packed.stride, packed.dilation, 1, "none", [], "",
    )


def conv_add(x: torch.Tensor, residual: torch.Tensor, packed: PackedConv, in_place: bool) -> torch.Tensor:
    """``conv(x) + residual`` in one kernel; ``in_place`` accumulates into ``residual``
    (a oneDNN sum post-op), else a new tensor (which costs a copy of ``residual``)."""
    if in_place:
        return torch.ops.mkldnn._convolution_pointwise_.binary(
            residual, x, packed.weight, packed.bias, packed.padding, packed.stride, packed.dilation, 1,
            "add", None, None, [], None,
        )
    return torch.ops.mkldnn._convolution_pointwise.binary(
        x, residual, packed.weight, packed.bias, packed.padding, packed.stride, packed.dilation, 1,
        "add", None, None, [], None,
    )
