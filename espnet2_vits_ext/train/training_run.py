"""The state of one :meth:`ResilientGANTrainer.run` and the bookkeeping that uses it.

ESPnet's ``Trainer`` cannot be instantiated: its loop calls class methods
(``cls.resume``, ``cls.train_one_epoch``, ``cls.validate_one_epoch``). So that two runs
never share state, :meth:`ResilientGANTrainer.run` makes one :class:`TrainingRun` and a
subclass of the trainer that carries it (:func:`trainer_bound_to`); ESPnet's loop is
handed that subclass, and every hook reads its run from there.
"""

import dataclasses
import logging
import signal
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional

import torch

from espnet2_vits_ext.train.batches import partial_statistics
from espnet2_vits_ext.train.checkpoint import (
    ESPNET_CHECKPOINT,
    RESUME_KEY,
    CheckpointStore,
    Position,
    ResumeChoice,
    atomic_torch_save,
    choose_resume_checkpoint,
    inspect_espnet_checkpoint,
    position_of,
    verify_checkpoint,
)
from espnet2_vits_ext.train.epoch_models import repair_epoch_models
from espnet2_vits_ext.train.errors import TrainingInterrupted
from espnet2_vits_ext.train.memory import BatchLimits
from espnet2_vits_ext.train.nonfinite import NonFiniteGuard
from espnet2_vits_ext.train.options import ResilientGANTrainerOptions
from espnet2_vits_ext.train.tensorboard_views import write_validation_views


def trainer_bound_to(trainer_class: type, run: "TrainingRun") -> type:
    """A subclass of ``trainer_class`` whose hooks use ``run``; one per run, never shared."""
    return type(trainer_class.__name__, (trainer_class,), {"training_run": run})


