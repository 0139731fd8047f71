"""Resuming inside an epoch: the batches still to do, the statistics already gathered.

ESPnet builds each epoch's batches deterministically from the seed and the epoch, so a
run resumed after ``n`` iterations of an epoch rebuilds that epoch's loader and drops its
first ``n`` batches (:func:`skip_batches`), and restores the epoch's partial statistics
into the new ``SubReporter`` (:func:`partial_statistics`, :func:`restore_statistics`).
"""

import itertools
import logging
import time
from collections import defaultdict
from typing import Dict, Optional

from torch.utils.data import DataLoader


class EpochBatches:
    """The training iterator as the loop sees it; has the length of the whole epoch."""

    def __init__(self, generator, length: Optional[int]):
        self._generator = generator
        self._length = length

    def __iter__(self):
        return self._generator

    def __len__(self) -> int:
        if self._length is None:
            raise TypeError("length unknown")
        return self._length


def skip_batches(iterator, count: int):
    """``iterator`` without its first ``count`` batches, without loading them if possible."""
    if count == 0:
        return iterator
    if isinstance(iterator, DataLoader) and isinstance(iterator.batch_sampler, list):
        return DataLoader(
            iterator.dataset,
            batch_sampler=iterator.batch_sampler[count:],
            num_workers=iterator.num_workers,
            collate_fn=iterator.collate_fn,
            pin_memory=iterator.pin_memory,
            worker_init_fn=iterator.worker_init_fn,
            timeout=iterator.timeout,
            prefetch_factor=iterator.prefetch_factor,
            persistent_workers=iterator.persistent_workers,
        )
    logging.warning(f"Loading and dropping the {count} batches done before the resume")
    return itertools.islice(iterator, count, None)


def iterator_length(iterator) -> Optional[int]:
    try:
        return len(iterator)
    except TypeError:
        return None




def partial_statistics(sub_reporter) -> Dict:
    """What an ESPnet ``SubReporter`` gathered so far in its epoch."""
    return dict(
        stats=dict(sub_reporter.stats),
        count=sub_reporter.count,
        total_count=sub_reporter.total_count,
        elapsed=time.perf_counter() - sub_reporter.start_time,
    )


def restore_statistics(sub_reporter, partial: Dict) -> None:
    """Put :func:`partial_statistics` back into a fresh ``SubReporter`` of the same epoch."""
    sub_reporter.stats = defaultdict(list, partial["stats"])
    sub_reporter.count = partial["count"]
    sub_reporter.total_count = partial["total_count"]
    sub_reporter.start_time = time.perf_counter() - partial["elapsed"]
