"""Command-line options of :class:`~espnet2_vits_ext.train.trainer.ResilientGANTrainer`.

They come on top of all of ESPnet's ``gan_tts_train`` options; the trainer also reads a
few of ESPnet's own (shape files, batch limits) to name them in error messages.
"""

import argparse
import dataclasses
from typing import List, Optional

from espnet2.train.gan_trainer import GANTrainerOptions
from espnet2.utils.types import str2bool, str_or_none
from espnet2_vits_ext.train.errors import InvalidOptionError
from espnet2_vits_ext.train.precision import resolve_precision


@dataclasses.dataclass
class ResilientGANTrainerOptions(GANTrainerOptions):
    """ESPnet's GAN trainer options, ours, and ESPnet's batch options we quote."""

    checkpoint_interval_iters: int
    keep_checkpoints: int
    max_consecutive_nonfinite_steps: int
    precision: Optional[str]
    oom_scan_batches: int
    validation_views: bool
    train_shape_file: List[str]
    batch_type: str
    batch_size: int
    batch_bins: int
    init_model: Optional[str]  # --init_model (train/init_model.py)
    token_list: List[str]  # the model's tokens, as the task's build_model leaves them


def add_fault_tolerance_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("Fault tolerance (espnet2_vits_ext)")
    group.add_argument(
        "--checkpoint_interval_iters", type=int, default=500,
        help="Save a resumable checkpoint every this many iterations, besides the one "
        "at each epoch end (500 is a few minutes of LJSpeech VITS on one GPU)",
    )
    group.add_argument(
        "--keep_checkpoints", type=int, default=2,
        help="How many of the newest checkpoints to keep in <output_dir>/checkpoints",
    )
    group.add_argument(
        "--max_consecutive_nonfinite_steps", type=int, default=10,
        help="Stop (after saving a checkpoint) when this many iterations in a row had "
        "a non-finite loss or gradient; each such step is skipped",
    )
    group.add_argument(
        "--precision", type=str_or_none, default=None, choices=["fp32", "fp16", "bf16", None],
        help="fp32; fp16 (GPU, with GradScaler; same as --use_amp true); bf16 (CPU or "
        "GPU autocast, no scaler). Default: fp16 if --use_amp true, else fp32",
    )
    group.add_argument(
        "--oom_scan_batches", type=int, default=2,
        help="Before epoch 1, try a training step on this many of the largest batches "
        "to fail early on out-of-memory (0: skip)",
    )
    group.add_argument(
        "--validation_views", type=str2bool, default=True,
        help="With --use_tensorboard true, write spectrograms, alignments and audio of "
        "a validation utterance each epoch (<output_dir>/tensorboard/samples)",
    )


def check_fault_tolerance_options(args: argparse.Namespace) -> None:
    """Reject contradicting or out-of-range options before anything is built."""
    try:
        resolve_precision(args.precision, args.use_amp, args.ngpu)
    except ValueError as error:
        raise InvalidOptionError(str(error)) from error
    for name in ("checkpoint_interval_iters", "keep_checkpoints",
                 "max_consecutive_nonfinite_steps"):
        if getattr(args, name) < 1:
            raise InvalidOptionError(f"--{name} must be at least 1, got {getattr(args, name)}")
    if args.oom_scan_batches < 0:
        raise InvalidOptionError(f"--oom_scan_batches must be >= 0, got {args.oom_scan_batches}")
