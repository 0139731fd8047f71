"""Training survives kills, NaNs, out-of-memory and full disks, on the tiny model (CPU).

Every run trains 6 sine clips, 3 iterations per epoch, 2 epochs = 6 iterations, with a
checkpoint every 2 iterations. An uninterrupted run (module fixture) is the reference:
interrupted and resumed runs must end with the same iteration count, the same number of
optimizer steps and the same weights. Faults are injected by a subclass of ESPnet's VITS
(registered as ``tts: faulty_vits``) or by patching the checkpoint writer.
"""

import errno
import io
import logging
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch

from espnet2_vits_ext.train import checkpoint as ckpt
from espnet2_vits_ext.train.checkpoint import RESUME_KEY, CheckpointStore, Position
from espnet2_vits_ext.train.memory import is_out_of_memory
from espnet2_vits_ext.train.nonfinite import AMP_OVERFLOW_STAT, SKIPPED_STAT, NonFiniteGuard
from helpers.tiny_training import (
    SAMPLING_RATE,
    FaultPlan,
    faulty_vits_class,
    train_args,
    write_tiny_config,
    write_tiny_corpus,
)

REPO = Path(__file__).resolve().parents[1]
EPOCHS, ITERATIONS_PER_EPOCH = 2, 3
OPTIONS = ["--checkpoint_interval_iters", "2", "--oom_scan_batches", "1"]
# The memory check's trial steps would count as calls of the faulty model: off for those
# runs (and so the reference, which has it, also shows that it leaves no trace).
FAULT_OPTIONS = OPTIONS + ["--oom_scan_batches", "0"]


def _train(args):
    from espnet2_vits_ext.bin.gan_tts_train import main

    main(args)


def _final(output_dir: Path):
    """Position and states of the newest complete checkpoint of a run."""
    position, path = CheckpointStore(output_dir / "checkpoints").complete()[0]
    return position, torch.load(path, weights_only=False)


def _summary(states) -> dict:
    """What an interrupted run must reproduce: iteration and optimizer step counts."""
    last_epoch = max(states["reporter"]["stats"])
    return dict(
        iterations=states["reporter"]["stats"][last_epoch]["train"]["total_count"],
        steps=[
            sorted({int(s["step"]) for s in optimizer["state"].values()})
            for optimizer in states["optimizers"]
        ],
    )


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return write_tiny_corpus(tmp_path_factory.mktemp("corpus"), utterances=6)


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    return write_tiny_config(tmp_path_factory.mktemp("conf") / "train.yaml", max_epoch=EPOCHS)


@pytest.fixture(scope="module")
def reference(corpus, config, tmp_path_factory):
    """The uninterrupted run: its output directory and final checkpoint."""
    output_dir = tmp_path_factory.mktemp("reference") / "exp"
    _train(train_args(corpus, config, output_dir, OPTIONS))
    position, states = _final(output_dir)
    assert position == Position(EPOCHS + 1, 0)
    summary = _summary(states)
    assert summary["iterations"] == EPOCHS * ITERATIONS_PER_EPOCH
    assert summary["steps"] == [[EPOCHS * ITERATIONS_PER_EPOCH]] * 2  # generator, discriminator
    return output_dir, states


def _assert_same_as_reference(output_dir: Path, reference):
    reference = reference[1]
    position, states = _final(output_dir)
    assert position == Position(EPOCHS + 1, 0)
    assert _summary(states) == _summary(reference)
    for name, weight in reference["model"].items():
        torch.testing.assert_close(states["model"][name], weight, rtol=0, atol=0, msg=name)


@pytest.fixture
def faulty_config(tmp_path, monkeypatch):
    """Register ``tts: faulty_vits`` with a fault plan; return a config that uses it."""
    from espnet2.tasks.gan_tts import tts_choices

    def make(plan: FaultPlan, **overrides):
        monkeypatch.setitem(tts_choices.classes, "faulty_vits", faulty_vits_class(plan))
        return write_tiny_config(
            tmp_path / "faulty.yaml", tts="faulty_vits", max_epoch=EPOCHS, **overrides
        )

    return make


