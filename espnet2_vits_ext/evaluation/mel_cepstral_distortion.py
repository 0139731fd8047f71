"""Mel-cepstral distortion (MCD), in decibels, after DTW alignment.

MCD = (10 / ln 10) * sqrt(2 * sum_{d=1..M} (c_d - c'_d)^2), averaged over aligned frame pairs.
The energy term c_0 is left out, so a louder or quieter copy of the same speech scores 0 dB.
The factor makes the value an estimate of the log-spectral distance in dB (Kubichek 1993).
"""

import numpy as np
from typeguard import typechecked

MCD_FACTOR_DB = 10.0 / np.log(10.0) * np.sqrt(2.0)


@typechecked
def frame_distortions_db(
    reference_mcep: np.ndarray, synthesized_mcep: np.ndarray
) -> np.ndarray:
    """MCD of each frame pair of two equally long, already aligned mel-cepstrum sequences.

    Args:
        reference_mcep: Mel-cepstra c_0..c_M, shape (T, M + 1).
        synthesized_mcep: Mel-cepstra c_0..c_M, shape (T, M + 1).

    Returns:
        Distortion per frame pair in dB, shape (T,).
    """
    if reference_mcep.shape != synthesized_mcep.shape:
        raise ValueError(
            f"aligned mel-cepstra must have equal shapes, got {reference_mcep.shape} and "
            f"{synthesized_mcep.shape}"
        )
    difference = reference_mcep[:, 1:] - synthesized_mcep[:, 1:]
    return MCD_FACTOR_DB * np.sqrt(np.sum(difference**2, axis=1))


@typechecked
def mel_cepstral_distortion_db(
    reference_mcep: np.ndarray,
    synthesized_mcep: np.ndarray,
    reference_index: np.ndarray,
    synthesized_index: np.ndarray,
) -> float:
    """Mean MCD over the frame pairs of a DTW path.

    Args:
        reference_mcep: Reference mel-cepstra, shape (T_ref, M + 1).
        synthesized_mcep: Synthesized mel-cepstra, shape (T_gen, M + 1).
        reference_index: Path indices into the reference, shape (T_path,).
        synthesized_index: Path indices into the synthesis, shape (T_path,).

    Returns:
        MCD in dB.
    """
    distortions = frame_distortions_db(
        reference_mcep[reference_index], synthesized_mcep[synthesized_index]
    )
    return float(np.mean(distortions))
