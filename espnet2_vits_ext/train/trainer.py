"""ESPnet's ``GANTrainer``, extended so that a long VITS run loses nothing.

ESPnet's :meth:`Trainer.run` drives everything (resume, epochs, validation, per-epoch
``checkpoint.pth``) through class methods; we override the ones it calls and leave its
loop as it is:

* :meth:`run` chooses the checkpoint to resume from (:mod:`.checkpoint`), runs the memory
  check (:mod:`.memory`), installs a SIGTERM handler, and turns out-of-memory and write
  errors into messages that say what to do;
* :meth:`resume` loads the chosen checkpoint and rebuilds the epoch models ESPnet left
  damaged (:mod:`.epoch_models`). ``run`` hands its ``Reporter`` to no other method, so
  we always let it call ``resume``: a fresh run first writes its initial state as
  ``checkpoint.pth``;
* :meth:`train_one_epoch` skips the batches a resumed epoch already did, restores the
  random state, and between iterations saves checkpoints every
  ``--checkpoint_interval_iters``, reacts to SIGTERM, and counts non-finite steps
  (:mod:`.nonfinite`); ``--precision bf16`` wraps the model in autocast (:mod:`.precision`);
* :meth:`validate_one_epoch` reacts to SIGTERM and writes the TensorBoard views
  (:mod:`.tensorboard_views`);
* both turn the alignment search's error on an utterance with more text tokens than
  frames, which knows only batch indices, into one naming the utterances.

The state one ``run`` shares with these methods lives in ``cls._run`` for its duration.
With several processes (DDP), rank 0 writes the checkpoints and all ranks stop together on
SIGTERM; a resumed DDP run continues at the same iteration but, unlike a single process,
not bit-exactly (the other ranks get rank 0's RNG state). The tests cover one process.
"""

import argparse
import dataclasses
import logging
import signal
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional

import torch

from espnet2.train.gan_trainer import GANTrainer
from espnet2.utils.build_dataclass import build_dataclass
from espnet2_vits_ext.train.batches import (
    EpochBatches,
    iterator_length,
    partial_statistics,
    restore_statistics,
    skip_batches,
)
from espnet2_vits_ext.train.checkpoint import (
    ESPNET_CHECKPOINT,
    RESUME_KEY,
    STORE_DIRNAME,
    CheckpointStore,
    Position,
    ResumeChoice,
    atomic_torch_save,
    capture_rng_state,
    choose_resume_checkpoint,
    inspect_espnet_checkpoint,
    position_of,
    restore_rng_state,
    verify_checkpoint,
)
from espnet2_vits_ext.train.epoch_models import repair_epoch_models
from espnet2_vits_ext.train.errors import (
    CheckpointWriteError,
    NonFiniteTrainingError,
    TrainingInterrupted,
    TrainingOutOfMemoryError,
    TrainingStopped,
    naming_unalignable_utterances,
)
from espnet2_vits_ext.train.memory import (
    BatchLimits,
    is_out_of_memory,
    out_of_memory_message,
    try_largest_batches,
)
from espnet2_vits_ext.train.nonfinite import NonFiniteGuard, log_skipped
from espnet2_vits_ext.train.options import (
    ResilientGANTrainerOptions,
    add_fault_tolerance_arguments,
    check_fault_tolerance_options,
)
from espnet2_vits_ext.train.precision import (
    AUTOCAST_DTYPES,
    resolve_precision,
    wrap_for_precision,
)
from espnet2_vits_ext.train.tensorboard_views import capture_example, write_validation_views

_WRITE_FAILURE_MARKERS = ("PytorchStreamWriter", "file write failed", "unexpected pos")


@dataclass
class _RunState:
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


