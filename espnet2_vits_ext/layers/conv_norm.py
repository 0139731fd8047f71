"""Weight / spectral normalisation and activations shared by the convolutional parts of VITS.

Not a box of the VITS paper itself: the helpers that the decoder (the HiFi-GAN generator
box of Fig. 1a), the discriminators (Fig. 1a, "Discriminator") and the WaveNet of the
posterior encoder and the flow share.

Normalisation is the classic ``torch.nn.utils.weight_norm`` / ``spectral_norm`` (the
same hooks ESPnet uses), so parameter names are ``weight_g``/``weight_v`` and
``weight_orig``/``weight_u``/``weight_v``: ESPnet checkpoints load unchanged.
"""

import warnings
from typing import Any, Dict, Iterable, Optional, Tuple, Type

import torch


def make_activation(name: str, params: Optional[Dict[str, Any]] = None, inplace: bool = False) -> torch.nn.Module:
    """``torch.nn.<name>(**params)``, made in-place where asked and autograd allows it.

    In-place is only a memory saving (the activation overwrites a fresh conv output). It
    is used for ReLU and for LeakyReLU with a positive slope, whose backward can work
    from the output; an explicit ``inplace`` in ``params`` wins.
    """
    cls = getattr(torch.nn, name)
    params = dict(params or {})
    if inplace and "inplace" not in params:
        slope = leaky_slope(name, params)
        if name == "ReLU" or (slope is not None and slope > 0):
            params["inplace"] = True
    return cls(**params)


def leaky_slope(name: str, params: Optional[Dict[str, Any]]) -> Optional[float]:
    """Negative slope when the activation is a plain LeakyReLU (the fast path), else None."""
    if name != "LeakyReLU":
        return None
    params = params or {}
    if set(params) - {"negative_slope", "inplace"}:
        return None
    return float(params.get("negative_slope", 0.01))


def apply_weight_norm(module: torch.nn.Module, types: Tuple[Type[torch.nn.Module], ...]) -> None:
    """Classic weight norm (``dim=0``) on every sub-module of the given types."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # deprecated, but its keys are ESPnet's
        for m in module.modules():
            if isinstance(m, types) and "weight" in m._parameters:
                torch.nn.utils.weight_norm(m)
                # The hook leaves a computed (non-leaf) ``weight`` attribute, which makes
                # deepcopy fail; every direct call of the layer recomputes it anyway.
                m.weight = m.weight.detach()


def apply_spectral_norm(module: torch.nn.Module, types: Tuple[Type[torch.nn.Module], ...]) -> None:
    """Classic spectral norm on every sub-module of the given types."""
    for m in module.modules():
        if isinstance(m, types) and "weight" in m._parameters:
            torch.nn.utils.spectral_norm(m)


def _remove(module: torch.nn.Module, remover) -> None:
    for m in module.modules():
        try:
            remover(m)
        except ValueError:  # this module carries no such norm
            pass


def remove_weight_norm(module: torch.nn.Module) -> None:
    """Fold weight norm back into a plain ``weight`` parameter everywhere (keys change)."""
    _remove(module, torch.nn.utils.remove_weight_norm)


def remove_spectral_norm(module: torch.nn.Module) -> None:
    """Fold spectral norm back into a plain ``weight`` parameter everywhere (keys change)."""
    _remove(module, torch.nn.utils.remove_spectral_norm)


def effective_weight(conv: torch.nn.Module) -> torch.Tensor:
    """The weight a conv layer computes with: ``g * v / ||v||`` under weight norm.

    Same kernel (``torch._weight_norm``) as the weight-norm hook, so the result is
    bit-identical to what the hook would set before a module call.
    """
    params = conv._parameters
    g = params.get("weight_g")
    if g is not None:
        return torch._weight_norm(params["weight_v"], g, 0)
    if "weight" in params:
        return params["weight"]
    return conv.weight  # another hook (e.g. spectral norm) keeps it as an attribute


def has_plain_weights(state_dict: Dict[str, Any], prefix: str) -> bool:
    """Whether a checkpoint holds un-normalised ``weight`` tensors under ``prefix``."""
    return any(k.startswith(prefix) and k.endswith("weight") for k in state_dict)


def drop_keys(state_dict: Dict[str, Any], prefix: str, suffixes: Iterable[str]) -> None:
    """Delete the keys under ``prefix`` that end with one of ``suffixes``."""
    suffixes = tuple(suffixes)
    for k in [k for k in state_dict if k.startswith(prefix) and k.endswith(suffixes)]:
        del state_dict[k]
