"""Synthetic "speech" with known properties, for the evaluation tests.

A vowel sequence: each vowel is a harmonic signal with constant F0 and a two-formant spectral
envelope, held for a given time. Scaling every hold time stretches the signal in time without
changing any frame's spectrum; scaling F0 shifts the pitch by a known interval.
"""

from typing import Sequence, Tuple

import numpy as np

SAMPLING_RATE = 16000
# (F0 in Hz, first and second formant in Hz)
VOWELS: Tuple[Tuple[float, float, float], ...] = (
    (150.0, 700.0, 1200.0),
    (170.0, 300.0, 2300.0),
    (140.0, 500.0, 900.0),
)


def vowel_sequence(
    hold_seconds: Sequence[float],
    vowels: Sequence[Tuple[float, float, float]] = VOWELS,
    f0_scale: float = 1.0,
    sampling_rate: int = SAMPLING_RATE,
) -> np.ndarray:
    """Concatenated vowels, phase-continuous, peak 0.3, shape (sum of round(hold * rate),)."""
    f0, formant1, formant2 = (
        np.concatenate(
            [np.full(round(hold * sampling_rate), vowel[i]) for hold, vowel in zip(hold_seconds, vowels)]
        )
        for i in range(3)
    )
    f0 = f0 * f0_scale
    phase = 2 * np.pi * np.cumsum(f0) / sampling_rate
    wave = np.zeros(len(f0))
    for harmonic in range(1, 60):
        frequency = harmonic * f0
        amplitude = (
            np.exp(-(((frequency - formant1) / 200.0) ** 2))
            + 0.5 * np.exp(-(((frequency - formant2) / 250.0) ** 2))
            + 0.03
        )
        # Harmonics near Nyquist are left out (no aliasing).
        wave += np.where(frequency < sampling_rate / 2 - 500, amplitude * np.sin(harmonic * phase), 0.0)
    return 0.3 * wave / np.abs(wave).max()


def white_noise(seconds: float, sampling_rate: int = SAMPLING_RATE, seed: int = 0) -> np.ndarray:
    """Unvoiced signal of the same loudness range, shape (int(seconds * rate),)."""
    return 0.1 * np.random.default_rng(seed).standard_normal(int(seconds * sampling_rate))
