"""Helpers for parity tests against ESPnet's modules: same keys, weights both ways, same outputs."""

import inspect
from typing import Any, Callable, Dict, Iterable, Sequence

import torch


def signature_defaults(function: Callable) -> Dict[str, Any]:
    """``{argument: default}`` of a function or class constructor (arguments with a default only)."""
    parameters = inspect.signature(function).parameters.values()
    return {p.name: p.default for p in parameters if p.default is not inspect.Parameter.empty}


def state_layout(module: torch.nn.Module):
    """Ordered ``[(key, shape)]`` of a state_dict (the order fixes parameters() order too)."""
    return [(key, tuple(value.shape)) for key, value in module.state_dict().items()]


def randomize_(module: torch.nn.Module, seed: int = 0, scale: float = 0.3) -> torch.nn.Module:
    """Fill every parameter and BatchNorm statistic with random values (deterministically).

    Initial weights hide bugs (the flow's projection starts at zero, BatchNorm at identity),
    so parity is checked on random ones. Weight-norm gains and running variances stay positive.
    """
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in module.named_parameters():
            values = torch.randn(param.shape, generator=generator, dtype=torch.float64) * scale
            if name.endswith("weight_g"):
                values = values.abs() + 0.5
            param.copy_(values)
        for name, buffer in module.named_buffers():
            if name.endswith("running_mean"):
                buffer.copy_(torch.randn(buffer.shape, generator=generator) * 0.1)
            elif name.endswith("running_var"):
                buffer.copy_(torch.rand(buffer.shape, generator=generator) + 0.5)
    return module


def assert_same_layout_and_load_both_ways(espnet: torch.nn.Module, ours: torch.nn.Module, seed: int = 0):
    """Same ordered keys and shapes; random ESPnet weights load into ours and ours back, strictly."""
    assert state_layout(ours) == state_layout(espnet)
    randomize_(espnet, seed)
    ours.load_state_dict(espnet.state_dict(), strict=True)
    randomize_(ours, seed + 1)
    espnet.load_state_dict(ours.state_dict(), strict=True)
    for (key, a), b in zip(espnet.state_dict().items(), ours.state_dict().values()):
        assert torch.equal(a, b), key


def assert_close_all(
    expected: Sequence[torch.Tensor], actual: Sequence[torch.Tensor], atol: float, rtol: float = 0.0
):
    """Pairwise ``assert_close`` with the same shapes and dtypes."""
    assert len(expected) == len(actual)
    for i, (e, a) in enumerate(zip(expected, actual)):
        torch.testing.assert_close(a, e, atol=atol, rtol=rtol, msg=lambda m, i=i: f"output {i}: {m}")


def as_tuple(outputs) -> tuple:
    return tuple(outputs) if isinstance(outputs, (tuple, list)) else (outputs,)


def assert_same_grads(espnet: torch.nn.Module, ours: torch.nn.Module, atol: float, rtol: float = 0.0):
    """Gradients of parameters with the same names agree (call after both backward passes)."""
    ours_params = dict(ours.named_parameters())
    for name, param in espnet.named_parameters():
        mine = ours_params[name]
        assert (param.grad is None) == (mine.grad is None), name
        if param.grad is not None:
            torch.testing.assert_close(mine.grad, param.grad, atol=atol, rtol=rtol, msg=lambda m, n=name: f"{n}: {m}")


def weighted_sum(outputs: Iterable[torch.Tensor], seed: int = 0) -> torch.Tensor:
    """A scalar loss that weighs every output element differently (for gradient checks)."""
    generator = torch.Generator().manual_seed(seed)
    total = 0.0
    for out in outputs:
        weights = torch.randn(out.shape, generator=generator, dtype=out.dtype)
        total = total + (out * weights).sum()
    return total
