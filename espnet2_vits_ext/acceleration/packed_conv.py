"""Prepacked oneDNN convolutions for CPU synthesis, shared by the packed decoder and flow.

``F.conv1d`` on a ``(B, C, T)`` tensor pays, at every call, a reorder of the activations into
oneDNN's blocked layout and back and, in bfloat16, a reorder of the weight. The plans here
instead keep signals as ``(B, C, 1, T)`` in channels-last layout (a 1-D conv is a 2-D conv of
height 1: time outermost, channels innermost, which oneDNN's brgemm kernels read and write as
they are) and reorder every weight once, into the layout its kernel wants.

Inference only: the packed weights are copies, outside autograd and the ``state_dict``; their
owners rebuild them when :func:`parameter_key` of the source parameters changes.
"""

import ctypes
import os
from typing import Any, Callable, Iterable, Iterator, List, NamedTuple, Optional, Tuple

import numpy as np
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


# Plans with distinct weight layouts kept for one module and dtype. oneDNN changes a conv's
# weight layout at a few input widths only (joe-medium's flow over 64-3328 frames: 4 plans in
# fp32, 5 in bf16), so this bound is reached only where a pack's bytes cannot be read (each
# width then has a plan of its own).
MAX_LAYOUTS = 8


def _packed_weights(plan: Any) -> List[torch.Tensor]:
    """The oneDNN-packed tensors in ``plan`` (PackedConv's in lists and tuples), in order."""
    if isinstance(plan, torch.Tensor):
        return [plan] if plan.is_mkldnn else []
    if isinstance(plan, (list, tuple)):
        return [weight for part in plan for weight in _packed_weights(part)]
    return []


def _with_weights(plan: Any, weights: Iterator[torch.Tensor]) -> Any:
    """``plan`` with its packed tensors replaced, in order, by ``weights``."""
    if isinstance(plan, torch.Tensor):
        return next(weights) if plan.is_mkldnn else plan
    if isinstance(plan, tuple) and hasattr(plan, "_fields"):  # a NamedTuple
        return type(plan)(*[_with_weights(part, weights) for part in plan])
    if isinstance(plan, (list, tuple)):
        return type(plan)([_with_weights(part, weights) for part in plan])
    return plan


# Bytes of a packed weight compared to tell its layout from another's: evenly spaced samples
# (a weight in another layout differs almost everywhere). Comparing whole weights cost 3-5 ms
# a new width on joe-medium's flow, a third of packing it.
LAYOUT_SAMPLES = 4096


def _raw_bytes(weight: torch.Tensor) -> Optional[np.ndarray]:
    """A view (no copy) of a packed tensor's memory as uint8; None if oneDNN's is unreadable."""
    try:
        address, size = torch.ops.mkldnn.data_ptr(weight), torch.ops.mkldnn._nbytes(weight)
    except (AttributeError, RuntimeError):
        return None
    return np.frombuffer((ctypes.c_uint8 * size).from_address(address), dtype=np.uint8)


