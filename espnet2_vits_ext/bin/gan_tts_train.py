"""Train a GAN TTS model (VITS) with ESPnet, losing nothing to kills, NaNs or full disks.

Takes every option of ``espnet2.bin.gan_tts_train`` plus those of
:class:`espnet2_vits_ext.train.trainer.ResilientGANTrainer`. A stop on purpose
(SIGTERM, out of memory, too many non-finite steps, unwritable output) prints one message
saying what to do and exits non-zero (143 after SIGTERM).

Usage: python -m espnet2_vits_ext.bin.gan_tts_train --config conf/train.yaml --resume true [options]
"""

import logging
import sys
from typing import Optional, Sequence

from espnet2_vits_ext.train.errors import TrainingStopped
from espnet2_vits_ext.train.task import ResilientGANTTSTask


def get_parser():
    return ResilientGANTTSTask.get_parser()


def main(cmd: Optional[Sequence[str]] = None) -> None:
    try:
        ResilientGANTTSTask.main(cmd=cmd)
    except TrainingStopped as stop:
        logging.error(f"{type(stop).__name__}: {stop}")
        sys.exit(stop.exit_code)


if __name__ == "__main__":
    main()
