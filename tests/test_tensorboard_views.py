"""TensorBoard views of a validation utterance, bf16 training and counted skipped steps.

One tiny training run (CPU, ``--precision bf16``, one NaN iteration injected) with
``--use_tensorboard true``; its event files are read back with TensorBoard's own reader.
"""

from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from espnet2_vits_ext.train.checkpoint import RESUME_KEY, CheckpointStore
from espnet2_vits_ext.train.errors import InvalidOptionError
from espnet2_vits_ext.train.precision import BFloat16Autocast, resolve_precision
from espnet2_vits_ext.train.tensorboard_views import TAG
from helpers.tiny_training import (
    SAMPLING_RATE,
    FaultPlan,
    faulty_vits_class,
    train_args,
    write_tiny_config,
    write_tiny_corpus,
)

ITERATIONS = 3  # one epoch of 6 utterances in batches of 2


def _events(directory: Path) -> EventAccumulator:
    accumulator = EventAccumulator(str(directory), size_guidance={"images": 0, "audio": 0})
    accumulator.Reload()
    return accumulator


@pytest.fixture(scope="module")
def tensorboard_run(tmp_path_factory):
    """Output directory and fault plan of a one-epoch bf16 run, NaN at iteration 2."""
    from espnet2.tasks.gan_tts import tts_choices

    from espnet2_vits_ext.bin.gan_tts_train import main

    root = tmp_path_factory.mktemp("tensorboard")
    corpus = write_tiny_corpus(root / "data", utterances=6)
    plan = FaultPlan(nan_calls={2})
    tts_choices.classes["faulty_vits"] = faulty_vits_class(plan)
    try:
        config = write_tiny_config(
            root / "train.yaml", tts="faulty_vits", max_epoch=1, use_tensorboard=True
        )
        output_dir = root / "exp"
        # no memory check: its trial steps would count as calls of the faulty model
        options = ["--precision", "bf16", "--oom_scan_batches", "0"]
        main(train_args(corpus, config, output_dir, options))
    finally:
        del tts_choices.classes["faulty_vits"]
    return output_dir, plan


def test_views_hold_spectrograms_alignment_and_audio(tensorboard_run):
    output_dir, _ = tensorboard_run
    events = _events(output_dir / "tensorboard" / "samples")
    assert set(events.Tags()["images"]) == {f"{TAG}/spectrogram", f"{TAG}/alignment"}
    for tag in events.Tags()["images"]:
        (image,) = events.Images(tag)
        assert image.step == ITERATIONS and image.width > 100 and image.height > 100
        assert image.encoded_image_string.startswith(b"\x89PNG")
    assert set(events.Tags()["audio"]) == {
        f"{TAG}/real", f"{TAG}/reconstructed", f"{TAG}/synthesized"
    }
    for tag in events.Tags()["audio"]:
        (audio,) = events.Audio(tag)
        assert audio.step == ITERATIONS and audio.sample_rate == SAMPLING_RATE
        assert audio.length_frames > 0 and audio.encoded_audio_string.startswith(b"RIFF")
    # the real clip is the first validation utterance, unpadded
    valid_lengths = [
        int(line.split()[1])
        for line in (output_dir.parent / "data" / "valid_speech_shape").read_text().splitlines()
    ]
    assert events.Audio(f"{TAG}/real")[0].length_frames in valid_lengths


def test_skipped_steps_are_counted_in_tensorboard_and_checkpoint(tensorboard_run):
    output_dir, _ = tensorboard_run
    train = _events(output_dir / "tensorboard" / "train")
    counts = [(e.step, e.value) for e in train.Scalars("nonfinite_skipped_steps")]
    # per iteration (log_interval 1), the counter reported by the generator turn: how many
    # were skipped before it; then ESPnet's epoch average, at the epoch's last step
    assert counts[:3] == [(1, 0.0), (2, 0.0), (3, 1.0)]
    assert counts[3:] == [(3, pytest.approx(1 / 3))]
    _, path = CheckpointStore(output_dir / "checkpoints").complete()[0]
    states = torch.load(path, weights_only=False)
    assert states[RESUME_KEY]["skipped_steps"] == 1
    generator_steps = {int(s["step"]) for s in states["optimizers"][0]["state"].values()}
    assert generator_steps == {ITERATIONS - 1}


def test_bf16_training_runs_the_model_under_bf16_autocast(tensorboard_run):
    _, plan = tensorboard_run
    assert plan.autocast_dtypes == {torch.bfloat16}


def test_precision_options(monkeypatch):
    assert resolve_precision(None, use_amp=False, ngpu=0) == "fp32"
    assert resolve_precision(None, use_amp=True, ngpu=1) == "fp16"
    with pytest.raises(ValueError, match="--use_amp true means fp16"):
        resolve_precision("bf16", use_amp=True, ngpu=1)
    with pytest.raises(ValueError, match="needs a GPU"):
        resolve_precision("fp16", use_amp=False, ngpu=0)
    # A GPU without bfloat16 units (a V100): bf16 is refused, fp16 still allowed.
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda: "Tesla V100-SXM2-16GB")
    with pytest.raises(ValueError, match=r"this GPU \(Tesla V100-SXM2-16GB\) has no native bfloat16"):
        resolve_precision("bf16", use_amp=False, ngpu=1)
    assert resolve_precision("fp16", use_amp=False, ngpu=1) == "fp16"
    assert resolve_precision("bf16", use_amp=False, ngpu=0) == "bf16"
    layer = BFloat16Autocast(torch.nn.Linear(4, 4))
    assert layer(torch.randn(2, 4)).dtype == torch.bfloat16
    assert [name for name, _ in layer.named_parameters()] == ["module.weight", "module.bias"]


def test_contradicting_options_stop_before_training(tmp_path, capsys):
    from espnet2_vits_ext.bin.gan_tts_train import main

    corpus = write_tiny_corpus(tmp_path / "data", utterances=2)
    config = write_tiny_config(tmp_path / "train.yaml")
    args = train_args(corpus, config, tmp_path / "exp", ["--precision", "fp16"])
    with pytest.raises(SystemExit) as stopped:
        main(args)
    assert stopped.value.code == InvalidOptionError.exit_code
    assert not (tmp_path / "exp").exists()
