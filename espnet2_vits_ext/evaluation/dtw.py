"""Dynamic time warping: which frames of a synthesized utterance match which reference frames.

The synthesized and the natural utterance speak the same text at different speeds, so frame-wise
metrics need a monotonic frame pairing first. We use the classic DTW with steps (1, 1), (1, 0),
(0, 1) on Euclidean distances between mel-cepstra (without the energy term c_0), as the MCD
literature does.
"""

from typing import Tuple

import librosa
import numpy as np
from scipy.spatial.distance import cdist
from typeguard import typechecked


@typechecked
def align_frames(
    reference: np.ndarray, synthesized: np.ndarray
) -> Tuple[np.ndarray, np.ndarray]:
    """Find the minimum-cost monotonic pairing of frames.

    Args:
        reference: Reference features, shape (T_ref, D).
        synthesized: Synthesized features, shape (T_gen, D).

    Returns:
        Two index arrays of equal length T_path (max(T_ref, T_gen) <= T_path < T_ref + T_gen),
        ``reference_index`` and ``synthesized_index``, in increasing time order; the path starts
        at (0, 0) and ends at (T_ref - 1, T_gen - 1).
    """
    if reference.ndim != 2 or synthesized.ndim != 2 or reference.shape[1] != synthesized.shape[1]:
        raise ValueError(
            f"expected (T_ref, D) and (T_gen, D) features, got {reference.shape} and "
            f"{synthesized.shape}"
        )
    if len(reference) == 0 or len(synthesized) == 0:
        raise ValueError("cannot align an empty feature sequence")
    cost = cdist(reference, synthesized, metric="euclidean")  # (T_ref, T_gen)
    _, path = librosa.sequence.dtw(C=cost, backtrack=True)
    path = path[::-1]  # librosa returns the path from the end to the start
    return path[:, 0], path[:, 1]
