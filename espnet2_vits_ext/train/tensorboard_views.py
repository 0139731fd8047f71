"""What a validation utterance looks and sounds like, each epoch, in TensorBoard.

ESPnet's trainer logs losses and learning rates; to *hear* a VITS run converge one needs
its output. For one fixed validation utterance :func:`write_validation_views` writes,
at the global iteration count ``step``:

* ``valid_example/spectrogram``: log-magnitude spectrograms of the real speech, the
  teacher-forced reconstruction and the synthesis from text, one above the other;
* ``valid_example/alignment``: the monotonic alignment found against the real speech
  and the one from the predicted durations (text tokens by frames);
* ``valid_example/real``, ``/reconstructed``, ``/synthesized``: the three waveforms as audio.

The synthesis draws its noise from a fixed seed, in a forked random state: epochs
differ by the model only, and training's random sequence is untouched.
"""

from typing import Dict, List, Sequence

import numpy as np
import torch

TAG = "valid_example"
_KEEP_KEYS = ("sids", "spembs", "lids")


def capture_example(utt_ids: Sequence[str], batch: Dict[str, torch.Tensor]) -> Dict:
    """The first utterance of a validation batch, without padding, on the CPU."""
    text_length = int(batch["text_lengths"][0])
    speech_length = int(batch["speech_lengths"][0])
    example = dict(
        utt_id=utt_ids[0],
        text=batch["text"][0, :text_length].detach().cpu().clone(),
        speech=batch["speech"][0, :speech_length].detach().cpu().clone(),
    )
    for key in _KEEP_KEYS:
        if key in batch:
            example[key] = batch[key][0].detach().cpu().clone()
    return example


def _stft_parameters(espnet_model) -> Dict:
    params = {}
    if getattr(espnet_model, "feats_extract", None) is not None:
        params = espnet_model.feats_extract.get_parameters()
    n_fft = params.get("n_fft", 1024)
    return dict(n_fft=n_fft, hop=params.get("n_shift", n_fft // 4))


def _sampling_rate(espnet_model) -> int:
    rate = getattr(espnet_model.tts, "fs", None)
    if rate is None and getattr(espnet_model, "feats_extract", None) is not None:
        rate = espnet_model.feats_extract.get_parameters().get("fs")
    return int(rate or 22050)


def log_spectrogram(wav: torch.Tensor, n_fft: int, hop: int) -> np.ndarray:
    """``(T_wav,)`` -> ``(n_fft // 2 + 1, T_frames)`` natural-log magnitude, for plotting."""
    window = torch.hann_window(n_fft, device=wav.device)
    spec = torch.stft(wav.float(), n_fft, hop, window=window, return_complex=True)
    return torch.log(spec.abs().clamp(min=1e-5)).cpu().numpy()


def _features(espnet_model, speech: torch.Tensor) -> torch.Tensor:
    """``(T_wav,)`` -> the model's input features ``(T_feats, C)``, as in training."""
    lengths = torch.tensor([speech.numel()], device=speech.device)
    feats, feats_lengths = espnet_model.feats_extract(speech[None], lengths)
    if getattr(espnet_model, "normalize", None) is not None:
        feats, feats_lengths = espnet_model.normalize(feats, feats_lengths)
    return feats[0]


def _figure_spectrograms(spectrograms: Dict[str, np.ndarray], title: str):
    from matplotlib.figure import Figure

    figure = Figure(figsize=(10, 2.4 * len(spectrograms)))
    axes = figure.subplots(len(spectrograms), 1, squeeze=False)[:, 0]
    low = min(s.min() for s in spectrograms.values())
    high = max(s.max() for s in spectrograms.values())
    for ax, (name, spec) in zip(axes, spectrograms.items()):
        image = ax.imshow(spec, origin="lower", aspect="auto", vmin=low, vmax=high)
        ax.set_title(f"{title}: {name}")
        ax.set_ylabel("frequency bin")
        figure.colorbar(image, ax=ax)
    axes[-1].set_xlabel("frame")
    figure.tight_layout()
    return figure


def _figure_alignments(alignments: Dict[str, np.ndarray], title: str):
    from matplotlib.figure import Figure

    figure = Figure(figsize=(10, 3 * len(alignments)))
    axes = figure.subplots(len(alignments), 1, squeeze=False)[:, 0]
    for ax, (name, att_w) in zip(axes, alignments.items()):
        ax.imshow(att_w.T, origin="lower", aspect="auto", interpolation="none")  # (T_text, T_feats)
        ax.set_title(f"{title}: {name}")
        ax.set_ylabel("text token")
    axes[-1].set_xlabel("frame")
    figure.tight_layout()
    return figure


@torch.no_grad()
def write_validation_views(writer, espnet_model, example: Dict, step: int, seed: int = 0):
    """Spectrogram and alignment figures and audio of ``example`` at ``step``.

    Args:
        writer: a ``torch.utils.tensorboard.SummaryWriter``.
        espnet_model: ESPnet's ``ESPnetGANTTSModel`` (``feats_extract`` + ``tts``); ``tts``
            provides ``inference(text, feats=..., use_teacher_forcing=...)`` returning
            ``dict(wav, att_w, duration)`` as ESPnet's VITS and our FastVITS do.
        example: from :func:`capture_example`.
        step: the global iteration count (the x axis of ESPnet's scalars).
    """
    device = next(espnet_model.parameters()).device
    was_training = espnet_model.training
    espnet_model.eval()
    text = example["text"].to(device)
    speech = example["speech"].to(device)
    extra = {k: example[k].to(device) for k in _KEEP_KEYS if k in example}
    devices: List[int] = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        feats = _features(espnet_model, speech)
        forced = espnet_model.tts.inference(
            text=text, feats=feats, use_teacher_forcing=True, **extra
        )
        synthesized = espnet_model.tts.inference(text=text, **extra)
    espnet_model.train(was_training)

    stft = _stft_parameters(espnet_model)
    waves = dict(real=speech, reconstructed=forced["wav"], synthesized=synthesized["wav"])
    title = example["utt_id"]
    writer.add_figure(
        f"{TAG}/spectrogram",
        _figure_spectrograms(
            {name: log_spectrogram(w.flatten(), **stft) for name, w in waves.items()}, title
        ),
        step,
    )
    writer.add_figure(
        f"{TAG}/alignment",
        _figure_alignments(
            {
                "monotonic alignment search (real speech)": forced["att_w"].float().cpu().numpy(),
                "predicted durations": synthesized["att_w"].float().cpu().numpy(),
            },
            title,
        ),
        step,
    )
    rate = _sampling_rate(espnet_model)
    for name, wav in waves.items():
        wav = wav.flatten().float().clamp(-1.0, 1.0).cpu()
        writer.add_audio(f"{TAG}/{name}", wav[None], step, sample_rate=rate)
    writer.flush()
