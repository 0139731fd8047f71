"""Start a training from a pretrained voice (``--init_model PATH``): fine-tuning.

ESPnet's ``--init_param`` loads a checkpoint strictly by shape and knows nothing of token
lists. Here a freshly built model takes from the source every tensor whose name and shape
match its own; the rest keep their fresh initialisation and are listed by name in the log:

* tensors the source lacks (a speaker table or a speaker-conditioning layer added by a
  ``spks`` / ``global_channels`` the source had not), or whose shape differs (another
  speaker count, another width);
* the parts an imported Piper voice holds untrained (its config's ``piper_import.untrained``:
  the posterior encoder, the duration predictor's posterior, the discriminator);
* the token embedding, when the token lists differ, is remapped row by row by symbol:
  a symbol of ours that the source has gets the source's row, a new symbol a fresh one.

Buffers computed from the config (the mel loss's filterbank) are always this run's own.

Sources (:func:`read_source`): a checkpoint ``.pth`` of ESPnet's VITS or ``fast_vits``
(the trainer's ``checkpoint.pth`` with its ``model`` entry, or a plain model
``state_dict`` such as ``exp/<name>/latest.pth`` or ``N<criterion>.pth``), or a zip
packed by ``espnet2.bin.pack tts`` (stage 7, or ``import_piper``). ESPnet's VITS and
``fast_vits`` name their tensors alike (``tts.generator.*``, ``tts.discriminator.*``); a
bare VITS ``state_dict`` (``generator.*``) is read as ``tts.*``. The source's token list
comes from the zip's training config, or for a checkpoint from the ``config.yaml`` of
its experiment directory: beside the file, or one folder up (``checkpoints/``).
"""

import argparse
import io
import logging
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import yaml

from espnet2_vits_ext.train.errors import TrainingStopped

TOKEN_EMBEDDING = "tts.generator.text_encoder.emb.weight"  # (vocabs, hidden_channels)
CONFIG_BUFFERS = ("tts.mel_loss.",)  # computed from the config, never loaded
CONFIG_NAME = "config.yaml"
_TAG = "--init_model"


class InitModelError(TrainingStopped):
    """``--init_model`` names something that is no model we can start from."""

    exit_code = 2  # a bad command line, as argparse exits


@dataclass
class Source:
    """A pretrained model as read from its file."""

    path: Path
    kind: str  # what it is, for the log
    state: Dict[str, torch.Tensor]  # our names (tts.generator.*, tts.discriminator.*)
    token_list: Optional[List[str]]
    token_list_origin: str  # the file it came from, or where it was looked for
    untrained: Tuple[str, ...] = ()  # name prefixes of parts it holds untrained


@dataclass
class InitReport:
    """What :func:`init_model` did to each tensor of the model, by name."""

    loaded: List[str] = field(default_factory=list)
    not_in_source: List[str] = field(default_factory=list)
    shape_differs: List[Tuple[str, tuple, tuple]] = field(default_factory=list)
    untrained_in_source: List[str] = field(default_factory=list)
    from_config: List[str] = field(default_factory=list)
    unused: List[str] = field(default_factory=list)  # source tensors with no place in ours
    remapped: Dict[str, int] = field(default_factory=dict)  # our symbol -> source row
    new_tokens: List[str] = field(default_factory=list)
    dropped_tokens: List[str] = field(default_factory=list)

    @property
    def fresh(self) -> List[str]:
        """Every tensor left as built (the remapped embedding's new rows aside)."""
        return (self.not_in_source + [name for name, _, _ in self.shape_differs]
                + self.untrained_in_source)


# -- reading the source ----------------------------------------------------------------
def read_source(path) -> Source:
    """Read a checkpoint or a packed zip; one line naming ``path`` if it is neither."""
    path = Path(path)
    if not path.is_file():
        raise InitModelError(f"{_TAG} {path}: no such file")
    if zipfile.is_zipfile(path) and not _is_torch_file(path):
        return _read_packed(path)
    state = _model_state(_torch_load(path, path.read_bytes()), path)
    tokens, origin = _token_list_beside(path)
    return Source(path, "checkpoint", state, tokens, origin)


def _is_torch_file(path: Path) -> bool:
    """``torch.save`` writes a zip too: one with a ``data.pkl`` in its one folder."""
    with zipfile.ZipFile(path) as archive:
        return any(Path(name).name == "data.pkl" for name in archive.namelist())


