"""Pitch metrics on DTW-aligned frames: log-F0 RMSE in cents and the voiced/unvoiced error rate.

Log-F0 RMSE is reported in cents (1200 * log2 of the F0 ratio; 100 cents is one equal-tempered
semitone), computed only on frame pairs voiced in both signals: a semitone-sharp copy scores 100.
In natural-log units that is cents * ln(2) / 1200.
"""

from typing import Tuple

import numpy as np
from typeguard import typechecked

CENTS_PER_OCTAVE = 1200.0


@typechecked
def log_f0_rmse_cents(
    reference_f0_hz: np.ndarray,
    synthesized_f0_hz: np.ndarray,
    reference_index: np.ndarray,
    synthesized_index: np.ndarray,
) -> Tuple[float, int]:
    """Root-mean-square log-F0 difference over the aligned frame pairs voiced in both signals.

    Args:
        reference_f0_hz: Reference F0, 0 where unvoiced, shape (T_ref,).
        synthesized_f0_hz: Synthesized F0, 0 where unvoiced, shape (T_gen,).
        reference_index: Path indices into the reference, shape (T_path,).
        synthesized_index: Path indices into the synthesis, shape (T_path,).

    Returns:
        The RMSE in cents (NaN when no pair is voiced in both) and the number of such pairs.
    """
    reference = reference_f0_hz[reference_index]
    synthesized = synthesized_f0_hz[synthesized_index]
    both_voiced = (reference > 0) & (synthesized > 0)
    count = int(both_voiced.sum())
    if count == 0:
        return float("nan"), 0
    cents = CENTS_PER_OCTAVE * np.log2(synthesized[both_voiced] / reference[both_voiced])
    return float(np.sqrt(np.mean(cents**2))), count


@typechecked
def voicing_error_rate(
    reference_f0_hz: np.ndarray,
    synthesized_f0_hz: np.ndarray,
    reference_index: np.ndarray,
    synthesized_index: np.ndarray,
) -> float:
    """Fraction of aligned frame pairs whose voiced/unvoiced decisions disagree.

    Args: as for :func:`log_f0_rmse_cents`.

    Returns:
        The V/UV error rate in [0, 1].
    """
    reference_voiced = reference_f0_hz[reference_index] > 0
    synthesized_voiced = synthesized_f0_hz[synthesized_index] > 0
    return float(np.mean(reference_voiced != synthesized_voiced))
