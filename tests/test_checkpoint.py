"""Checkpoint files: atomic writes, checksums, rotation, choice of the checkpoint to resume.

Training-level behaviour (kills, resume with the same step count) is in
``test_training_faults.py``; here the building blocks, without a model.
"""

import errno
import logging
import os
import random
import re

import numpy as np
import pytest
import torch

from espnet2_vits_ext.train import checkpoint as ckpt
from espnet2_vits_ext.train.checkpoint import (
    RESUME_KEY,
    CheckpointStore,
    Position,
    atomic_torch_save,
    capture_rng_state,
    choose_resume_checkpoint,
    restore_rng_state,
    verify_checkpoint,
)
from espnet2.train.reporter import Reporter
from espnet2_vits_ext.train.epoch_models import repair_epoch_models
from espnet2_vits_ext.train.errors import (
    CheckpointWriteError,
    DamagedEpochModelError,
    NothingToResumeError,
)


def _states(value: float, position: Position) -> dict:
    """A checkpoint dict shaped like the trainer's, small."""
    return dict(
        model={"weight": torch.full((64,), value)},
        reporter=dict(stats={}, epoch=position.epoch - 1),
        optimizers=[],
        schedulers=[],
        scaler=None,
        **{RESUME_KEY: dict(position=tuple(position))},
    )


def _temp_files(directory):
    return [p for p in directory.iterdir() if ".tmp-" in p.name]


def test_atomic_save_round_trip_and_checksum(tmp_path):
    path = atomic_torch_save({"x": torch.arange(10)}, tmp_path / "a.pth")
    assert verify_checkpoint(path) is None
    assert torch.equal(torch.load(path)["x"], torch.arange(10))
    sidecar = (tmp_path / "a.pth.sha256").read_text().split()
    assert sidecar == [ckpt.sha256_of_file(path), "a.pth"]  # sha256sum -c format
    assert _temp_files(tmp_path) == []


@pytest.mark.parametrize("damage", ["truncate", "flip_byte", "no_sidecar"])
def test_damaged_checkpoint_is_detected(tmp_path, damage):
    path = atomic_torch_save({"x": torch.randn(100)}, tmp_path / "a.pth")
    data = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "flip_byte":
        path.write_bytes(data[:100] + bytes([data[100] ^ 0xFF]) + data[101:])
    else:
        (tmp_path / "a.pth.sha256").unlink()
    problem = verify_checkpoint(path)
    expected = "missing" if damage == "no_sidecar" else "truncated or corrupt"
    assert problem is not None and expected in problem


def test_disk_full_leaves_previous_checkpoint_and_no_partial_file(tmp_path, monkeypatch):
    store = CheckpointStore(tmp_path / "checkpoints")
    good = store.save(_states(1.0, Position(1, 2)), Position(1, 2))

    class FillingDisk:
        """A file whose writes fail with ENOSPC after 300 bytes, as on a full disk."""

        def __init__(self, raw):
            self.raw, self.written = raw, 0

        def write(self, data):
            self.written += len(data)
            if self.written > 300:
                raise OSError(errno.ENOSPC, "No space left on device")
            return self.raw.write(data)

        def __getattr__(self, name):
            return getattr(self.raw, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc_info):
            self.raw.close()

    monkeypatch.setattr(ckpt, "open", lambda *a: FillingDisk(open(*a)), raising=False)
    with pytest.raises(CheckpointWriteError) as caught:
        store.save(_states(2.0, Position(1, 4)), Position(1, 4))
    message = str(caught.value)
    assert str(store.path_for(Position(1, 4))) in message
    assert "No space left on device" in message and "--resume true" in message
    assert not store.path_for(Position(1, 4)).exists()
    assert _temp_files(store.directory) == []
    assert [p for _, p in store.complete()] == [good] and verify_checkpoint(good) is None


def test_unwritable_directory_is_named(tmp_path):
    blocked = tmp_path / "checkpoints"
    blocked.write_text("a file where the checkpoint directory should be")
    with pytest.raises(CheckpointWriteError, match=str(blocked)):
        CheckpointStore(blocked).save(_states(1.0, Position(1, 1)), Position(1, 1))