def _torch_load(path: Path, data: bytes):
    try:
        # weights_only=False: ESPnet's checkpoint.pth holds its reporter's statistics
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=False)
    except Exception as error:  # noqa: BLE001 (pickle raises many kinds on a non-model)
        raise InitModelError(
            f"{_TAG} {path}: not a model checkpoint (torch.load: {type(error).__name__}: "
            f"{str(error).splitlines()[0] if str(error) else ''})"
        ) from None


def _model_state(loaded, path: Path) -> Dict[str, torch.Tensor]:
    """The model's tensors under our names, from a trainer checkpoint or a state_dict."""
    if isinstance(loaded, dict) and isinstance(loaded.get("model"), dict):
        loaded = loaded["model"]  # the trainer's checkpoint.pth
    items = loaded.items() if isinstance(loaded, dict) else ()
    tensors = {key: value for key, value in items
               if isinstance(key, str) and isinstance(value, torch.Tensor)}
    if not tensors:
        raise InitModelError(f"{_TAG} {path}: holds no model tensors")
    if not any(key.startswith("tts.") for key in tensors):
        # ESPnet's VITS (or ours) saved without the task's wrapper
        tensors = {f"tts.{key}": value for key, value in tensors.items()}
    return tensors


def _token_list_beside(path: Path) -> Tuple[Optional[List[str]], str]:
    """The token list of the experiment directory's config.yaml, and where it was found."""
    candidates = [path.parent / CONFIG_NAME, path.parent.parent / CONFIG_NAME]
    for candidate in candidates:
        if candidate.is_file():
            config = yaml.safe_load(candidate.read_text(encoding="utf-8")) or {}
            tokens = _tokens_of(config)
            if tokens is not None:
                return tokens, str(candidate)
    return None, "none found (looked for " + ", ".join(map(str, candidates)) + ")"


def _tokens_of(config) -> Optional[List[str]]:
    """``token_list`` of a training config: a list, or the path of a token file."""
    tokens = config.get("token_list") if isinstance(config, dict) else None
    if isinstance(tokens, str) and Path(tokens).is_file():
        return [line.rstrip("\n") for line in Path(tokens).read_text(encoding="utf-8").splitlines()]
    if isinstance(tokens, list):
        return [str(token) for token in tokens]
    return None


def _read_packed(path: Path) -> Source:
    """A zip of ``espnet2.bin.pack tts``: meta.yaml names the model file and its config."""
    with zipfile.ZipFile(path) as archive:
        names = set(archive.namelist())
        meta_name = next((name for name in names if Path(name).name == "meta.yaml"), None)
        meta = yaml.safe_load(archive.read(meta_name)) if meta_name else None
        files = meta.get("files", {}) if isinstance(meta, dict) else {}
        configs = meta.get("yaml_files", {}) if isinstance(meta, dict) else {}
        model_name = _member(names, files.get("model_file"))
        if model_name is None:
            raise InitModelError(
                f"{_TAG} {path}: a zip without a model file (not packed by espnet2.bin.pack tts)")
        state = _model_state(_torch_load(path, archive.read(model_name)), path)
        config_name = _member(names, configs.get("train_config"))
        config = yaml.safe_load(archive.read(config_name)) if config_name else {}
    piper = config.get("piper_import") if isinstance(config, dict) else None
    # import_piper names the generator's parts relative to it, and "discriminator."
    untrained = tuple(
        f"tts.{prefix}" if prefix.startswith("discriminator.") else f"tts.generator.{prefix}"
        for prefix in (piper or {}).get("untrained", [])
    )
    tokens = _tokens_of(config)
    origin = f"{path}:{config_name}" if tokens is not None else f"none in {path}"
    kind = "imported Piper voice" if piper else "packed model"
    return Source(path, kind, state, tokens, origin, untrained)


def _member(names, packed_path) -> Optional[str]:
    """The zip member of a path meta.yaml gives (pack stores absolute ones without '/')."""
    if not isinstance(packed_path, str):
        return None
    for name in (packed_path, packed_path.lstrip("/")):
        if name in names:
            return name
    return None


# -- initialising the model ------------------------------------------------------------
def init_model(model: torch.nn.Module, path, token_list: Sequence[str]) -> InitReport:
    """Load into ``model`` what ``path`` has for it; log what stays fresh, by name.

    Args:
        model: The freshly built ``ESPnetGANTTSModel`` (tensors ``tts.*``).
        path: The source (see :func:`read_source`).
        token_list: Our token list: row ``i`` of the token embedding is ``token_list[i]``.

    Raises:
        InitModelError: ``path`` is no model, or nothing in it fits ``model``.
    """
    source = read_source(path)
    ours = model.state_dict()
    report = InitReport()
    merged = {}
    for name, tensor in ours.items():
        value = _take(name, tensor, source, list(token_list), report)
        if value is not None:
            merged[name] = value
    report.unused = sorted(set(source.state) - set(ours))
    if not report.loaded:
        raise InitModelError(
            f"{_TAG} {source.path}: nothing in it fits this model ({len(source.state)} "
            f"tensors, none with one of our names and shapes): not a VITS model of ours or ESPnet's")
    with torch.no_grad():
        for name, value in merged.items():
            ours[name].copy_(value)  # in place: the optimizers hold these very tensors
    _log(report, source, len(ours))
    return report


