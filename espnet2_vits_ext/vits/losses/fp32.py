"""Full precision for the losses and spectral maths of VITS (no paper box: plumbing).

Mixed-precision training runs the networks in fp16/bf16; the losses must not. Squares of
discriminator scores, feature differences, STFT powers, log-mels and ``exp(-2 logs_p)``
overflow or lose all precision in half types, which turns a loss into inf/NaN. Every loss
module therefore casts its inputs to float32 and runs with autocast off.
"""

from contextlib import contextmanager

import torch


def first_tensor(obj):
    """The first tensor in a (nested) list/tuple, or None."""
    if isinstance(obj, torch.Tensor):
        return obj
    if isinstance(obj, (list, tuple)):
        for item in obj:
            found = first_tensor(item)
            if found is not None:
                return found
    return None


@contextmanager
def autocast_off(*inputs):
    """Disable autocast for the device type of the first tensor among ``inputs``."""
    tensor = first_tensor(list(inputs))
    device_type = tensor.device.type if tensor is not None else "cpu"
    with torch.autocast(device_type=device_type, enabled=False):
        yield


def fp32(x: torch.Tensor) -> torch.Tensor:
    """``x`` as float32 (no copy when it already is)."""
    return x.float()
