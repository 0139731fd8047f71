"""ESPnet's ``GANTTSTask`` training with :class:`ResilientGANTrainer`.

Same options, models and data as ``espnet2.bin.gan_tts_train``, plus the trainer's
fault-tolerance options (``--checkpoint_interval_iters``, ``--precision``, ...).
"""

import argparse

from espnet2.tasks.gan_tts import GANTTSTask
from espnet2_vits_ext.train.trainer import ResilientGANTrainer
from espnet2_vits_ext.vits.hop_length import check_hop_lengths


class ResilientGANTTSTask(GANTTSTask):
    """``GANTTSTask`` whose trainer survives kills, bad steps and full disks."""

    trainer = ResilientGANTrainer

    @classmethod
    def check_required_command_args(cls, args: argparse.Namespace) -> None:
        super().check_required_command_args(args)
        if not args.print_config:
            cls.trainer.check_options(args)

    @classmethod
    def build_model(cls, args: argparse.Namespace):
        # FastVITS alone cannot see the feature extractor's hop; the whole config can.
        check_hop_lengths(vars(args), getattr(args, "config", None) or "training arguments")
        return super().build_model(args)