def _take(name, tensor, source: Source, tokens: List[str], report: InitReport):
    """The value ``name`` gets from the source, or ``None`` to stay fresh (noted in report)."""
    if name.startswith(CONFIG_BUFFERS):
        report.from_config.append(name)
        return None
    if name.startswith(source.untrained):
        report.untrained_in_source.append(name)
        return None
    if name not in source.state:
        report.not_in_source.append(name)
        return None
    theirs = source.state[name]
    lists_differ = source.token_list is not None and source.token_list != tokens
    if name == TOKEN_EMBEDDING and lists_differ and theirs.shape[1:] == tensor.shape[1:]:
        report.loaded.append(name)
        return _remap_rows(tensor, theirs, tokens, source, report)
    if theirs.shape != tensor.shape:
        report.shape_differs.append((name, tuple(tensor.shape), tuple(theirs.shape)))
        return None
    report.loaded.append(name)
    return theirs


def _remap_rows(fresh, theirs, tokens: List[str], source: Source, report: InitReport):
    """Our embedding with the source's row of each symbol both lists have."""
    if len(source.token_list) != theirs.shape[0]:
        raise InitModelError(
            f"{_TAG} {source.path}: its token list ({source.token_list_origin}) has "
            f"{len(source.token_list)} symbols but its token embedding {theirs.shape[0]} rows")
    rows = {symbol: row for row, symbol in enumerate(source.token_list)}
    value = fresh.clone()
    for row, symbol in enumerate(tokens):
        if symbol in rows:
            value[row] = theirs[rows[symbol]]
            report.remapped[symbol] = rows[symbol]
        else:
            report.new_tokens.append(symbol)
    report.dropped_tokens = [symbol for symbol in source.token_list if symbol not in set(tokens)]
    return value


def _log(report: InitReport, source: Source, total: int) -> None:
    """One line per kind of tensor, each naming its tensors (this goes to train.log)."""
    log = logging.info
    log(f"{_TAG} {source.path} ({source.kind}): loaded {len(report.loaded)} of {total} tensors; "
        f"token list of the source: {source.token_list_origin}")
    if report.remapped or report.new_tokens:
        log(f"{_TAG}: token list differs: {TOKEN_EMBEDDING} remapped by symbol, "
            f"{len(report.remapped)} rows from the source; new symbols initialised fresh: "
            f"{_names(report.new_tokens)}; source symbols not in ours: {_names(report.dropped_tokens)}")
    elif source.token_list is None and TOKEN_EMBEDDING in report.loaded:
        logging.warning(f"{_TAG}: the source's token list is unknown: {TOKEN_EMBEDDING} "
                        f"loaded row for row, as if both lists were the same")
    groups = (
        ("initialised fresh, not in the source", report.not_in_source),
        ("initialised fresh, shape differs (ours vs the source's)",
         [f"{name} {ours} vs {theirs}" for name, ours, theirs in report.shape_differs]),
        (f"initialised fresh, untrained in the source ({source.kind})", report.untrained_in_source),
        ("computed from this run's config", report.from_config),
        ("in the source but not in this model, not used", report.unused),
    )
    for what, names in groups:
        if names:
            log(f"{_TAG}: {what}: {_names(names)}")


def _names(names: Sequence[str]) -> str:
    return ", ".join(names) if names else "none"


# -- the command-line option -----------------------------------------------------------
def add_init_model_argument(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("Fine-tuning (espnet2_vits_ext)")
    group.add_argument(
        "--init_model", type=str, default=None,
        help="Start training from this model (an ESPnet VITS or fast_vits checkpoint .pth, "
        "a packed zip, an imported Piper voice): tensors of the same name and shape are "
        "loaded, the token embedding remapped by symbol, the rest initialised and listed "
        "in the log. Only at the start: a resumed run continues from its checkpoint",
    )


def check_init_model_option(args: argparse.Namespace) -> None:
    """Refuse a path that is no file before anything is built (the rest is read later)."""
    path = getattr(args, "init_model", None)
    if path is not None and not Path(path).is_file():
        raise InitModelError(f"{_TAG} {path}: no such file")
