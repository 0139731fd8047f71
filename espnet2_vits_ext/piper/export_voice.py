"""A packed ``fast_vits`` model (the zip of stage 7) as a Piper voice: ``<name>.onnx`` + ``.onnx.json``.

The zip is unpacked into a temporary directory and loaded by ESPnet's ``Text2Speech`` as a
user loads it. Its generator, weight norm folded, is wrapped in Piper's calling convention
(:mod:`.export_graph`) with Piper's ids mapped to our tokens (:mod:`.export_symbols`) and
traced by ``torch.onnx.export`` (TorchScript exporter, opset 15: the dynamo exporter does not
handle VITS's data-dependent lengths). Before anything is kept, onnxruntime runs the graph
on ids of another length than the traced ones and must give the torch graph's waveform.
Both files are written under temporary names and renamed at the end (the ``.onnx.json``
first: Piper finds a voice by its ``.onnx``).
"""

import contextlib
import json
import os
import tempfile
import warnings
import zipfile
from pathlib import Path
from typing import Dict, Iterator, Optional, Tuple

import numpy as np
import torch
import yaml

from espnet2_vits_ext.piper.export_graph import PiperSynthesisGraph
from espnet2_vits_ext.piper.export_symbols import PiperSymbols, piper_ids, piper_symbols
from espnet2_vits_ext.piper.export_tracing import ONNX_OPSET, plain_generator, traceable_operations
from espnet2_vits_ext.piper.export_voice_config import PiperExportError, voice_config
from espnet2_vits_ext.recipe.kaldi_table import KaldiTableError, read_table_entries

# Largest difference onnxruntime's waveform may have from torch's on the check: both run the
# same float32 graph, so only summation order differs (~1e-6 here); a graph with a length
# frozen at trace time or a wrong table is off by far more, or by its length.
CHECK_TOLERANCE = 1e-3


def _load(zip_path: Path, unpacked: str):
    """``Text2Speech`` and the training config of a packed ``fast_vits`` zip."""
    if not zip_path.is_file():
        raise PiperExportError(f"{zip_path}: no such file (expected the .zip of espnet2.bin.pack)")
    if not zipfile.is_zipfile(zip_path):
        raise PiperExportError(f"{zip_path}: not a zip file (expected the .zip of espnet2.bin.pack)")
    with zipfile.ZipFile(zip_path) as archive:
        if not any(Path(member).name == "meta.yaml" for member in archive.namelist()):
            raise PiperExportError(f"{zip_path}: not a packed ESPnet model (no meta.yaml: not made by espnet2.bin.pack)")
    from espnet_model_zoo.downloader import ModelDownloader

    from espnet2.bin.tts_inference import Text2Speech

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the zoo warns that it expands a local file
        try:
            files = ModelDownloader(cachedir=unpacked).unpack_local_file(str(zip_path))
        except (KeyError, RuntimeError, yaml.YAMLError) as error:  # OSError: a write failure, passed on
            raise PiperExportError(f"{zip_path}: not a packed ESPnet model ({error})") from error
    if "train_config" not in files or "model_file" not in files:
        raise PiperExportError(f"{zip_path}: not a packed ESPnet TTS model (no train_config/model_file)")
    with open(files["train_config"], encoding="utf-8") as config_file:
        config = yaml.safe_load(config_file)
    if config.get("tts") != "fast_vits":
        raise PiperExportError(f"{zip_path}: the model is tts: {config.get('tts')}, only fast_vits exports")
    text2speech = Text2Speech(train_config=files["train_config"], model_file=files["model_file"], device="cpu")
    return text2speech, config


def _packed_spk2sid(zip_path: Path) -> Optional[Dict[str, int]]:
    """Speaker names -> ids of a ``spk2sid`` packed in the zip (Kaldi table), if there is one."""
    with zipfile.ZipFile(zip_path) as archive:
        members = [member for member in archive.namelist() if Path(member).name == "spk2sid"]
        if not members:
            return None
        data = archive.read(members[0])
    where = f"{zip_path}:{members[0]}"
    try:
        entries = read_table_entries(where, data=data)
    except KaldiTableError as error:
        raise PiperExportError(str(error)) from error
    table = {}
    for speaker, entry in entries.items():
        if not entry.value.isdigit():
            raise PiperExportError(f"{where}:{entry.line}: expected 'speaker id', got {speaker} {entry.value!r}")
        table[speaker] = int(entry.value)
    return table


