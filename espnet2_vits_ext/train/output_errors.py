"""A write by ESPnet's own code under the output directory failed: clean up, say what to do."""

import logging
from pathlib import Path

from espnet2_vits_ext.train.checkpoint import (
    ESPNET_CHECKPOINT,
    STORE_DIRNAME,
    inspect_espnet_checkpoint,
)
from espnet2_vits_ext.train.errors import CheckpointWriteError

# How torch.save and ESPnet report a write cut short, as a RuntimeError's message
WRITE_FAILURE_MARKERS = ("PytorchStreamWriter", "file write failed", "unexpected pos")


def output_write_error(output_dir: Path, error: BaseException) -> CheckpointWriteError:
    """Drop a half-written ``checkpoint.pth`` and return the error to raise instead.

    A complete one stays: the rerun resumes from it and rebuilds the epoch model that
    ESPnet writes after it (:func:`.epoch_models.repair_epoch_models`).

    Args:
        output_dir: The run's ``--output_dir``.
        error: The write's error (an ``OSError`` or torch's ``RuntimeError``).

    Returns:
        A :class:`CheckpointWriteError` naming the file and what to do.
    """
    espnet_checkpoint = output_dir / ESPNET_CHECKPOINT
    if espnet_checkpoint.exists():
        states, problem = inspect_espnet_checkpoint(espnet_checkpoint)
        del states
        if problem is not None:
            logging.warning(f"Removing {espnet_checkpoint}: {problem}")
            espnet_checkpoint.unlink()
    where = getattr(error, "filename", None) or output_dir
    return CheckpointWriteError(
        f"Writing under {output_dir} failed ({where}: {error}). Half-written files "
        f"were removed; the checkpoints in {output_dir / STORE_DIRNAME} are intact. "
        f"Free disk space or make the directory writable, then rerun with --resume true."
    )
