"""Errors that stop training on purpose, each with a message telling the user what to do.

The entry point (:mod:`espnet2_vits_ext.bin.gan_tts_train`) prints the message of a
:class:`TrainingStopped` without a traceback and exits with its ``exit_code``.
"""


class TrainingStopped(Exception):
    """Base class: training stopped for a reason the message explains."""

    exit_code = 1


class CheckpointWriteError(TrainingStopped):
    """A checkpoint or another file under the output directory could not be written."""


class NothingToResumeError(TrainingStopped):
    """``--resume true`` found traces of an earlier run but no checkpoint it can load."""


class NonFiniteTrainingError(TrainingStopped):
    """Too many consecutive iterations had a non-finite loss or gradient."""


class TrainingOutOfMemoryError(TrainingStopped):
    """A batch did not fit in memory; the message names the limits to lower."""


class TrainingInterrupted(TrainingStopped):
    """SIGTERM (e.g. Slurm preemption) arrived; a checkpoint was saved first."""

    exit_code = 143  # 128 + SIGTERM, what a shell reports for a job ended by SIGTERM


class InvalidOptionError(TrainingStopped):
    """Options that contradict each other or are out of range."""

    exit_code = 2  # as argparse exits on a bad command line