def layout_fingerprint(weight: torch.Tensor) -> Optional[bytes]:
    """Size and :data:`LAYOUT_SAMPLES` evenly spaced bytes of a packed weight: the same for two
    packs of one weight in one layout, different (but for a chance that the samples miss every
    difference) in two layouts; None if its memory cannot be read. A wrong match would cost
    speed only: the weight keeps its own layout descriptor, from which oneDNN reorders it if a
    kernel wants another."""
    raw = _raw_bytes(weight)
    if raw is None:
        return None
    return raw.size.to_bytes(8, "little") + raw[:: max(1, raw.size // LAYOUT_SAMPLES)].tobytes()


class PlansByLayout:
    """Plans of the same weights for different input widths: plain weights for a width met
    once, then weights packed for it, every packed weight shared with the plans whose pack
    of it came out the same. For each width met twice the plan it runs on, and at most
    :data:`MAX_LAYOUTS` distinct packed plans (the oldest dropped first)."""

    def __init__(self):
        self.by_width: dict = {}
        self.plain: Any = None
        self._met_once: set = set()
        self._plans: dict = {}  # ids of a plan's packed weights -> the plan
        self._weights: List[dict] = []  # per position in a plan: layout_fingerprint -> its pack

    def plan(self, width: int, build: Callable[[Optional[int]], Any]) -> Any:
        """The plan for inputs ``width`` steps long: ``build(None)``'s (plain weights) the first
        time, then ``build(width)``'s, each packed weight in it replaced by a kept one of the
        same :func:`layout_fingerprint` (see :meth:`PackedPlanCache.plan_for_width`)."""
        plan = self.by_width.get(width)
        if plan is not None:
            return plan
        if width not in self._met_once:
            self._met_once.add(width)
            if self.plain is None:
                self.plain = build(None)
            return self.plain
        built = build(width)
        shared = [self._kept(position, weight) for position, weight in enumerate(_packed_weights(built))]
        key = tuple(id(weight) for weight in shared)
        plan = self._plans.get(key)
        if plan is None:
            plan = self._plans[key] = _with_weights(built, iter(shared))
            if len(self._plans) > MAX_LAYOUTS:
                self._drop(next(iter(self._plans)))
        self.by_width[width] = plan
        return plan

    def _kept(self, position: int, weight: torch.Tensor) -> torch.Tensor:
        while len(self._weights) <= position:
            self._weights.append({})
        fingerprint = layout_fingerprint(weight)
        if fingerprint is None:  # unreadable: a pack of its own
            return weight
        return self._weights[position].setdefault(fingerprint, weight)

    def _drop(self, key: tuple) -> None:
        dropped = self._plans.pop(key)
        self.by_width = {width: plan for width, plan in self.by_width.items() if plan is not dropped}
        live = {weight_id for kept in self._plans for weight_id in kept}
        self._weights = [{fingerprint: weight for fingerprint, weight in packs.items() if id(weight) in live}
                         for packs in self._weights]


class PackedPlanCache:
    """Mixin for a module that keeps packed weights for CPU synthesis.

    They live in ``_packed_plans`` (dtype -> (:func:`parameter_key`, :class:`PlansByLayout`)):
    never in the ``state_dict``, rebuilt when a parameter changes, and left out of copies and
    pickles (oneDNN's packed tensors have no storage to copy; a copy packs its own on first use).
    """

    _packed_plans: Optional[dict] = None

    def plan_for_width(self, dtype: torch.dtype, width: int, build: Callable[[Optional[int]], Any]) -> Any:
        """The plan for inputs ``width`` steps long, cached while this module's parameters
        stay: ``build(None)``'s on plain weights the first time a width comes, after that
        ``build(width)``'s, packed for it.

        oneDNN lays a packed weight out for the input width it is packed for, and a call at a
        width whose kernel wants another layout reorders the weight inside the call, as it
        does plain weights in every call: on joe-medium's flow, with its kernels built, a call
        on plain weights took 3-5 ms longer than on weights packed for its width, and packing
        a width cost 6-8 ms (fp32) or 10-17 ms (bf16) more than one plain call. So a width met
        once stays plain, and is packed when it comes again. The layout changes at a few
        widths only (a 192 -> 192 kernel-5 conv in bf16: one for 96-768 steps, others below
        and above), so each weight packed for a width is compared with those kept and replaced
        by one laid out alike (a :class:`PlansByLayout`): a module keeps a few packs of each
        weight however many sentence lengths it meets (joe's flow over 64-3328 frames: 54 MiB
        in fp32, 38 MiB in bf16, against 27 / 14 MiB for one plan).
        """
        parameters = parameter_key(self.modules())
        if parameters is None:
            return build(width)
        plans = self._packed_plans = self._packed_plans or {}
        kept_for, by_layout = plans.get(dtype, (None, None))
        if kept_for != parameters:
            by_layout = PlansByLayout()
            plans[dtype] = (parameters, by_layout)
        return by_layout.plan(width, build)

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
    differently per shape and precision). So callers pack for the widths they run, and share
    a pack between widths only where it comes out the same (:meth:`PackedPlanCache.plan_for_width`).
    ``steps`` None (plain convs only) keeps the weight plain, dense and only cast: oneDNN
    reorders it in every call.
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
