"""A tiny corpus and training command line for tests of the GAN TTS training entry point.

:func:`write_tiny_corpus` writes a few sine clips with short texts in ESPnet's dump
format (``wav.scp``, ``text``, shape files, a character token list); :func:`train_args`
returns the arguments of ``python -m espnet2_vits_ext.bin.gan_tts_train`` for the tiny
model of :func:`helpers.tiny_configs.tiny_tts_conf`; :func:`faulty_vits_class` makes our FastVITS
with faults injected (NaN loss, NaN gradient, SIGTERM, out-of-memory), to register as a ``tts`` choice. Tests use ``token_type: char`` and
``cleaner: none`` so that they do not depend on the text frontend.
"""

import os
import signal
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
import soundfile
import torch
import yaml

from helpers.tiny_configs import tiny_tts_conf

from espnet2_vits_ext.vits.fast_vits import FastVITS

SAMPLING_RATE = 16000
LETTERS = "abcdefgh"
TOKENS = ["<blank>", "<unk>", *LETTERS, "<sos/eos>"]


def _write_split(directory: Path, prefix: str, utt_ids: List[str], rng) -> Dict[str, Path]:
    wav_lines, text_lines, speech_shape, text_shape = [], [], [], []
    for utt_id in utt_ids:
        samples = int(rng.integers(800, 1600)) // 16 * 16  # whole hops of 16 samples
        time = np.arange(samples) / SAMPLING_RATE
        wav = 0.3 * np.sin(2 * np.pi * rng.uniform(150, 400) * time)
        wav += 0.01 * rng.standard_normal(samples)
        path = directory / f"{utt_id}.wav"
        soundfile.write(path, wav.astype(np.float32), SAMPLING_RATE)
        text = "".join(rng.choice(list(LETTERS), size=int(rng.integers(4, 9))))
        wav_lines.append(f"{utt_id} {path}")
        text_lines.append(f"{utt_id} {text}")
        speech_shape.append(f"{utt_id} {samples}")
        text_shape.append(f"{utt_id} {len(text)}")
    files = dict(
        wav_scp=directory / f"{prefix}wav.scp",
        text=directory / f"{prefix}text",
        speech_shape=directory / f"{prefix}speech_shape",
        text_shape=directory / f"{prefix}text_shape.char",
    )
    for name, lines in (
        ("wav_scp", wav_lines), ("text", text_lines),
        ("speech_shape", speech_shape), ("text_shape", text_shape),
    ):
        files[name].write_text("\n".join(lines) + "\n")
    return files


def write_tiny_corpus(directory: Path, utterances: int = 6, seed: int = 0) -> Dict[str, Path]:
    """Sine clips of 0.05-0.1 s with 4-8 letter texts: ``utterances`` for training and
    2 more for validation. Returns the file paths by name (``valid_<name>`` for the
    validation set) and the token list ``tokens``."""
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    files = _write_split(directory, "", [f"utt{i:02d}" for i in range(utterances)], rng)
    valid = _write_split(directory, "valid_", ["dev00", "dev01"], rng)
    files.update({f"valid_{name}": path for name, path in valid.items()})
    files["tokens"] = directory / "tokens.txt"
    files["tokens"].write_text("\n".join(TOKENS) + "\n")
    return files


def write_tiny_config(path: Path, tts: str = "fast_vits", **overrides) -> Path:
    """A training config for the tiny model; ``overrides`` replace top-level keys."""
    optimizer = dict(lr=2.0e-4, betas=[0.8, 0.99], eps=1.0e-9, weight_decay=0.0)
    config = dict(
        tts=tts,
        tts_conf=tiny_tts_conf(),
        feats_extract="linear_spectrogram",
        feats_extract_conf=dict(n_fft=64, hop_length=16, win_length=None),
        optim="adamw",
        optim_conf=optimizer,
        optim2="adamw",
        optim2_conf=dict(optimizer),
        scheduler="exponentiallr",
        scheduler_conf=dict(gamma=0.999),
        scheduler2="exponentiallr",
        scheduler2_conf=dict(gamma=0.999),
        generator_first=False,
        batch_type="sorted",
        batch_size=2,
        max_epoch=2,
        num_workers=0,
        seed=0,
        log_interval=1,
        use_tensorboard=False,
        use_matplotlib=False,
        num_att_plot=0,
        best_model_criterion=[["train", "total_count", "max"]],
        keep_nbest_models=1,
        token_type="char",
        cleaner=None,
        g2p=None,
    )
    config.update(overrides)
    path.write_text(yaml.safe_dump(config))
    return path


def train_args(
    corpus: Dict[str, Path], config: Path, output_dir: Path, extra: Optional[List[str]] = None
) -> List[str]:
    """Arguments of the training entry point on the tiny corpus."""
    args = [
        "--config", str(config),
        "--output_dir", str(output_dir),
        "--token_list", str(corpus["tokens"]),
        "--ngpu", "0",
        "--resume", "true",
    ]
    for split, prefix in (("train", ""), ("valid", "valid_")):
        args += [
            f"--{split}_data_path_and_name_and_type", f"{corpus[prefix + 'text']},text,text",
            f"--{split}_data_path_and_name_and_type",
            f"{corpus[prefix + 'wav_scp']},speech,sound",
            f"--{split}_shape_file", str(corpus[prefix + "text_shape"]),
            f"--{split}_shape_file", str(corpus[prefix + "speech_shape"]),
        ]
    return args + list(extra or [])


class FaultPlan:
    """Which training calls of the generator turn (counted from 1) get which fault."""

    def __init__(self, nan_calls=(), nan_gradient_calls=(), sigterm_calls=(), oom_above_samples=None):
        self.nan_calls = set(nan_calls)
        self.nan_gradient_calls = set(nan_gradient_calls)  # finite loss, one NaN gradient
        self.sigterm_calls = set(sigterm_calls)
        self.oom_above_samples = oom_above_samples
        self.calls = 0
        self.autocast_dtypes = set()  # of the training calls: None when autocast is off


def _poison_next_gradient(parameter: torch.nn.Parameter) -> None:
    """Make the next gradient computed for ``parameter`` NaN, leaving the loss finite."""
    poisoned = False

    def to_nan(gradient):
        nonlocal poisoned
        if poisoned:
            return gradient
        poisoned = True
        return gradient * float("nan")

    parameter.register_hook(to_nan)


def faulty_vits_class(plan: FaultPlan):
    class FaultyVITS(FastVITS):
        """Our FastVITS, with the faults of ``plan`` injected into training."""

        def forward(self, *args, forward_generator: bool = True, **kwargs):
            speech = kwargs["speech"]
            if self.training and plan.oom_above_samples is not None:
                if speech.numel() > plan.oom_above_samples:
                    raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 9 GiB")
            output = super().forward(*args, forward_generator=forward_generator, **kwargs)
            if self.training:
                autocast = torch.is_autocast_enabled(speech.device.type)
                plan.autocast_dtypes.add(
                    torch.get_autocast_dtype(speech.device.type) if autocast else None
                )
            if self.training and forward_generator:
                plan.calls += 1
                if plan.calls in plan.nan_calls:
                    output["loss"] = output["loss"] * float("nan")
                    output["stats"]["generator_mel_loss"] = float("nan")
                if plan.calls in plan.nan_gradient_calls:
                    _poison_next_gradient(next(self.generator.parameters()))
                if plan.calls in plan.sigterm_calls:
                    os.kill(os.getpid(), signal.SIGTERM)
            return output

    return FaultyVITS
