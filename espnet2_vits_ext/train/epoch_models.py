"""ESPnet's epoch models, checked when a run resumes and rebuilt when damaged.

At the end of epoch ``e`` ESPnet's ``Trainer.run`` writes ``checkpoint.pth``, then
``<e>epoch.pth``, both with a plain ``torch.save``, then points ``latest.pth`` (and
``<phase>.<criterion>.best.pth`` where ``e`` is the best epoch) at the latter. A kill or a
full disk during the second write leaves a complete ``checkpoint.pth`` next to a truncated
or missing ``<e>epoch.pth`` and stale links: the rerun resumes after epoch ``e`` and never
writes that file again, while ``average_nbest_models`` and the recipe's stage 7 load it.
:func:`repair_epoch_models` checks, when a run resumes, that the epoch model of every
finished epoch loads, rewrites a damaged one atomically from a checkpoint of the end of
its epoch, and points the links where ESPnet would have.
"""

import logging
import os
import pickle
import re
from pathlib import Path
from typing import Callable, Dict, Optional, Sequence, Tuple

import torch

from espnet2_vits_ext.train.checkpoint import atomic_torch_save
from espnet2_vits_ext.train.errors import DamagedEpochModelError

_EPOCH_MODEL = re.compile(r"^(\d+)epoch\.pth$")
LATEST_LINK = "latest.pth"

# (where it comes from, the model's state dict) for an epoch, or None if nothing is left
EpochModelSource = Callable[[int], Optional[Tuple[Path, Dict[str, torch.Tensor]]]]


def epoch_model_path(output_dir: Path, epoch: int) -> Path:
    return Path(output_dir) / f"{epoch}epoch.pth"


def epoch_model_problem(path: Path) -> Optional[str]:
    """``None`` if the epoch model ``path`` loads, else why not (for a log message).

    Memory-mapped loading reads the zip directory at the end of the file, so a write cut
    short anywhere fails here without reading the weights.
    """
    if not path.exists():
        return "it is missing"
    try:
        torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except (RuntimeError, OSError, EOFError, ValueError, pickle.UnpicklingError) as error:
        return f"it cannot be loaded ({type(error).__name__}: {error})"
    return None


def _point(link: Path, target: Path) -> None:
    """Make ``link`` a symlink to ``target``'s name, as ESPnet's links are; atomically."""
    if link.is_symlink() and os.readlink(link) == target.name:
        return
    temp = link.with_name(f".{link.name}.tmp-{os.getpid()}")
    temp.unlink(missing_ok=True)
    temp.symlink_to(target.name)
    os.replace(temp, link)
    logging.info(f"Pointed {link} at {target.name}")


def _epochs_to_check(output_dir: Path, finished: int) -> list:
    """The last finished epoch and every earlier one with an epoch model file, in order."""
    epochs = {finished}
    for path in output_dir.iterdir():
        match = _EPOCH_MODEL.match(path.name)
        if match and int(match[1]) <= finished:  # later ones are rewritten as training goes
            epochs.add(int(match[1]))
    return sorted(epochs)


def repair_epoch_models(
    output_dir: Path,
    reporter,
    source: EpochModelSource,
    best_model_criterion: Sequence[Sequence[str]],
) -> None:
    """Rewrite the damaged epoch models of the epochs ``reporter`` has finished.

    The last finished epoch's model, if missing, is written too when a checkpoint of that
    epoch's end is there. Without one it stays missing: resumed from before a later epoch
    end (an older checkpoint), ESPnet may have removed it as not among the n best.

    Args:
        output_dir: ESPnet's output directory.
        reporter: ESPnet's ``Reporter`` in the state training resumes from.
        source: gives, for an epoch, a checkpoint of its end and the model state in it.
        best_model_criterion: ESPnet's ``(phase, key, "min"|"max")`` triples.

    Raises:
        DamagedEpochModelError: a damaged epoch model that no checkpoint can rebuild.
    """
    output_dir = Path(output_dir)
    finished = reporter.get_epoch()
    if finished < 1:
        return
    rewritten = []
    for epoch in _epochs_to_check(output_dir, finished):
        path = epoch_model_path(output_dir, epoch)
        problem = epoch_model_problem(path)
        if problem is None:
            continue
        found = source(epoch)
        if found is None and not path.exists():
            continue
        if found is None:
            raise DamagedEpochModelError(
                f"Epoch model {path} is damaged: {problem}, and no checkpoint of the end "
                f"of epoch {epoch} is left to rebuild it from. Model averaging and "
                f"synthesis would load it. Put a good copy there, or start over with "
                f"--resume false."
            )
        checkpoint, model_state = found
        logging.warning(
            f"Epoch model {path} is damaged: {problem} (its write was interrupted). "
            f"Writing it from the model of {checkpoint}."
        )
        atomic_torch_save(model_state, path, sidecar=False)
        rewritten.append(epoch)
    # the links ESPnet makes right after writing an epoch model, which a kill may have cut off
    linked = set(rewritten)
    latest = epoch_model_path(output_dir, finished)
    if latest.exists():
        _point(output_dir / LATEST_LINK, latest)
        linked.add(finished)
    for epoch in sorted(linked):
        for phase, key, mode in best_model_criterion:
            if reporter.has(phase, key) and reporter.get_best_epoch(phase, key, mode) == epoch:
                _point(output_dir / f"{phase}.{key}.best.pth", epoch_model_path(output_dir, epoch))
