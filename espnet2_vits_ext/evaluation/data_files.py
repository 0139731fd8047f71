"""Reading the inputs of the evaluation: Kaldi-style maps, ESPnet durations, wave files."""

from pathlib import Path
from typing import Dict, Tuple, Union

import numpy as np
import soundfile as sf
from typeguard import typechecked

from espnet2_vits_ext.recipe.kaldi_table import read_table


@typechecked
def read_kaldi_map(path: Union[str, Path], allow_empty_value: bool = False) -> Dict[str, str]:
    """Read a ``<key> <value>`` file (``wav.scp``, ``text``) into an ordered dict.

    Args:
        path: The file; one entry per line, key and value separated by the first whitespace.
        allow_empty_value: Accept lines with a key only (an empty transcript).

    Returns:
        Mapping from key to value, in file order.

    Raises:
        KaldiTableError: A ValueError naming the file and line: a line without a value (unless
            allowed), a duplicated key, a line that is not UTF-8.
    """
    return read_table(path, allow_empty_value)


@typechecked
def read_wav_scp(path: Union[str, Path]) -> Dict[str, Path]:
    """Read a ``wav.scp`` whose values are audio file paths (ESPnet's ``dump/raw`` layout).

    Relative paths are taken as relative to the current directory, as ESPnet does.

    Raises:
        ValueError: For a piped entry (``sox ... |``) or an entry with extra fields
            (segments-style offsets), naming the file and line.
    """
    table = read_kaldi_map(path)
    paths = {}
    for key, value in table.items():
        if value.endswith("|") or " " in value:
            raise ValueError(
                f"{path}: entry {key!r} is {value!r}; only plain file paths are supported "
                "(use ESPnet's dump/raw/<set>/wav.scp, which format_wav_scp.sh wrote as files)"
            )
        paths[key] = Path(value)
    return paths


@typechecked
def read_durations(path: Union[str, Path]) -> Dict[str, np.ndarray]:
    """Read ESPnet's ``durations/durations`` file: ``<key> <d_1> ... <d_T_text>`` per line.

    Returns:
        Mapping from key to an integer array of shape (T_text,), frames per input token.

    Raises:
        ValueError: On a non-integer or negative duration, naming the file and line.
    """
    durations: Dict[str, np.ndarray] = {}
    with open(path, encoding="utf-8") as f:
        for line_number, line in enumerate(f, 1):
            fields = line.split()
            if not fields:
                continue
            key, values = fields[0], fields[1:]
            try:
                array = np.array([int(v) for v in values], dtype=np.int64)
            except ValueError:
                raise ValueError(
                    f"{path}:{line_number}: durations of {key!r} must be integers: {line.strip()!r}"
                ) from None
            if array.size == 0 or (array < 0).any():
                raise ValueError(
                    f"{path}:{line_number}: durations of {key!r} must be non-negative, at least one"
                )
            durations[key] = array
    return durations


@typechecked
def load_mono_wave(path: Union[str, Path]) -> Tuple[np.ndarray, int]:
    """Load a wave file as float64 mono in [-1, 1].

    Returns:
        The samples (T_wav,) and the sampling rate.

    Raises:
        ValueError: For a multi-channel or empty file.
    """
    wave, sampling_rate = sf.read(str(path), dtype="float64", always_2d=True)
    if wave.shape[1] != 1:
        raise ValueError(f"{path}: expected a mono file, got {wave.shape[1]} channels")
    if wave.shape[0] == 0:
        raise ValueError(f"{path}: the file has no samples")
    return wave[:, 0], int(sampling_rate)