class ResilientGANTrainer(GANTrainer):
    """``GANTrainer`` plus checkpoints inside epochs, exact resume, fault handling, views."""

    _run: Optional[_RunState] = None

    @classmethod
    def build_options(cls, args: argparse.Namespace) -> ResilientGANTrainerOptions:
        options = build_dataclass(ResilientGANTrainerOptions, args)
        options.precision = resolve_precision(args.precision, args.use_amp, args.ngpu)
        options.use_amp = options.precision == "fp16"  # ESPnet's switch for fp16 + GradScaler
        return options

    @classmethod
    def check_options(cls, args: argparse.Namespace) -> None:
        check_fault_tolerance_options(args)

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        super().add_arguments(parser)
        add_fault_tolerance_arguments(parser)

    # -- run ---------------------------------------------------------------------------
    @classmethod
    def run(cls, model, optimizers, schedulers, train_iter_factory, valid_iter_factory,
            plot_attention_iter_factory, trainer_options, distributed_option) -> None:
        options = trainer_options
        output_dir = Path(options.output_dir)
        writes = not distributed_option.distributed or distributed_option.dist_rank == 0
        store = CheckpointStore(output_dir / STORE_DIRNAME, keep=options.keep_checkpoints)
        run = cls._run = _RunState(
            options=options, store=store, writes=writes,
            distributed=distributed_option.distributed,
        )
        try:
            cls._prepare(run, output_dir, model, optimizers, schedulers, train_iter_factory)
            if run.distributed:
                torch.distributed.barrier()  # every rank sees rank 0's checkpoint.pth
            previous_handler = cls._install_sigterm_handler(run)
            try:
                super().run(
                    model=model, optimizers=optimizers, schedulers=schedulers,
                    train_iter_factory=train_iter_factory,
                    valid_iter_factory=valid_iter_factory,
                    plot_attention_iter_factory=plot_attention_iter_factory,
                    trainer_options=dataclasses.replace(options, resume=True),
                    distributed_option=distributed_option,
                )
            finally:
                if previous_handler is not None:
                    signal.signal(signal.SIGTERM, previous_handler)
            final = Position(run.reporter.get_epoch() + 1, 0) if run.writes else None
            if run.writes and run.last_saved != final:
                cls._save(final, capture_rng_state(), None, True)
        except TrainingStopped:
            raise
        except (RuntimeError, MemoryError) as error:
            if is_out_of_memory(error):
                raise TrainingOutOfMemoryError(
                    out_of_memory_message(
                        "during training", run.batch_ids, None, cls._limits(options), error
                    )
                ) from error
            if any(marker in str(error) for marker in _WRITE_FAILURE_MARKERS):
                raise cls._output_write_error(output_dir, error) from error
            raise
        except OSError as error:
            raise cls._output_write_error(output_dir, error) from error
        finally:
            if run.views_writer is not None:
                run.views_writer.close()
            cls._run = None

    @classmethod
    def _limits(cls, options) -> BatchLimits:
        return BatchLimits(options.batch_type, options.batch_size, options.batch_bins)

    @classmethod
    def _prepare(cls, run, output_dir, model, optimizers, schedulers, train_iter_factory):
        options = run.options
        if run.writes:
            run.store.remove_leftovers()
        if options.resume:
            run.choice = choose_resume_checkpoint(output_dir, run.store)
        elif run.writes and (run.store.complete() or (output_dir / ESPNET_CHECKPOINT).exists()):
            logging.warning(f"--resume false: replacing the checkpoints in {output_dir}")
            run.store.remove_all()
        if run.choice is not None:
            logging.info(f"Will resume from {run.choice.path} ({run.choice.position})")
        else:
            logging.info("Starting from scratch")
        device = "cuda" if options.ngpu > 0 else "cpu"
        try_largest_batches(
            model, train_iter_factory.build_iter(1), options.train_shape_file,
            options.oom_scan_batches, device, cls._limits(options),
            autocast_dtype=AUTOCAST_DTYPES[options.precision],
        )
        # ESPnet's run() calls resume() (our hook to its Reporter) only if this file exists.
        espnet_checkpoint = output_dir / ESPNET_CHECKPOINT
        if run.writes and (run.choice is None or not espnet_checkpoint.exists()):
            initial = Position(1, 0)
            states = dict(
                model=model.state_dict(),
                reporter=dict(stats={}, epoch=0),
                optimizers=[o.state_dict() for o in optimizers],
                schedulers=[s.state_dict() if s is not None else None for s in schedulers],
                scaler=None,
                # no RNG state: run() seeds each epoch before it starts
                **{RESUME_KEY: cls._resume_entry(initial, None, None, True)},
            )
            atomic_torch_save(states, espnet_checkpoint, sidecar=False)
            if run.choice is None:
                run.last_saved = initial

    @classmethod
    def _install_sigterm_handler(cls, run):
        if threading.current_thread() is not threading.main_thread():
            return None

        def on_sigterm(signum, frame):
            run.sigterm = True

        return signal.signal(signal.SIGTERM, on_sigterm)

    @classmethod
    def _output_write_error(cls, output_dir: Path, error: BaseException) -> CheckpointWriteError:
        """A write by ESPnet's own code failed: drop a half-written ``checkpoint.pth``.

        A complete one stays: the rerun resumes from it and rebuilds the epoch model that
        ESPnet writes after it (:func:`.epoch_models.repair_epoch_models`).
        """
        espnet_checkpoint = output_dir / ESPNET_CHECKPOINT
        if espnet_checkpoint.exists():
            states, problem = inspect_espnet_checkpoint(espnet_checkpoint)
            del states
            if problem is not None:
                logging.warning(f"Removing {espnet_checkpoint}: {problem}")
                espnet_checkpoint.unlink()
        where = getattr(error, "filename", None) or output_dir
        return CheckpointWriteError(
            f"Writing under {output_dir} failed ({where}: {error}). Half-written files "
            f"were removed; the checkpoints in {output_dir / STORE_DIRNAME} are intact. "
            f"Free disk space or make the directory writable, then rerun with --resume true."
        )

    # -- checkpoints -------------------------------------------------------------------
    @classmethod
    def _resume_entry(cls, position, rng, sub_reporter, any_valid_step) -> Dict:
        partial = None
        if sub_reporter is not None and position.iteration > 0:
            partial = partial_statistics(sub_reporter)
        run = cls._run
        counters = run.guard if run.guard is not None else run
        return dict(
            position=tuple(position), rng=rng, train_reporter=partial,
            any_valid_step=any_valid_step, skipped_steps=counters.skipped_steps,
            amp_overflow_steps=counters.amp_overflow_steps,
        )

    @classmethod
    def _save(cls, position: Position, rng, sub_reporter, any_valid_step) -> Optional[Path]:
        run = cls._run
        if not run.writes:
            return None
        reporter = run.reporter
        states = dict(
            model=run.model.state_dict(),
            reporter=dict(
                stats={e: s for e, s in reporter.stats.items() if e < position.epoch},
                epoch=position.epoch - 1,
            ),
            optimizers=[o.state_dict() for o in run.optimizers],
            schedulers=[s.state_dict() if s is not None else None for s in run.schedulers],
            scaler=run.scaler.state_dict() if run.scaler is not None else None,
            **{RESUME_KEY: cls._resume_entry(position, rng, sub_reporter, any_valid_step)},
        )
        path = run.store.save(states, position)
        run.last_saved = position
        logging.info(f"Saved checkpoint {path} ({position})")
        return path

    @classmethod
    def resume(cls, checkpoint, model, reporter, optimizers, schedulers, scaler,
               ngpu: int = 0, strict: bool = True) -> None:
        run = cls._run
        run.reporter, run.model, run.scaler = reporter, model, scaler
        run.optimizers, run.schedulers = optimizers, schedulers
        if run.choice is None:
            return  # fresh start: checkpoint.pth holds this very state
        path = run.choice.path
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
        run.resume_state = states.get(RESUME_KEY)
        if run.resume_state is not None:
            run.skipped_steps = run.resume_state["skipped_steps"]
            run.amp_overflow_steps = run.resume_state["amp_overflow_steps"]
        if path.parent == run.store.directory:
            run.last_saved = run.choice.position  # else: also save it in the store, with RNG
        logging.info(f"Resumed from {path} ({run.choice.position})")
        if run.writes:
            repair_epoch_models(
                Path(run.options.output_dir), reporter, cls._end_of_epoch_model,
                run.options.best_model_criterion,
            )

    @classmethod
    def _end_of_epoch_model(cls, epoch: int):
        """A checkpoint of the end of ``epoch`` and its model state, or ``None``."""
        run = cls._run
        end = Position(epoch + 1, 0)
        if run.choice.position == end:
            return run.choice.path, run.model.state_dict()  # what we resume with
        stored = run.store.path_for(end)
        if stored.exists() and verify_checkpoint(stored) is None:
            return stored, torch.load(stored, map_location="cpu", weights_only=False)["model"]
        espnet_checkpoint = Path(run.options.output_dir) / ESPNET_CHECKPOINT
        states, _ = inspect_espnet_checkpoint(espnet_checkpoint)
        if states is not None and position_of(states) == end:
            return espnet_checkpoint, states["model"]
        return None

    # -- training ----------------------------------------------------------------------
    @classmethod
    def train_one_epoch(cls, model, iterator, optimizers, schedulers, scaler, reporter,
                        summary_writer, options, distributed_option) -> bool:
        run = cls._run
        epoch = reporter.get_epoch()
        restore = None
        if run.resume_state is not None and run.resume_state["position"][0] == epoch:
            restore, run.resume_state = run.resume_state, None
        done = Position(*restore["position"]).iteration if restore else 0
        valid_before = bool(restore and restore["any_valid_step"])
        if restore and restore["train_reporter"] is not None:
            restore_statistics(reporter, restore["train_reporter"])
        run.train_reporter = reporter
        run.guard = NonFiniteGuard(
            model, optimizers, options.max_consecutive_nonfinite_steps,
            uses_grad_scaler=scaler is not None, skipped_steps=run.skipped_steps,
            amp_overflow_steps=run.amp_overflow_steps,
        )
        length = iterator_length(iterator)
        batches = cls._epoch_batches(
            skip_batches(iterator, done), epoch, length, done, restore, reporter, valid_before
        )
        with run.guard, naming_unalignable_utterances(lambda: run.batch_ids):
            all_invalid = super().train_one_epoch(
                model=wrap_for_precision(model, options.precision),
                iterator=EpochBatches(batches, length),
                optimizers=optimizers, schedulers=schedulers, scaler=scaler,
                reporter=reporter, summary_writer=summary_writer, options=options,
                distributed_option=distributed_option,
            )
        run.skipped_steps = run.guard.skipped_steps
        run.amp_overflow_steps = run.guard.amp_overflow_steps
        if run.end_of_train is not None:
            run.end_of_train["any_valid_step"] = valid_before or not all_invalid
        return all_invalid and not valid_before

    @classmethod
    def _epoch_batches(cls, loader, epoch, length, done, restore, reporter, valid_before):
        """Yield the epoch's remaining batches; between them, do our bookkeeping."""
        run = cls._run
        options = run.options
        batches = iter(loader)  # draws from torch's RNG: restore after, as it was saved
        if restore is not None:
            restore_rng_state(restore["rng"])
        elif run.last_saved != Position(epoch, 0):
            cls._save(Position(epoch, 0), capture_rng_state(), None, valid_before)
        finished_one = False
        while True:
            if finished_one:
                problem = run.guard.end_iteration()
                where = f"epoch {epoch}, iteration {done} ({reporter.get_total_count()} overall)"
                if problem is not None:
                    log_skipped(problem, where, run.batch_ids, run.guard)
                    if run.guard.limit_reached:
                        path = cls._save(Position(epoch, done), capture_rng_state(), reporter, True)
                        raise NonFiniteTrainingError(
                            f"{run.guard.consecutive} iterations in a row had non-finite "
                            f"values, the last at {where}, utterances "
                            f"{', '.join(run.batch_ids)}: {problem}. Their optimizer steps "
                            f"were skipped; the model from before them is saved in {path}. "
                            f"Lower the learning rate, check those utterances, or train in "
                            f"fp32; then rerun with --resume true (or raise "
                            f"--max_consecutive_nonfinite_steps)."
                        )
                # (not after an epoch's last iteration: the epoch-end one follows shortly)
                due = reporter.get_total_count() % options.checkpoint_interval_iters == 0
                if due and done != length:
                    cls._save(Position(epoch, done), capture_rng_state(), reporter, True)
            if cls._sigterm_on_any_rank():
                cls._stop_for_sigterm(Position(epoch, done), capture_rng_state(), reporter)
            try:
                utt_ids, batch = next(batches)
            except StopIteration:
                break
            run.batch_ids = list(utt_ids)
            yield utt_ids, batch
            done += 1
            finished_one = True
        run.end_of_train = dict(position=Position(epoch, done), rng=capture_rng_state())

    @classmethod
    def _sigterm_on_any_rank(cls) -> bool:
        """Whether SIGTERM arrived; with several processes, on any: all stop together.

        ESPnet gives every rank the same number of training batches, so the ranks reach
        this collective call equally often.
        """
        run = cls._run
        if not run.distributed:
            return run.sigterm
        device = "cuda" if run.options.ngpu > 0 else "cpu"
        flag = torch.tensor(int(run.sigterm), device=device)
        torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
        return bool(flag.item())

    @classmethod
    def _stop_for_sigterm(cls, position, rng, sub_reporter, any_valid_step=True):
        run = cls._run
        if run.last_saved != position:
            cls._save(position, rng, sub_reporter, any_valid_step)
        where = run.store.path_for(position) if run.writes else "rank 0"
        raise TrainingInterrupted(
            f"Stopped by SIGTERM at {position}; the checkpoint is {where}. Rerun the same "
            f"command with --resume true to continue from there."
        )

    # -- validation --------------------------------------------------------------------
    @classmethod
    def validate_one_epoch(cls, model, iterator, reporter, options, distributed_option) -> None:
        run = cls._run

        def batches():
            for utt_ids, batch in iterator:
                if run.sigterm:  # (ranks may differ in batch counts here: no collective)
                    end = run.end_of_train
                    cls._stop_for_sigterm(
                        end["position"], end["rng"], run.train_reporter, end["any_valid_step"]
                    )
                if run.example is None:
                    run.example = capture_example(utt_ids, batch)
                run.batch_ids = list(utt_ids)
                yield utt_ids, batch

        with naming_unalignable_utterances(lambda: run.batch_ids):
            super().validate_one_epoch(
                model=model, iterator=batches(), reporter=reporter, options=options,
                distributed_option=distributed_option,
            )
        if options.use_tensorboard and options.validation_views and run.writes and run.example:
            cls._write_views(model, options)

    @classmethod
    def _write_views(cls, model, options) -> None:
        from torch.utils.tensorboard import SummaryWriter

        run = cls._run
        if run.views_writer is None:
            run.views_writer = SummaryWriter(str(Path(options.output_dir) / "tensorboard" / "samples"))
        espnet_model = getattr(model, "module", model)
        try:
            write_validation_views(
                run.views_writer, espnet_model, run.example, run.train_reporter.get_total_count()
            )
        except Exception:  # the views must never end a long run; the tests check they work
            logging.exception("Writing the TensorBoard views failed; training goes on")
