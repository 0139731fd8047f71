"""The monotonic alignment between input tokens and output frames, drawn from durations.

VITS's monotonic alignment search gives each input token a whole number of output frames;
ESPnet's ``tts_inference`` writes them to ``durations/durations``. Drawn as a matrix
(T_feats rows, T_text columns) it is the staircase that ``att_ws/<key>.png`` shows.
"""

from pathlib import Path
from typing import Union

import numpy as np
from matplotlib.figure import Figure
from typeguard import typechecked


@typechecked
def durations_to_path(durations: np.ndarray) -> np.ndarray:
    """Expand durations into the hard alignment matrix.

    Args:
        durations: Frames per input token, shape (T_text,).

    Returns:
        0/1 matrix of shape (T_feats, T_text), T_feats = sum(durations); each row has exactly
        one 1, and column j has durations[j] of them, in order.
    """
    token_of_frame = np.repeat(np.arange(len(durations)), durations)  # (T_feats,)
    path = np.zeros((len(token_of_frame), len(durations)), dtype=np.float32)
    path[np.arange(len(token_of_frame)), token_of_frame] = 1.0
    return path


@typechecked
def plot_alignment(
    durations: np.ndarray, output_path: Union[str, Path], title: str = ""
) -> None:
    """Save the alignment matrix as a PNG: input token on x, output frame on y (as ESPnet)."""
    path = durations_to_path(durations)
    figure = Figure(figsize=(3.6, 2.6), dpi=80, layout="constrained")
    ax = figure.subplots()
    ax.imshow(path, origin="lower", aspect="auto", cmap="viridis", interpolation="nearest")
    ax.set_xlabel(f"input token ({len(durations)})")
    ax.set_ylabel(f"output frame ({path.shape[0]})")
    ax.set_title(title or "alignment", fontsize=10)
    figure.savefig(output_path)