def test_store_keeps_the_newest_and_removes_leftovers(tmp_path):
    store = CheckpointStore(tmp_path / "checkpoints", keep=2)
    positions = [Position(1, 2), Position(1, 4), Position(2, 0)]
    for index, position in enumerate(positions):
        store.save(_states(float(index), position), position)
    assert [pos for pos, _ in store.complete()] == [Position(2, 0), Position(1, 4)]
    # traces of a write killed before its rename, and of one killed before its sidecar
    (store.directory / ".ep0002.it0000002.pth.tmp-123").write_bytes(b"partial")
    (store.directory / "ep0002.it0000002.pth").write_bytes(b"unsealed")
    assert len(store.leftovers()) == 2
    store.remove_leftovers()
    assert store.leftovers() == []
    assert [pos for pos, _ in store.complete()] == [Position(2, 0), Position(1, 4)]


def test_resume_skips_corrupt_newest_and_names_it(tmp_path, caplog):
    store = CheckpointStore(tmp_path / "checkpoints")
    store.save(_states(1.0, Position(1, 2)), Position(1, 2))
    newest = store.save(_states(2.0, Position(2, 0)), Position(2, 0))
    newest.write_bytes(newest.read_bytes()[:-50])
    # ESPnet's own checkpoint.pth, truncated by a kill during its plain torch.save
    espnet = tmp_path / "checkpoint.pth"
    torch.save(_states(3.0, Position(2, 0)), espnet)
    espnet.write_bytes(espnet.read_bytes()[:200])
    with caplog.at_level(logging.ERROR):
        choice = choose_resume_checkpoint(tmp_path, store)
    assert choice.position == Position(1, 2)
    assert choice.path == store.path_for(Position(1, 2))
    assert str(newest) in caplog.text and "truncated or corrupt" in caplog.text
    assert str(espnet) in caplog.text and "cannot be loaded" in caplog.text


def test_resume_prefers_the_most_advanced_checkpoint(tmp_path):
    store = CheckpointStore(tmp_path / "checkpoints")
    store.save(_states(1.0, Position(2, 1)), Position(2, 1))
    espnet_states = _states(3.0, Position(3, 0))
    del espnet_states[RESUME_KEY]  # as ESPnet writes it: position from the reporter
    torch.save(espnet_states, tmp_path / "checkpoint.pth")
    choice = choose_resume_checkpoint(tmp_path, store)
    assert choice.path == tmp_path / "checkpoint.pth" and choice.position == Position(3, 0)


def test_resume_refuses_to_start_over_silently(tmp_path):
    store = CheckpointStore(tmp_path / "checkpoints")
    assert choose_resume_checkpoint(tmp_path, store) is None  # a fresh directory
    torch.save({"weight": torch.zeros(2)}, tmp_path / "3epoch.pth")
    with pytest.raises(NothingToResumeError, match="3epoch.pth"):
        choose_resume_checkpoint(tmp_path, store)


def test_rng_state_round_trip():
    state = capture_rng_state()
    first = (torch.rand(3), np.random.rand(3), random.random())
    restore_rng_state(state)
    second = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(first[0], second[0])
    assert np.array_equal(first[1], second[1]) and first[2] == second[2]


def test_damaged_epoch_models_are_rebuilt_or_named(tmp_path, caplog):
    reporter = Reporter(epoch=2)  # epochs 1 and 2 finished
    first, second = tmp_path / "1epoch.pth", tmp_path / "2epoch.pth"
    torch.save({"weight": torch.full((64,), 1.0)}, first)
    torch.save({"weight": torch.full((64,), 2.0)}, second)
    second.write_bytes(second.read_bytes()[:100])  # its write was cut short
    (tmp_path / "latest.pth").symlink_to(first.name)  # ESPnet had not relinked it yet
    end_of_second = {"weight": torch.full((64,), 2.0)}
    sources = {2: (tmp_path / "checkpoint.pth", end_of_second)}

    with caplog.at_level(logging.WARNING):
        repair_epoch_models(tmp_path, reporter, sources.get, [])
    assert f"Epoch model {second} is damaged: it cannot be loaded" in caplog.text
    torch.testing.assert_close(torch.load(second, weights_only=True), end_of_second)
    assert os.readlink(tmp_path / "latest.pth") == second.name

    # damaged, and no checkpoint of its epoch's end is left: stop, naming it
    first.write_bytes(first.read_bytes()[:100])
    with pytest.raises(DamagedEpochModelError) as stopped:
        repair_epoch_models(tmp_path, reporter, sources.get, [])
    assert re.match(
        re.escape(f"Epoch model {first} is damaged: it cannot be loaded")
        + ".*no checkpoint of the end of epoch 1 is left", str(stopped.value)
    )
    # removed (ESPnet drops models outside the n best): nothing to do
    first.unlink()
    repair_epoch_models(tmp_path, reporter, sources.get, [])