@dataclass
class TrainingRun:
    """What one run shares between ESPnet's calls into the trainer."""

    options: ResilientGANTrainerOptions
    store: CheckpointStore
    writes: bool  # rank 0 (or not distributed)
    distributed: bool = False
    choice: Optional[ResumeChoice] = None
    reporter: Any = None  # ESPnet's Reporter, handed to resume()
    model: Optional[torch.nn.Module] = None
    optimizers: Any = None
    schedulers: Any = None
    scaler: Any = None
    resume_state: Optional[Dict] = None  # the loaded checkpoint's RESUME_KEY entry
    last_saved: Optional[Position] = None  # newest position already saved, not to redo
    sigterm: bool = False
    guard: Optional[NonFiniteGuard] = None
    skipped_steps: int = 0
    amp_overflow_steps: int = 0
    train_reporter: Any = None  # the SubReporter of the epoch's training part
    end_of_train: Optional[Dict] = None  # position and RNG right after the training part
    batch_ids: List[str] = dataclasses.field(default_factory=list)
    example: Optional[Dict] = None  # the validation utterance of the TensorBoard views
    views_writer: Any = None

    @property
    def output_dir(self) -> Path:
        return Path(self.options.output_dir)

    def limits(self) -> BatchLimits:
        """The batch size options, as the memory check and its messages take them."""
        options = self.options
        return BatchLimits(options.batch_type, options.batch_size, options.batch_bins)

    # -- before ESPnet's loop ----------------------------------------------------------
    def choose_start(self) -> None:
        """Pick the checkpoint to resume from (or none) and clear what must not stay."""
        if self.writes:
            self.store.remove_leftovers()
        if self.options.resume:
            self.choice = choose_resume_checkpoint(self.output_dir, self.store)
        elif self.writes and (
            self.store.complete() or (self.output_dir / ESPNET_CHECKPOINT).exists()
        ):
            logging.warning(f"--resume false: replacing the checkpoints in {self.output_dir}")
            self.store.remove_all()
        if self.choice is not None:
            logging.info(f"Will resume from {self.choice.path} ({self.choice.position})")
        else:
            logging.info("Starting from scratch")

    def write_initial_espnet_checkpoint(self, model, optimizers, schedulers) -> None:
        """Write the initial state as ``checkpoint.pth`` where ESPnet would find none.

        ESPnet's ``run()`` calls ``resume()`` (our hook to its Reporter) only if this file
        exists.
        """
        espnet_checkpoint = self.output_dir / ESPNET_CHECKPOINT
        if not self.writes or (self.choice is not None and espnet_checkpoint.exists()):
            return
        initial = Position(1, 0)
        states = dict(
            model=model.state_dict(),
            reporter=dict(stats={}, epoch=0),
            optimizers=[o.state_dict() for o in optimizers],
            schedulers=[s.state_dict() if s is not None else None for s in schedulers],
            scaler=None,
            # no RNG state: run() seeds each epoch before it starts
            **{RESUME_KEY: self.resume_entry(initial, None, None, True)},
        )
        atomic_torch_save(states, espnet_checkpoint, sidecar=False)
        if self.choice is None:
            self.last_saved = initial

    def install_sigterm_handler(self):
        """Note SIGTERM instead of dying; returns the previous handler (``None`` off-main)."""
        if threading.current_thread() is not threading.main_thread():
            return None

        def on_sigterm(signum, frame):
            self.sigterm = True

        return signal.signal(signal.SIGTERM, on_sigterm)

    # -- checkpoints -------------------------------------------------------------------
    def resume_entry(self, position, rng, sub_reporter, any_valid_step) -> Dict:
        """Our part of a checkpoint: where in the epoch, RNG, partial statistics, counters."""
        partial = None
        if sub_reporter is not None and position.iteration > 0:
            partial = partial_statistics(sub_reporter)
        counters = self.guard if self.guard is not None else self
        return dict(
            position=tuple(position), rng=rng, train_reporter=partial,
            any_valid_step=any_valid_step, skipped_steps=counters.skipped_steps,
            amp_overflow_steps=counters.amp_overflow_steps,
        )

    def save(self, position: Position, rng, sub_reporter, any_valid_step) -> Optional[Path]:
        """Save a checkpoint of ``position`` in the store (rank 0 only); returns its path."""
        if not self.writes:
            return None
        reporter = self.reporter
        states = dict(
            model=self.model.state_dict(),
            reporter=dict(
                stats={e: s for e, s in reporter.stats.items() if e < position.epoch},
                epoch=position.epoch - 1,
            ),
            optimizers=[o.state_dict() for o in self.optimizers],
            schedulers=[s.state_dict() if s is not None else None for s in self.schedulers],
            scaler=self.scaler.state_dict() if self.scaler is not None else None,
            **{RESUME_KEY: self.resume_entry(position, rng, sub_reporter, any_valid_step)},
        )
        path = self.store.save(states, position)
        self.last_saved = position
        logging.info(f"Saved checkpoint {path} ({position})")
        return path

    def resume(self, model, reporter, optimizers, schedulers, scaler, ngpu, strict) -> None:
        """Keep ESPnet's objects; load the chosen checkpoint into them, if there is one."""
        self.reporter, self.model, self.scaler = reporter, model, scaler
        self.optimizers, self.schedulers = optimizers, schedulers
        if self.choice is None:
            return  # fresh start: checkpoint.pth holds this very state
        path = self.choice.path
        device = f"cuda:{torch.cuda.current_device()}" if ngpu > 0 else "cpu"
        states = torch.load(path, map_location=device, weights_only=False)
        model.load_state_dict(states["model"], strict=strict)
        reporter.load_state_dict(states["reporter"])
        for optimizer, state in zip(optimizers, states["optimizers"]):
            optimizer.load_state_dict(state)
        for scheduler, state in zip(schedulers, states["schedulers"]):
            if scheduler is not None:
                scheduler.load_state_dict(state)
        if scaler is not None and states["scaler"] is not None:
            scaler.load_state_dict(states["scaler"])
        self.resume_state = states.get(RESUME_KEY)
        if self.resume_state is not None:
            self.skipped_steps = self.resume_state["skipped_steps"]
            self.amp_overflow_steps = self.resume_state["amp_overflow_steps"]
        if path.parent == self.store.directory:
            self.last_saved = self.choice.position  # else: also save it in the store, with RNG
        logging.info(f"Resumed from {path} ({self.choice.position})")
        if self.writes:
            repair_epoch_models(
                self.output_dir, reporter, self.end_of_epoch_model,
                self.options.best_model_criterion,
            )

    def end_of_epoch_model(self, epoch: int):
        """A checkpoint of the end of ``epoch`` and its model state, or ``None``."""
        end = Position(epoch + 1, 0)
        if self.choice.position == end:
            return self.choice.path, self.model.state_dict()  # what we resume with
        stored = self.store.path_for(end)
        if stored.exists() and verify_checkpoint(stored) is None:
            return stored, torch.load(stored, map_location="cpu", weights_only=False)["model"]
        espnet_checkpoint = self.output_dir / ESPNET_CHECKPOINT
        states, _ = inspect_espnet_checkpoint(espnet_checkpoint)
        if states is not None and position_of(states) == end:
            return espnet_checkpoint, states["model"]
        return None

    # -- SIGTERM -----------------------------------------------------------------------
    def sigterm_on_any_rank(self) -> bool:
        """Whether SIGTERM arrived; with several processes, on any: all stop together.

        ESPnet gives every rank the same number of training batches, so the ranks reach
        this collective call equally often.
        """
        if not self.distributed:
            return self.sigterm
        device = "cuda" if self.options.ngpu > 0 else "cpu"
        flag = torch.tensor(int(self.sigterm), device=device)
        torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
        return bool(flag.item())

    def stop_for_sigterm(self, position, rng, sub_reporter, any_valid_step=True):
        """Save ``position`` (unless saved already) and stop with a resume hint."""
        if self.last_saved != position:
            self.save(position, rng, sub_reporter, any_valid_step)
        where = self.store.path_for(position) if self.writes else "rank 0"
        raise TrainingInterrupted(
            f"Stopped by SIGTERM at {position}; the checkpoint is {where}. Rerun the same "
            f"command with --resume true to continue from there."
        )

    # -- TensorBoard views -------------------------------------------------------------
    def write_views(self, model) -> None:
        """Write the validation utterance's views; a failure is logged, never raised."""
        from torch.utils.tensorboard import SummaryWriter

        if self.views_writer is None:
            self.views_writer = SummaryWriter(str(self.output_dir / "tensorboard" / "samples"))
        espnet_model = getattr(model, "module", model)
        try:
            write_validation_views(
                self.views_writer, espnet_model, self.example,
                self.train_reporter.get_total_count(),
            )
        except Exception:  # the views must never end a long run; the tests check they work
            logging.exception("Writing the TensorBoard views failed; training goes on")
