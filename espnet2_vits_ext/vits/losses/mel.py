"""Mel-spectrogram reconstruction loss of VITS (Sec. 2.1.2, Eq. 4: ``L_recon``).

``L_recon = || mel(y) - mel(G(z)) ||_1`` on log-mel spectrograms of the real and
decoded waveform segments (weighted by ``lambda_mel = 45`` in VITS).

Same constructor arguments (ESPnet's ``mel_loss_params``) and call signature as ESPnet's
``espnet2.gan_tts.hifigan.loss.MelSpectrogramLoss``, and the same ``state_dict``: the one
buffer ``wav_to_mel.logmel.melmat`` (the librosa Slaney mel basis, (n_fft/2+1, n_mels)),
kept by ``wav_to_mel`` (ESPnet's ``LogMelFbank``) / ``logmel`` (ESPnet's ``LogMel``) with the
same call conventions. The STFT of both waveforms is taken in one batched call, in
float32 with autocast off (see :mod:`.fp32`).
"""

import math
from typing import Optional, Tuple, Union

import librosa
import torch
import torch.nn.functional as F

from espnet2_vits_ext.vits.losses.fp32 import autocast_off, fp32


class LogMel(torch.nn.Module):
    """Linear amplitude spectrum (B, T, n_fft/2+1) -> log-mel (B, T, n_mels)."""

    def __init__(
        self,
        fs: int = 16000,
        n_fft: int = 512,
        n_mels: int = 80,
        fmin: Optional[float] = None,
        fmax: Optional[float] = None,
        htk: bool = False,
        log_base: Optional[float] = None,
    ):
        super().__init__()
        self.mel_options = dict(
            sr=fs,
            n_fft=n_fft,
            n_mels=n_mels,
            fmin=0 if fmin is None else fmin,
            fmax=fs / 2 if fmax is None else fmax,
            htk=htk,
        )
        self.log_base = log_base
        melmat = librosa.filters.mel(**self.mel_options)  # (n_mels, n_freq)
        self.register_buffer("melmat", torch.from_numpy(melmat.T).float())

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.mel_options.items())

    def forward(self, feat: torch.Tensor, ilens: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, torch.Tensor]:
        """Amplitude (B, T, F) -> (log-mel (B, T, n_mels), lengths (B,)).

        Frames at or past ``ilens`` (when given) are set to zero, as ESPnet's ``LogMel``.
        """
        with autocast_off(feat):
            mel = torch.matmul(fp32(feat), fp32(self.melmat)).clamp_(min=1e-10)
            if self.log_base is None:
                logmel = mel.log()
            elif self.log_base == 2.0:
                logmel = mel.log2()
            elif self.log_base == 10.0:
                logmel = mel.log10()
            else:
                logmel = mel.log() / math.log(self.log_base)
        if ilens is None:
            ilens = feat.new_full([feat.size(0)], fill_value=feat.size(1), dtype=torch.long)
        else:
            pad = torch.arange(logmel.size(1), device=logmel.device)[None, :] >= ilens[:, None]
            logmel = logmel.masked_fill(pad[..., None], 0.0)
        return logmel, ilens


class LogMelFbank(torch.nn.Module):
    """Waveform (B, T_wav) -> log-mel (B, T_frames, n_mels): STFT, amplitude, mel, log."""

    def __init__(
        self,
        fs: Union[int, str] = 16000,
        n_fft: int = 1024,
        win_length: Optional[int] = None,
        hop_length: int = 256,
        window: Optional[str] = "hann",
        center: bool = True,
        normalized: bool = False,
        onesided: bool = True,
        n_mels: int = 80,
        fmin: Optional[int] = 80,
        fmax: Optional[int] = 7600,
        htk: bool = False,
        log_base: Optional[float] = 10.0,
    ):
        super().__init__()
        if isinstance(fs, str):
            import humanfriendly  # ESPnet's dependency; only for sizes like "22.05k"

            fs = humanfriendly.parse_size(fs)
        if window is not None and not hasattr(torch, f"{window}_window"):
            raise ValueError(f"{window} window is not implemented")
        self.fs, self.n_fft, self.hop_length, self.n_mels = fs, n_fft, hop_length, n_mels
        self.win_length = n_fft if win_length is None else win_length
        self.center, self.normalized, self.onesided = center, normalized, onesided
        self.window = window
        win = getattr(torch, f"{window}_window")(self.win_length) if window is not None else None
        self.register_buffer("_window", win, persistent=False)  # not in the state_dict
        self.logmel = LogMel(fs=fs, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax, htk=htk, log_base=log_base)

    def amplitude(self, wav: torch.Tensor) -> torch.Tensor:
        """Linear amplitude spectrum (B, T_frames, n_fft/2+1) of waveforms (B, T_wav)."""
        with autocast_off(wav):
            window = None if self._window is None else fp32(self._window)
            spec = torch.stft(
                fp32(wav),
                n_fft=self.n_fft,
                hop_length=self.hop_length,
                win_length=self.win_length,
                window=window,
                center=self.center,
                normalized=self.normalized,
                onesided=self.onesided,
                return_complex=True,
            )
            spec = torch.view_as_real(spec).transpose(1, 2)  # (B, frames, F, 2)
            power = spec[..., 0] ** 2 + spec[..., 1] ** 2
            return torch.sqrt(torch.clamp(power, min=1.0e-10))

    def forward(
        self, input: torch.Tensor, input_lengths: Optional[torch.Tensor] = None
    ) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        """Waveforms (B, T_wav) -> (log-mel (B, T_frames, n_mels), None).

        ``input_lengths`` is not supported (the loss never passes it).
        """
        assert input_lengths is None, "lengths are not supported by this mel extractor"
        logmel, _ = self.logmel(self.amplitude(input))
        return logmel, None


