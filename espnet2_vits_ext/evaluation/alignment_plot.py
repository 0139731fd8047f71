"""The monotonic alignment between input tokens and output frames, drawn from durations.

VITS's monotonic alignment search gives each input token a whole number of output frames;
ESPnet's ``tts_inference`` writes them to ``durations/durations``. Drawn as a matrix
(T_feats rows, T_text columns) it is the staircase that ``att_ws/<key>.png`` shows.
"""

from pathlib import Path
from typing import Union

import numpy as np
import torch
from matplotlib.figure import Figure
from typeguard import typechecked

from espnet2_vits_ext.vits.monotonic_alignment import durations_to_path


def alignment_matrix(durations: np.ndarray) -> np.ndarray:
    """The 0/1 path (T_feats, T_text), T_feats = sum(durations), drawn by the model's own
    :func:`espnet2_vits_ext.vits.monotonic_alignment.durations_to_path`."""
    per_token = torch.as_tensor(np.asarray(durations, dtype=np.int64)).view(1, -1)  # (1, T_text)
    frames = int(per_token.sum())
    text_mask = torch.ones_like(per_token, dtype=torch.bool)
    feats_mask = torch.ones(1, frames, dtype=torch.bool)
    return durations_to_path(per_token, text_mask, feats_mask)[0].numpy()


@typechecked
def plot_alignment(
    durations: np.ndarray, output_path: Union[str, Path], title: str = ""
) -> None:
    """Save the alignment matrix as a PNG: input token on x, output frame on y (as ESPnet)."""
    path = alignment_matrix(durations)
    figure = Figure(figsize=(3.6, 2.6), dpi=80, layout="constrained")
    ax = figure.subplots()
    ax.imshow(path, origin="lower", aspect="auto", cmap="viridis", interpolation="nearest")
    ax.set_xlabel(f"input token ({len(durations)})")
    ax.set_ylabel(f"output frame ({path.shape[0]})")
    ax.set_title(title or "alignment", fontsize=10)
    figure.savefig(output_path)
