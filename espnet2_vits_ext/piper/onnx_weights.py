"""The trained weights inside a Piper voice's ONNX graph, under Piper's module names.

``torch.onnx.export`` keeps most parameters as initializers named after their module
(``enc_p.encoder.attn_layers.0.emb_rel_k``). Some come out anonymous: convolutions whose
weight norm was folded at export are ``onnx::Conv_<n>``, the text embedding may be named
after another input (``sid``), and constant folding turns the duration predictor's first
affine flow's ``logs`` into ``-logs`` (``onnx::Exp_<n>``, the input of its ``Exp`` node)
or into ``exp(-logs)`` (``/dp/flows.0/Exp_output_0``): the reverse flow multiplies by it. The consuming node's
name (``/flow/flows.6/enc/in_layers.0/Conv``) gives their module path back. The other
initializers are graph constants (shapes, indices, scalars such as ``sqrt(192)``):
integer tensors and float scalars.
"""

import re
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np

from espnet2_vits_ext.piper.errors import PiperVoiceError

# Which input of an operator is which parameter of its module.
_PARAMETER_SLOTS = {("Conv", 1): "weight", ("Conv", 2): "bias", ("ConvTranspose", 1): "weight",
                    ("ConvTranspose", 2): "bias", ("Gather", 0): "weight"}
_MODULE_PATH = re.compile(r"^[A-Za-z_][\w]*(\.[\w]+)+$")
_FOLDED_AFFINE = re.compile(r"^/(?P<module>.+)/Exp_output_0$")


def load_onnx(path: Path):
    """Read an ONNX model, or stop with one line naming the file.

    Raises:
        PiperVoiceError: the file is missing or is not an ONNX model.
    """
    import onnx
    from google.protobuf.message import DecodeError

    if not path.is_file():
        raise PiperVoiceError(f"{path}: no such file")
    try:
        model = onnx.load(str(path))
    except (DecodeError, ValueError, RuntimeError, OSError) as error:
        raise PiperVoiceError(f"{path}: not an ONNX model ({type(error).__name__}: {error})") from None
    if not model.graph.initializer:
        raise PiperVoiceError(f"{path}: not an ONNX model with weights (no initializers)")
    return model


def _is_graph_constant(array: np.ndarray) -> bool:
    return not np.issubdtype(array.dtype, np.floating) or array.size <= 1


def _module_of(node_name: str) -> str:
    """``/flow/flows.6/enc/in_layers.0/Conv`` -> ``flow.flows.6.enc.in_layers.0``."""
    return ".".join(node_name.strip("/").split("/")[:-1])


def piper_parameters(model, path: Path) -> Dict[str, np.ndarray]:
    """The voice's parameters keyed by Piper's (PyTorch) names.

    Args:
        model: The loaded ``onnx.ModelProto``.
        path: Its file, for error messages.

    Returns:
        Dict[str, ndarray]: e.g. ``flow.flows.0.enc.in_layers.0.weight`` -> (384, 192, 5);
            ``dp.flows.0.logs`` recovered from its folded exponential.

    Raises:
        PiperVoiceError: naming the float tensors whose module path cannot be found.
    """
    from onnx import numpy_helper

    consumers: Dict[str, List[Tuple[str, str, int]]] = {}
    for node in model.graph.node:
        for slot, name in enumerate(node.input):
            consumers.setdefault(name, []).append((node.name, node.op_type, slot))
    parameters: Dict[str, np.ndarray] = {}
    orphans = []
    for tensor in model.graph.initializer:
        array = numpy_helper.to_array(tensor)
        if _is_graph_constant(array):
            continue
        name = _piper_name(tensor.name, consumers.get(tensor.name, []))
        if name is None:
            orphans.append(f"{tensor.name} {tuple(array.shape)}")
            continue
        if name.endswith(".logs") and not _MODULE_PATH.match(tensor.name):
            array = -np.log(array) if tensor.name.endswith("Exp_output_0") else -array
        parameters[name] = array
    if orphans:
        raise PiperVoiceError(f"{path}: weights with no known module path: {', '.join(orphans)}")
    return parameters


def _piper_name(initializer: str, uses: List[Tuple[str, str, int]]):
    """Piper's parameter name of an initializer, or None when it cannot be told."""
    if _MODULE_PATH.match(initializer):
        return initializer
    folded = _FOLDED_AFFINE.match(initializer)
    if folded and all(op == "Mul" for _, op, _ in uses):
        return folded.group("module").replace("/", ".") + ".logs"
    if len(uses) == 1:
        node_name, op_type, slot = uses[0]
        if op_type == "Exp" and node_name.endswith("/Exp"):
            return f"{_module_of(node_name)}.logs"
        parameter = _PARAMETER_SLOTS.get((op_type, slot))
        if parameter and node_name.startswith("/"):
            return f"{_module_of(node_name)}.{parameter}"
    return None


def convolution_attributes(model) -> Dict[str, Dict[str, List[int]]]:
    """Strides and dilations of every (transposed) convolution, by Piper module path.

    Args:
        model: The loaded ``onnx.ModelProto``.

    Returns:
        Dict[str, Dict[str, List[int]]]: e.g. ``dec.resblocks.1.convs.1`` ->
            ``{"dilations": [6], "strides": [1]}`` (shapes alone do not hold these).
    """
    from onnx import helper

    attributes = {}
    for node in model.graph.node:
        if node.op_type in ("Conv", "ConvTranspose") and node.name.startswith("/"):
            values = {a.name: list(helper.get_attribute_value(a)) for a in node.attribute
                      if a.name in ("dilations", "strides")}
            attributes[_module_of(node.name)] = values
    return attributes