def _kill_during_checkpoint_write_script(tmp_path: Path, write_number: int) -> Path:
    """A training runner that SIGKILLs itself once the temp file of a checkpoint is complete,
    right before its rename."""
    script = tmp_path / "die_in_checkpoint_write.py"
    script.write_text(
        "import os, signal, sys\n"
        "real_replace = os.replace\n"
        "writes = []\n"
        "def replace_or_die(source, target):\n"
        "    if os.path.basename(os.path.dirname(target)) == 'checkpoints' "
        "and str(target).endswith('.pth'):\n"
        "        writes.append(target)\n"
        f"        if len(writes) == {write_number}:\n"
        "            os.kill(os.getpid(), signal.SIGKILL)\n"
        "    return real_replace(source, target)\n"
        "os.replace = replace_or_die\n"
        "from espnet2_vits_ext.bin.gan_tts_train import main\n"
        "main(sys.argv[1:])\n"
    )
    return script


def _overall_iteration(epoch: int, iteration: int) -> int:
    return (epoch - 1) * ITERATIONS_PER_EPOCH + iteration


def _resumed_at(log_text: str) -> int:
    """Overall iteration of the position in the log's "Resumed from <path> (<position>)"."""
    position = re.search(r"Resumed from \S+ \(([^)]*)\)", log_text)[1]
    if position == "start of training":
        return 0
    end = re.fullmatch(r"end of epoch (\d+)", position)
    if end:
        return _overall_iteration(int(end[1]) + 1, 0)
    inside = re.fullmatch(r"epoch (\d+), iteration (\d+)", position)
    return _overall_iteration(int(inside[1]), int(inside[2]))


