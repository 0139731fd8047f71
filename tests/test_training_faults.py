"""Training survives kills, NaNs, out-of-memory and full disks, on the tiny model (CPU).

Every run trains 6 sine clips, 3 iterations per epoch, 2 epochs = 6 iterations, with a
checkpoint every 2 iterations. An uninterrupted run (module fixture) is the reference:
interrupted and resumed runs must end with the same iteration count, the same number of
optimizer steps and the same weights. Faults are injected by a subclass of ESPnet's VITS
(registered as ``tts: faulty_vits``) or by patching the checkpoint writer.
"""

import errno
import logging
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from espnet2_vits_ext.train import checkpoint as ckpt
from espnet2_vits_ext.train.checkpoint import RESUME_KEY, CheckpointStore, Position
from espnet2_vits_ext.train.memory import is_out_of_memory
from tiny_training import (
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

    # 3. Resumed again, to the end: same result as never interrupted.
    with caplog.at_level(logging.INFO):
        _train(args)
    assert "Resumed from" in caplog.text
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
