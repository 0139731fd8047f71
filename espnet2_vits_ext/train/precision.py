"""``--precision fp32|fp16|bf16``: ESPnet's GAN trainer knows only fp16 (``--use_amp``).

* ``fp16``: ESPnet's own path, CUDA autocast with a ``GradScaler`` (needs a GPU);
* ``bf16``: autocast to bfloat16 on CPU or GPU, no scaler (bfloat16 has fp32's range);
  refused on a GPU without native bfloat16;
  :class:`BFloat16Autocast` wraps the model so only its forward runs under autocast;
* ``fp32``: no autocast.
"""

from typing import Optional

import torch

PRECISIONS = ("fp32", "fp16", "bf16")
AUTOCAST_DTYPES = dict(fp32=None, fp16=torch.float16, bf16=torch.bfloat16)


def resolve_precision(precision: Optional[str], use_amp: bool, ngpu: int) -> str:
    """The precision to train in, from ``--precision`` and ESPnet's ``--use_amp``."""
    if precision is None:
        precision = "fp16" if use_amp else "fp32"
    if precision not in PRECISIONS:
        raise ValueError(f"--precision must be one of {PRECISIONS}, got {precision!r}")
    if use_amp and precision != "fp16":
        raise ValueError(
            f"--use_amp true means fp16, but --precision is {precision}: "
            f"drop --use_amp, or pass --precision fp16"
        )
    if precision == "fp16" and ngpu == 0:
        raise ValueError("--precision fp16 needs a GPU (--ngpu 1); on CPU use bf16 or fp32")
    # bf16 autocast on a GPU without bf16 units (before Ampere, e.g. V100) would emulate it slowly.
    if precision == "bf16" and ngpu > 0 and torch.cuda.is_available() and not torch.cuda.is_bf16_supported():
        raise ValueError(
            f"--precision bf16: this GPU ({torch.cuda.get_device_name()}) has no native bfloat16; "
            "use fp16 (--precision fp16) or fp32"
        )
    return precision


class BFloat16Autocast(torch.nn.Module):
    """Runs the wrapped model's forward under bfloat16 autocast.

    The wrapped model is the submodule ``module`` (as with ``DistributedDataParallel``),
    so ``parameters()``, ``train()`` and ``eval()`` reach it unchanged.
    """

    def __init__(self, module: torch.nn.Module):
        super().__init__()
        self.module = module

    def forward(self, *args, **kwargs):
        device_type = next(self.module.parameters()).device.type
        with torch.autocast(device_type=device_type, dtype=torch.bfloat16):
            return self.module(*args, **kwargs)


def wrap_for_precision(model: torch.nn.Module, precision: str) -> torch.nn.Module:
    """The module the training loop should call for ``precision``."""
    return BFloat16Autocast(model) if precision == "bf16" else model
