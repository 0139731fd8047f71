"""Find out before epoch 1, not at hour 5, that the batches do not fit in memory.

:func:`try_largest_batches` runs one forward and backward pass of both GAN turns on the
largest batches of the training iterator (by padded size: utterances times the longest
speech length, read from the shape file), without an optimizer step, and restores the
model's buffers and the random generators afterwards. An out-of-memory error there, or
later in training, becomes a :class:`TrainingOutOfMemoryError` whose message names the
limit to lower.
"""

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import torch
from torch.utils.data import DataLoader

from espnet2_vits_ext.train.errors import TrainingOutOfMemoryError, naming_unalignable_utterances

_CPU_OOM_MARKERS = ("out of memory", "can't allocate memory", "not enough memory")


@dataclass
class BatchLimits:
    """The options that bound a batch's memory, quoted in the error message."""

    batch_type: str
    batch_size: int
    batch_bins: int


def is_out_of_memory(error: BaseException) -> bool:
    """CUDA/CPU allocator failures (``torch.OutOfMemoryError`` or their RuntimeErrors)."""
    if isinstance(error, (torch.OutOfMemoryError, MemoryError)):
        return True
    return isinstance(error, RuntimeError) and any(
        marker in str(error).lower() for marker in _CPU_OOM_MARKERS
    )


def out_of_memory_message(
    where: str, utt_ids: Sequence[str], longest: Optional[int], limits: BatchLimits, error
) -> str:
    if limits.batch_type in ("numel", "length"):
        batch_limit = f"--batch_bins (now {limits.batch_bins}, --batch_type {limits.batch_type})"
    else:
        batch_limit = f"--batch_size (now {limits.batch_size}, --batch_type {limits.batch_type})"
    size = f"{len(utt_ids)} utterances"
    if longest is not None:
        size += f", the longest {longest} samples"
    first = ", ".join(list(utt_ids)[:3]) + (" ..." if len(utt_ids) > 3 else "")
    cause = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return (
        f"Out of memory {where}, on a batch of {size} ({first}): {cause}. "
        f"Lower one of: {batch_limit}; the generator's segment_size "
        f"(tts_conf: generator_params: segment_size); or the longest training utterance "
        f"(the recipe's maximum duration filter). Then rerun with --resume true."
    )


def read_speech_lengths(shape_files: Sequence[str]) -> Dict[str, int]:
    """Per-utterance speech length from ESPnet's shape files (``utt_id length[,dim]``)."""
    if not shape_files:
        return {}
    speech = [f for f in shape_files if Path(f).name.startswith("speech")]
    path = Path(speech[0] if speech else shape_files[-1])
    lengths = {}
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            fields = line.split()
            if len(fields) != 2:
                raise ValueError(f"{path}:{number}: expected 'utt_id length', got {line!r}")
            lengths[fields[0]] = int(fields[1].split(",")[0])
    return lengths


def _largest(batches: Sequence[Sequence[str]], lengths: Dict[str, int], count: int):
    def padded_size(batch):
        return len(batch) * max(lengths.get(u, 0) for u in batch)

    return sorted(batches, key=padded_size, reverse=True)[:count]


def _trial_step(model, batch: Dict[str, torch.Tensor], device: str, autocast_dtype) -> None:
    for forward_generator in (False, True):
        model.zero_grad(set_to_none=True)
        with torch.autocast(device, dtype=autocast_dtype, enabled=autocast_dtype is not None):
            output = model(forward_generator=forward_generator, **batch)
        output["loss"].backward()
        del output
    model.zero_grad(set_to_none=True)


def try_largest_batches(
    model: torch.nn.Module,
    loader,
    shape_files: Sequence[str],
    count: int,
    device: str,
    limits: BatchLimits,
    autocast_dtype: Optional[torch.dtype] = None,
) -> None:
    """One trial step on each of the ``count`` largest batches; raise on out-of-memory.

    Args:
        model: ESPnet's model, as the training loop calls it.
        loader: the epoch-1 ``DataLoader`` of ESPnet's training iterator factory.
        shape_files: ESPnet's ``--train_shape_file`` values.
        autocast_dtype: the training precision's autocast type (``None`` for fp32).
    """
    from espnet2.torch_utils.device_funcs import to_device

    batches = getattr(loader, "batch_sampler", None)
    if count <= 0 or not isinstance(loader, DataLoader) or not isinstance(batches, list):
        logging.info("Skipping the memory check of the largest batches")
        return
    lengths = read_speech_lengths(shape_files)
    chosen: List[Sequence[str]] = _largest(batches, lengths, count)
    buffers = {name: b.detach().clone() for name, b in model.named_buffers()}
    was_training = model.training
    model.train()
    with torch.random.fork_rng(devices=[torch.cuda.current_device()] if device == "cuda" else []):
        for utt_ids in chosen:
            trial = DataLoader(
                loader.dataset, batch_sampler=[utt_ids], collate_fn=loader.collate_fn
            )
            _, batch = next(iter(trial))
            longest = max((lengths.get(u, 0) for u in utt_ids), default=None) or None
            logging.info(
                f"Memory check: a training step on {len(utt_ids)} utterances "
                f"(longest {longest} samples)"
            )
            try:
                with naming_unalignable_utterances(lambda: utt_ids):
                    _trial_step(model, to_device(batch, device), device, autocast_dtype)
            except (RuntimeError, MemoryError) as error:
                if not is_out_of_memory(error):
                    raise
                model.zero_grad(set_to_none=True)
                raise TrainingOutOfMemoryError(
                    out_of_memory_message(
                        "in the memory check before epoch 1", utt_ids, longest, limits, error
                    )
                ) from error
    with torch.no_grad():
        for name, buffer in model.named_buffers():
            buffer.copy_(buffers[name])
    model.train(was_training)
