"""ESPnet's ``GANTTSTask`` training with :class:`ResilientGANTrainer`.

Same options, models and data as ``espnet2.bin.gan_tts_train``, plus the trainer's
fault-tolerance options (``--checkpoint_interval_iters``, ``--precision``, ...).
"""

import argparse

from espnet2.tasks.gan_tts import GANTTSTask
from espnet2_vits_ext.train.trainer import ResilientGANTrainer


class ResilientGANTTSTask(GANTTSTask):
    """``GANTTSTask`` whose trainer survives kills, bad steps and full disks."""

    trainer = ResilientGANTrainer

    @classmethod
    def check_required_command_args(cls, args: argparse.Namespace) -> None:
        super().check_required_command_args(args)
        if not args.print_config:
            cls.trainer.check_options(args)
