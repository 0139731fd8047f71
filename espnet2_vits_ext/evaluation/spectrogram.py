"""Side-by-side log-mel spectrograms of the natural and the synthesized utterance."""

from pathlib import Path
from typing import Union

import librosa
import numpy as np
from matplotlib.figure import Figure
from typeguard import typechecked

NUM_MELS = 80
DYNAMIC_RANGE_DB = 80.0


@typechecked
def log_mel_spectrogram(wave: np.ndarray, sampling_rate: int) -> np.ndarray:
    """Log-mel power spectrogram, about 46 ms windows with 75 % overlap.

    Args:
        wave: Mono samples, shape (T_wav,).
        sampling_rate: Samples per second.

    Returns:
        Power in dB (not normalized), shape (NUM_MELS, T_frames).
    """
    n_fft = int(2 ** np.ceil(np.log2(0.046 * sampling_rate)))  # 1024 at 22.05 kHz
    power = librosa.feature.melspectrogram(
        y=wave, sr=sampling_rate, n_fft=n_fft, hop_length=n_fft // 4, n_mels=NUM_MELS
    )
    return librosa.power_to_db(power, ref=1.0, amin=1e-10)


@typechecked
def plot_spectrogram_pair(
    reference_wave: np.ndarray,
    synthesized_wave: np.ndarray,
    sampling_rate: int,
    output_path: Union[str, Path],
    title: str = "",
) -> None:
    """Save one PNG with the reference (left) and synthesized (right) log-mel spectrograms.

    Both panels share one colour scale (the louder signal's peak down to 80 dB below it) and
    one seconds-per-inch time scale, so loudness and length can be compared by eye.
    """
    spectrograms = [
        log_mel_spectrogram(reference_wave, sampling_rate),
        log_mel_spectrogram(synthesized_wave, sampling_rate),
    ]
    durations = [len(reference_wave) / sampling_rate, len(synthesized_wave) / sampling_rate]
    vmax = max(float(s.max()) for s in spectrograms)
    # 690 x 208 px: leaves room for the alignment beside it in the report.
    figure = Figure(figsize=(8.6, 2.6), dpi=80, layout="constrained")
    axes = figure.subplots(1, 2, sharey=True, width_ratios=durations)
    for ax, spectrogram, seconds, label in zip(
        axes, spectrograms, durations, ("ground truth", "synthesized")
    ):
        image = ax.imshow(
            spectrogram,
            origin="lower",
            aspect="auto",
            extent=(0.0, seconds, 0, NUM_MELS),
            vmin=vmax - DYNAMIC_RANGE_DB,
            vmax=vmax,
            cmap="magma",
        )
        ax.set_title(f"{label} ({seconds:.2f} s)", fontsize=10)
        ax.set_xlabel("time (s)")
    axes[0].set_ylabel("mel bin")
    figure.colorbar(image, ax=axes, label="dB", pad=0.01)
    if title:
        figure.suptitle(title, fontsize=10)
    figure.savefig(output_path)