def _packed_voice_config(zip_path: Path) -> Optional[Dict]:
    """The ``.onnx.json`` packed in the zip of an imported Piper voice, if there is one."""
    with zipfile.ZipFile(zip_path) as archive:
        members = [member for member in archive.namelist() if member.endswith(".onnx.json")]
        if not members:
            return None
        try:
            return json.loads(archive.read(members[0]).decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise PiperExportError(f"{zip_path}:{members[0]}: not a Piper voice config ({error})") from error


def _check_conditioning(generator: torch.nn.Module, zip_path: Path) -> None:
    """Piper passes at most a speaker id: refuse models that need more."""
    if generator.spk_embed_dim is not None:
        raise PiperExportError(f"{zip_path}: the model needs speaker embeddings, which Piper cannot pass")
    if generator.langs is not None:
        raise PiperExportError(f"{zip_path}: the model needs language ids, which Piper cannot pass")


def _graph_inputs(symbols: PiperSymbols, phonemes, speaker: bool, scales=(0.0, 1.0, 0.0)):
    """Piper's inputs for ``phonemes``, as torch tensors, in the graph's argument order."""
    ids = torch.tensor([piper_ids(phonemes, symbols)], dtype=torch.long)
    inputs = [ids, torch.tensor([ids.size(1)]), torch.tensor(scales, dtype=torch.float32)]
    return inputs + ([torch.tensor([0])] if speaker else [])


def _input_names(speaker: bool):
    return ["input", "input_lengths", "scales"] + (["sid"] if speaker else [])


def _export_onnx(graph: PiperSynthesisGraph, symbols: PiperSymbols, phonemes, path: Path) -> None:
    """Trace ``graph`` on Piper ids of ``phonemes`` into ``path`` (opset 15, dynamic lengths)."""
    speaker = graph.multi_speaker
    dynamic_axes = {"input": {0: "batch", 1: "phonemes"}, "input_lengths": {0: "batch"},
                    "output": {0: "batch", 2: "time"}}
    # With gradients enabled (no parameter needs them) the decoder takes its plain modules,
    # not the oneDNN plan it runs under no_grad, whose prepacked kernels have no ONNX form.
    with traceable_operations(), warnings.catch_warnings(), torch.enable_grad():
        warnings.simplefilter("ignore")  # tracer warnings on Python ints of traced sizes
        torch.onnx.export(
            graph, tuple(_graph_inputs(symbols, phonemes, speaker, (0.667, 1.0, 0.8))), str(path),
            input_names=_input_names(speaker), output_names=["output"], dynamic_axes=dynamic_axes,
            opset_version=ONNX_OPSET, dynamo=False,
        )


def _check_onnx(graph: PiperSynthesisGraph, symbols: PiperSymbols, phonemes, path: Path, zip_path: Path) -> None:
    """onnxruntime on ``path`` must take Piper's inputs and give the torch graph's waveform."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [node.name for node in session.get_inputs()]
    expected = _input_names(graph.multi_speaker)
    if names != expected:
        raise PiperExportError(f"{zip_path}: the exported graph takes {names}, Piper passes {expected}")
    inputs = _graph_inputs(symbols, phonemes, graph.multi_speaker)
    with torch.no_grad():
        reference = graph(*inputs).numpy()
    output = session.run(["output"], {name: value.numpy() for name, value in zip(names, inputs)})[0]
    if output.shape != reference.shape:
        raise PiperExportError(f"{zip_path}: onnxruntime gives {output.shape} samples, torch {reference.shape}")
    difference = float(np.max(np.abs(output - reference)))
    if difference > CHECK_TOLERANCE:
        raise PiperExportError(f"{zip_path}: onnxruntime differs from torch by {difference:.3g} (> {CHECK_TOLERANCE})")


@contextlib.contextmanager
def _naming_write_errors(path: Path) -> Iterator[None]:
    """A write failure in the block (full disk, file size limit) is reported as one of ``path``
    (the file the user asked for, not its temporary, nor none as torch's writer gives)."""
    try:
        yield
    except OSError as error:
        raise OSError(error.errno, error.strerror or str(error), str(path)) from error


def _probe_phonemes(symbols: PiperSymbols, count: int):
    """``count`` phonemes of the token list, cycled: an utterance to trace or check on."""
    own = [symbol for symbol in symbols.phoneme_id_map if symbol not in ("_", "^", "$")]
    return [own[index % len(own)] for index in range(count)]


def export_voice(
    zip_path: Path, out_dir: Path, name: Optional[str] = None, espeak_voice: Optional[str] = None
) -> Tuple[Path, Path]:
    """Write ``out_dir/<name>.onnx`` and ``<name>.onnx.json``, a Piper voice of ``zip_path``.

    Args:
        zip_path: A packed ``fast_vits`` model (``espnet2.bin.pack tts``).
        out_dir: Folder of the voice (made if missing).
        name: File name of the voice; the zip's name without ``.zip`` by default.
        espeak_voice: espeak-ng voice Piper phonemizes with; by default the one of the
            model's g2p (see :mod:`.export_voice_config`).

    Returns:
        Tuple[Path, Path]: the ``.onnx`` and the ``.onnx.json``.

    Raises:
        PiperExportError: Not a packed fast_vits model, a model Piper cannot drive, or an
            export onnxruntime does not reproduce; nothing is left in ``out_dir``.
    """
    zip_path, out_dir = Path(zip_path), Path(out_dir)
    name = name or zip_path.name.removesuffix(".zip")
    with tempfile.TemporaryDirectory(prefix="export_piper_") as unpacked:
        text2speech, config = _load(zip_path, unpacked)
        generator = text2speech.model.tts.generator
        _check_conditioning(generator, zip_path)
        symbols = piper_symbols(config["token_list"])
        settings = voice_config(config, symbols, text2speech.fs, generator.spks, zip_path, espeak_voice,
                                _packed_spk2sid(zip_path), _packed_voice_config(zip_path))
        graph = PiperSynthesisGraph(plain_generator(generator), symbols.token_table).eval()
    onnx_path, json_path = out_dir / f"{name}.onnx", out_dir / f"{name}.onnx.json"
    out_dir.mkdir(parents=True, exist_ok=True)
    onnx_temporary = out_dir / f".{name}.onnx.tmp.{os.getpid()}"
    json_temporary = out_dir / f".{name}.onnx.json.tmp.{os.getpid()}"
    try:
        with _naming_write_errors(onnx_path):
            _export_onnx(graph, symbols, _probe_phonemes(symbols, 9), onnx_temporary)
        _check_onnx(graph, symbols, _probe_phonemes(symbols, 23), onnx_temporary, zip_path)
        with _naming_write_errors(json_path):
            json_temporary.write_text(json.dumps(settings, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
            json_temporary.replace(json_path)
        onnx_temporary.replace(onnx_path)
    finally:
        onnx_temporary.unlink(missing_ok=True)
        json_temporary.unlink(missing_ok=True)
    return onnx_path, json_path