def test_sigkill_at_any_moment_then_resume_matches_uninterrupted_run(
    corpus, config, reference, tmp_path, caplog
):
    output_dir = tmp_path / "exp"
    args = train_args(corpus, config, output_dir, OPTIONS)
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))

    # 1. Killed inside a checkpoint write: the temp file is complete, not yet renamed.
    script = _kill_during_checkpoint_write_script(tmp_path, write_number=1)
    first = subprocess.run(
        [sys.executable, str(script), *args], env=env, cwd=REPO, capture_output=True, text=True
    )
    assert first.returncode == -signal.SIGKILL, first.stderr[-3000:]
    temp_files = [p.name for p in (output_dir / "checkpoints").glob(".*.tmp-*")]
    assert temp_files, "the kill should have left the temp file of the interrupted write"

    # 2. Resumed, then SIGKILLed at a random moment of its training.
    log_path = tmp_path / "second.log"
    with open(log_path, "w") as log:
        second = subprocess.Popen(
            [sys.executable, "-m", "espnet2_vits_ext.bin.gan_tts_train", *args],
            env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 300
        while "Resumed from" not in log_path.read_text() and second.poll() is None:
            assert time.monotonic() < deadline, "the resumed run did not start"
            time.sleep(0.05)
        delay = random.Random().uniform(0.0, 1.5)
        time.sleep(delay)
        assert second.poll() is None, f"the run ended before the kill {delay:.2f} s in"
        second.kill()
        second.wait()
    log_text = log_path.read_text()
    assert "left by an interrupted checkpoint write" in log_text, log_text[-3000:]
    # the first write in the store was the one killed: back to the initial checkpoint.pth
    assert "checkpoint.pth (start of training)" in log_text, log_text[-3000:]
    # ESPnet logs each finished iteration ("<epoch>epoch:train:<from>-<to>batch: ...")
    logged = re.findall(r"(\d+)epoch:train:\d+-(\d+)batch:", log_text)
    reached = _overall_iteration(*map(int, logged[-1])) if logged else 0

    # 3. Resumed again, to the end: same result as never interrupted, having redone at
    # most --checkpoint_interval_iters of the iterations the killed run had done.
    with caplog.at_level(logging.INFO):
        _train(args)
    resumed = _resumed_at(caplog.text)
    assert 0 <= reached - resumed <= 2, (reached, resumed, caplog.text[:3000])
    _assert_same_as_reference(output_dir, reference)


def test_corrupt_checkpoints_are_named_and_the_previous_good_one_is_used(
    corpus, config, reference, tmp_path, caplog
):
    output_dir = tmp_path / "exp"
    shutil.copytree(reference[0], output_dir, symlinks=True)
    store = CheckpointStore(output_dir / "checkpoints")
    newest, previous = [path for _, path in store.complete()]
    newest.write_bytes(newest.read_bytes()[:1000])
    espnet_checkpoint = output_dir / "checkpoint.pth"
    espnet_checkpoint.write_bytes(espnet_checkpoint.read_bytes()[:1000])

    with caplog.at_level(logging.INFO):
        _train(train_args(corpus, config, output_dir, FAULT_OPTIONS))
    assert f"Checkpoint {newest} is not used" in caplog.text
    assert "truncated or corrupt" in caplog.text
    assert f"Checkpoint {espnet_checkpoint} is not used" in caplog.text
    assert f"Resumed from {previous} (epoch {EPOCHS}, iteration 1)" in caplog.text
    _assert_same_as_reference(output_dir, reference)


class _Killed(BaseException):
    """Ends a run as SIGKILL would: no ``except`` of the trainer or the entry point runs."""


@pytest.mark.parametrize("fault", ["kill", "full disk"])
def test_epoch_model_cut_short_is_rebuilt_on_resume(
    fault, corpus, config, reference, tmp_path, caplog, monkeypatch
):
    output_dir = tmp_path / "exp"
    args = train_args(corpus, config, output_dir, FAULT_OPTIONS)
    epoch_model = output_dir / f"{EPOCHS}epoch.pth"
    real_save = torch.save

    def cut_short_while_writing_the_epoch_model(obj, target, *rest, **kwargs):
        if isinstance(target, (str, os.PathLike)) and Path(target) == epoch_model:
            whole = io.BytesIO()
            real_save(obj, whole)
            Path(target).write_bytes(whole.getvalue()[: len(whole.getvalue()) // 2])
            if fault == "kill":
                raise _Killed()
            raise OSError(errno.ENOSPC, "No space left on device", str(target))
        return real_save(obj, target, *rest, **kwargs)

    # ESPnet's end of the last epoch: checkpoint.pth complete, the epoch model cut short
    monkeypatch.setattr(torch, "save", cut_short_while_writing_the_epoch_model)
    if fault == "kill":
        with pytest.raises(_Killed):
            _train(args)
    else:
        with caplog.at_level(logging.ERROR), pytest.raises(SystemExit) as stopped:
            _train(args)
        assert stopped.value.code == 1
        assert f"CheckpointWriteError: Writing under {output_dir} failed" in caplog.text
    monkeypatch.undo()
    with pytest.raises(RuntimeError):
        torch.load(epoch_model, weights_only=True)
    assert os.readlink(output_dir / "latest.pth") == f"{EPOCHS - 1}epoch.pth"

    with caplog.at_level(logging.INFO):
        _train(args)
    assert f"Resumed from {output_dir / 'checkpoint.pth'} (end of epoch {EPOCHS})" in caplog.text
    assert f"Epoch model {epoch_model} is damaged: it cannot be loaded" in caplog.text
    rebuilt = torch.load(epoch_model, weights_only=True)
    expected = torch.load(reference[0] / epoch_model.name, weights_only=True)
    assert rebuilt.keys() == expected.keys()
    for name, weight in expected.items():
        torch.testing.assert_close(rebuilt[name], weight, rtol=0, atol=0, msg=name)
    # the links ESPnet makes after the write: the latest and the best epoch (this one)
    for link in ("latest.pth", "train.total_count.best.pth"):
        assert os.readlink(output_dir / link) == epoch_model.name, link
    _assert_same_as_reference(output_dir, reference)


def test_an_utterance_with_more_tokens_than_frames_is_named(config, tmp_path, caplog):
    corpus = write_tiny_corpus(tmp_path / "corpus", utterances=3)
    # 40 letters of text, 320 samples = 20 frames of 16 samples: it cannot be aligned
    wav = tmp_path / "corpus" / "long_text.wav"
    soundfile.write(wav, np.zeros(320, dtype=np.float32), SAMPLING_RATE)
    for name, line in (
        ("wav_scp", f"long_text {wav}"), ("text", "long_text " + "abcdefgh" * 5),
        ("speech_shape", "long_text 320"), ("text_shape", "long_text 40"),
    ):
        with open(corpus[name], "a") as f:
            f.write(line + "\n")

    args = train_args(corpus, config, tmp_path / "exp", FAULT_OPTIONS)
    with caplog.at_level(logging.ERROR), pytest.raises(SystemExit) as stopped:
        _train(args)
    assert stopped.value.code == 1
    error = caplog.records[-1].getMessage()
    assert error.startswith("UnalignableUtteranceError: monotonic alignment search")
    assert re.search(r"utterance long_text: 40 text tokens but only \d+ feature frames", error)
    assert "stage 4" in error and "batch index" not in error


def test_a_nonfinite_gradient_skips_the_step_and_counts_it(
    corpus, faulty_config, tmp_path, caplog
):
    # The generator's 2nd training call: finite loss, a NaN in one parameter's gradient.
    # No gradient clipping (as in VITS configs), so ESPnet does not look at the norm.
    output_dir = tmp_path / "exp"
    plan = FaultPlan(nan_gradient_calls={2})
    args = train_args(
        corpus, faulty_config(plan), output_dir,
        FAULT_OPTIONS + ["--max_epoch", "1", "--checkpoint_interval_iters", "1",
                         "--keep_checkpoints", "5", "--grad_clip", "-1"],
    )
    with caplog.at_level(logging.WARNING):
        _train(args)
    assert re.search(
        r"Skipped the optimizer step at epoch 1, iteration 2 .*: non-finite "
        r"generator turn: gradients\. Skipped 1 in a row .*, 1 in all", caplog.text
    ), caplog.text[-3000:]
    assert "The grad norm is nan" not in caplog.text  # (ESPnet's own check, with clipping)
    store = CheckpointStore(output_dir / "checkpoints")
    before, after = (
        torch.load(store.path_for(Position(1, i)), weights_only=False) for i in (1, 2)
    )
    assert after[RESUME_KEY]["skipped_steps"] == 1
    # (the forward pass updates the batch norms' running statistics all the same)
    statistics = ("running_mean", "running_var", "num_batches_tracked")
    generator = [
        k for k in before["model"] if k.startswith("tts.generator.") and not k.endswith(statistics)
    ]
    assert generator
    for name in generator:
        torch.testing.assert_close(after["model"][name], before["model"][name], msg=name)
    # the generator's Adam moments and step counts untouched; the discriminator stepped
    torch.testing.assert_close(after["optimizers"][0]["state"], before["optimizers"][0]["state"])
    steps = [
        {int(s["step"]) for s in states["optimizers"][1]["state"].values()}
        for states in (before, after)
    ]
    assert steps == [{1}, {2}]


def test_nonfinite_steps_stop_training_at_the_limit_after_a_checkpoint(
    corpus, faulty_config, tmp_path, caplog
):
    # (Single skipped steps, counted, are checked in test_tensorboard_views.py.)
    # NaN from the 4th iteration on: two in a row stop training, after a checkpoint.
    output_dir = tmp_path / "exp"
    plan = FaultPlan(nan_calls=range(4, 100))
    args = train_args(
        corpus, faulty_config(plan), output_dir,
        FAULT_OPTIONS + ["--max_consecutive_nonfinite_steps", "2"],
    )
    with caplog.at_level(logging.WARNING), pytest.raises(SystemExit) as stopped:
        _train(args)
    assert stopped.value.code == 1
    error = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR][-1]
    assert "NonFiniteTrainingError: 2 iterations in a row" in error
    assert "epoch 2, iteration 2 (5 overall)" in error
    assert "generator turn: loss, generator_mel_loss" in error
    saved = CheckpointStore(output_dir / "checkpoints").path_for(Position(2, 2))
    assert str(saved) in error and ckpt.verify_checkpoint(saved) is None
    assert torch.load(saved, weights_only=False)[RESUME_KEY]["skipped_steps"] == 2
    assert "Skipped the optimizer step at epoch 2, iteration 1" in caplog.text


def test_sigterm_saves_and_a_full_disk_is_reported_then_rerun_continues(
    corpus, config, faulty_config, reference, tmp_path, caplog, monkeypatch
):
    output_dir = tmp_path / "exp"
    store = CheckpointStore(output_dir / "checkpoints")
    # Preempted (SIGTERM) during the 2nd iteration: a checkpoint right after it, exit 143.
    plan = FaultPlan(sigterm_calls={2})
    args = train_args(corpus, faulty_config(plan), output_dir, FAULT_OPTIONS)
    with caplog.at_level(logging.ERROR), pytest.raises(SystemExit) as stopped:
        _train(args)
    assert stopped.value.code == 143
    assert "Stopped by SIGTERM at epoch 1, iteration 2" in caplog.text
    assert store.complete()[0][0] == Position(1, 2)

    # The disk fills up at the next checkpoint write, at the start of epoch 2: named,
    # nothing half-written left.
    real_open = open

    def open_on_full_disk(path, mode="r", *rest):
        if "w" in mode and "checkpoints" in str(path):
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real_open(path, mode, *rest)

    monkeypatch.setattr(ckpt, "open", open_on_full_disk, raising=False)
    caplog.clear()
    args = train_args(corpus, config, output_dir, OPTIONS)
    with caplog.at_level(logging.ERROR), pytest.raises(SystemExit) as stopped:
        _train(args)
    assert stopped.value.code == 1
    assert "CheckpointWriteError: Cannot write" in caplog.text
    assert str(store.path_for(Position(2, 0))) in caplog.text
    assert "No space left on device" in caplog.text
    assert store.leftovers() == [] and store.complete()[0][0] == Position(1, 2)

    # Space freed: the rerun continues to the same end as an uninterrupted run.
    monkeypatch.undo()
    _train(args)
    _assert_same_as_reference(output_dir, reference)


def test_out_of_memory_names_the_limits_to_lower(corpus, faulty_config, tmp_path, caplog):
    lengths = dict(line.split() for line in corpus["speech_shape"].read_text().splitlines())
    longest = max(lengths, key=lambda u: int(lengths[u]))
    # only a batch padded to the longest utterance (2 x its length) is too large
    plan = FaultPlan(oom_above_samples=2 * int(lengths[longest]) - 1)
    args = train_args(corpus, faulty_config(plan), tmp_path / "exp", OPTIONS)
    with caplog.at_level(logging.ERROR), pytest.raises(SystemExit) as stopped:
        _train(args)
    assert stopped.value.code == 1
    assert "Out of memory in the memory check before epoch 1" in caplog.text
    assert longest in caplog.text and f"longest {lengths[longest]} samples" in caplog.text
    assert "--batch_size (now 2, --batch_type sorted)" in caplog.text
    assert "segment_size" in caplog.text and "maximum duration" in caplog.text
    assert not (tmp_path / "exp" / "checkpoints").exists()  # stopped before training


def test_cpu_allocation_failures_count_as_out_of_memory():
    assert is_out_of_memory(
        RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: "
                     "can't allocate memory: you tried to allocate 1000000000000 bytes")
    )
    assert is_out_of_memory(torch.OutOfMemoryError("CUDA out of memory"))
    assert not is_out_of_memory(RuntimeError("shape mismatch"))


def test_grad_scaler_overflows_are_logged_and_do_not_count_as_skipped_steps():
    class OneWeight(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.weight = torch.nn.Parameter(torch.ones(1))

        def forward(self, forward_generator: bool = True):
            return dict(loss=2 * self.weight.sum(), stats={}, weight=1, optim_idx=0)

    model = OneWeight()
    guard = NonFiniteGuard(
        model, [torch.optim.Adam(model.parameters())], max_consecutive=1,
        uses_grad_scaler=True, amp_overflow_steps=3,  # 3 counted before a resume
    )
    with guard:
        model(forward_generator=True)["loss"].backward()
        # a GradScaler that finds inf in the scaled gradients does not call step()
        assert guard.end_iteration() is None
        stats = model(forward_generator=True)["stats"]
    assert stats == {SKIPPED_STAT: 0.0, AMP_OVERFLOW_STAT: 4.0}
    assert not guard.limit_reached