class MelSpectrogramLoss(torch.nn.Module):
    """L1 (or L2) distance between log-mel spectrograms."""

    def __init__(
        self,
        fs: int = 22050,
        n_fft: int = 1024,
        hop_length: int = 256,
        win_length: Optional[int] = None,
        window: str = "hann",
        n_mels: int = 80,
        fmin: Optional[int] = 0,
        fmax: Optional[int] = None,
        center: bool = True,
        normalized: bool = False,
        onesided: bool = True,
        log_base: Optional[float] = 10.0,
    ):
        """Set up the mel filter bank and the STFT the loss compares with.

        Args:
            fs (int): Sample rate of the waveforms (Hz).
            n_fft (int): STFT size.
            hop_length (int): Samples between frames (the decoder's upsampling product).
            win_length (Optional[int]): Window length (None: n_fft).
            window (str): Window type (``torch.<window>_window``).
            n_mels (int): Number of mel bins.
            fmin (Optional[int]): Lowest mel frequency.
            fmax (Optional[int]): Highest mel frequency (None: fs / 2).
            center (bool): Whether frames are centred (reflect padding).
            normalized (bool): Whether the STFT is normalised.
            onesided (bool): Whether the STFT is one-sided.
            log_base (Optional[float]): Log base (None: natural log, as VITS uses).

        """
        super().__init__()
        self.wav_to_mel = LogMelFbank(
            fs=fs,
            n_fft=n_fft,
            hop_length=hop_length,
            win_length=win_length,
            window=window,
            n_mels=n_mels,
            fmin=fmin,
            fmax=fmax,
            center=center,
            normalized=normalized,
            onesided=onesided,
            log_base=log_base,
        )

    def forward(
        self,
        y_hat: torch.Tensor,
        y: torch.Tensor,
        spec: Optional[torch.Tensor] = None,
        use_mse: bool = False,
    ) -> torch.Tensor:
        """L1 (or squared) distance of the log-mel spectrograms of generated and real audio.

        Args:
            y_hat (Tensor): Generated waveform (B, 1, T).
            y (Tensor): Ground-truth waveform (B, 1, T).
            spec (Optional[Tensor]): Ground-truth linear amplitude spectrum
                (B, T_frames, n_fft // 2 + 1), used instead of ``y`` when given.
            use_mse (bool): Use the mean squared error instead of L1.

        Returns:
            Tensor: The mean distance (scalar).

        """
        with autocast_off(y_hat):
            y_hat = fp32(y_hat.squeeze(1))
            if spec is not None:
                mel_hat, _ = self.wav_to_mel(y_hat)
                mel, _ = self.wav_to_mel.logmel(fp32(spec))
            elif y.squeeze(1).shape == y_hat.shape:
                # one STFT for both: same frames, half the calls
                both, _ = self.wav_to_mel(torch.cat([y_hat, fp32(y.squeeze(1))]))
                mel_hat, mel = both.split(y_hat.size(0))
            else:
                mel_hat, _ = self.wav_to_mel(y_hat)
                mel, _ = self.wav_to_mel(fp32(y.squeeze(1)))
            return F.mse_loss(mel_hat, mel) if use_mse else F.l1_loss(mel_hat, mel)
