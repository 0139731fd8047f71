"""Shared fixtures. The tiny configurations themselves are in ``helpers/tiny_configs.py``."""

import os

import pytest
import torch

from helpers.tiny_configs import tiny_tts_conf

# Tests run on CPU with few threads; keep them deterministic and quiet.
torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))


@pytest.fixture
def tiny_conf() -> dict:
    """A fresh copy of the tiny ``tts_conf`` (tests may modify it)."""
    return tiny_tts_conf()
