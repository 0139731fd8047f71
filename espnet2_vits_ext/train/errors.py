"""Errors that stop training on purpose, each with a message telling the user what to do.

The entry point (:mod:`espnet2_vits_ext.bin.gan_tts_train`) prints the message of a
:class:`TrainingStopped` without a traceback and exits with its ``exit_code``.
"""

import contextlib
import re
from typing import Callable, Iterator, Sequence

# how espnet2_vits_ext.vits.monotonic_alignment's ValueError starts and names utterances
_UNALIGNABLE = "monotonic alignment search cannot align"
_BATCH_INDEX = re.compile(r"batch index (\d+)")


class TrainingStopped(Exception):
    """Base class: training stopped for a reason the message explains."""

    exit_code = 1


class CheckpointWriteError(TrainingStopped):
    """A checkpoint or another file under the output directory could not be written."""


class NothingToResumeError(TrainingStopped):
    """``--resume true`` found traces of an earlier run but no checkpoint it can load."""


class DamagedEpochModelError(TrainingStopped):
    """An epoch model of a finished epoch cannot be loaded, nor rebuilt from a checkpoint."""


class UnalignableUtteranceError(TrainingStopped):
    """A training utterance has more text tokens than feature frames."""


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


@contextlib.contextmanager
def naming_unalignable_utterances(batch_ids: Callable[[], Sequence[str]]) -> Iterator[None]:
    """Turns the alignment search's ``ValueError`` raised inside the block into an
    :class:`UnalignableUtteranceError` naming the utterances of ``batch_ids()`` (the batch
    being processed when it was raised); other errors pass unchanged.

    The search sees only tensors, so it names batch indices.
    """
    try:
        yield
    except ValueError as error:
        message = str(error)
        if not message.startswith(_UNALIGNABLE):
            raise
        utt_ids = batch_ids()

        def utterance(match: re.Match) -> str:
            index = int(match[1])
            return f"utterance {utt_ids[index]}" if index < len(utt_ids) else match[0]

        raise UnalignableUtteranceError(
            f"{_BATCH_INDEX.sub(utterance, message)}. Each text token needs at least one "
            f"feature frame; the recipe's stage 4 (local/prepare_text.py) drops utterances "
            f"with fewer. Check the data of these (a wrong transcript, truncated audio), fix "
            f"or remove them, and rerun (with --resume true to keep the progress so far)."
        ) from error
