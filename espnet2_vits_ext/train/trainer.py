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

The state one ``run`` shares with these methods is a :class:`.training_run.TrainingRun`,
carried by a subclass made for that run alone (:func:`.training_run.trainer_bound_to`).
With several processes (DDP), rank 0 writes the checkpoints and all ranks stop together on
SIGTERM; a resumed DDP run continues at the same iteration but, unlike a single process,
not bit-exactly (the other ranks get rank 0's RNG state). The tests cover one process.
"""

import argparse
import dataclasses
import logging
import signal
from pathlib import Path

import torch

from espnet2.train.gan_trainer import GANTrainer
from espnet2.utils.build_dataclass import build_dataclass
from espnet2_vits_ext.train.batches import (
    EpochBatches,
    iterator_length,
    restore_statistics,
    skip_batches,
)
from espnet2_vits_ext.train.checkpoint import (
    STORE_DIRNAME,
    CheckpointStore,
    Position,
    capture_rng_state,
    restore_rng_state,
)
from espnet2_vits_ext.train.errors import (
    NonFiniteTrainingError,
    TrainingOutOfMemoryError,
    TrainingStopped,
    naming_unalignable_utterances,
)
from espnet2_vits_ext.train.init_model import (
    add_init_model_argument,
    check_init_model_option,
    init_model,
)
from espnet2_vits_ext.train.memory import (
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
from espnet2_vits_ext.train.output_errors import WRITE_FAILURE_MARKERS, output_write_error
from espnet2_vits_ext.train.precision import (
    AUTOCAST_DTYPES,
    resolve_precision,
    wrap_for_precision,
)
from espnet2_vits_ext.train.tensorboard_views import capture_example
from espnet2_vits_ext.train.training_run import TrainingRun, trainer_bound_to


class ResilientGANTrainer(GANTrainer):
    """``GANTrainer`` plus checkpoints inside epochs, exact resume, fault handling, views."""

    training_run: TrainingRun  # set only on the subclass that run() makes for one run

    @classmethod
    def build_options(cls, args: argparse.Namespace) -> ResilientGANTrainerOptions:
        options = build_dataclass(ResilientGANTrainerOptions, args)
        options.precision = resolve_precision(args.precision, args.use_amp, args.ngpu)
        options.use_amp = options.precision == "fp16"  # ESPnet's switch for fp16 + GradScaler
        return options

    @classmethod
    def check_options(cls, args: argparse.Namespace) -> None:
        check_fault_tolerance_options(args)
        check_init_model_option(args)

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        super().add_arguments(parser)
        add_fault_tolerance_arguments(parser)
        add_init_model_argument(parser)

    # -- run ---------------------------------------------------------------------------
    @classmethod
    def run(cls, model, optimizers, schedulers, train_iter_factory, valid_iter_factory,
            plot_attention_iter_factory, trainer_options, distributed_option) -> None:
        options = trainer_options
        output_dir = Path(options.output_dir)
        run = TrainingRun(
            options=options,
            store=CheckpointStore(output_dir / STORE_DIRNAME, keep=options.keep_checkpoints),
            writes=not distributed_option.distributed or distributed_option.dist_rank == 0,
            distributed=distributed_option.distributed,
        )
        bound = trainer_bound_to(cls, run)
        try:
            cls._prepare(run, model, optimizers, schedulers, train_iter_factory)
            previous_handler = run.install_sigterm_handler()
            try:
                # ESPnet's loop, handed the subclass that carries this run's state
                super(ResilientGANTrainer, bound).run(
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
                run.save(final, capture_rng_state(), None, True)
        except TrainingStopped:
            raise
        except (RuntimeError, MemoryError) as error:
            if is_out_of_memory(error):
                raise TrainingOutOfMemoryError(
                    out_of_memory_message(
                        "during training", run.batch_ids, None, run.limits(), error
                    )
                ) from error
            if any(marker in str(error) for marker in WRITE_FAILURE_MARKERS):
                raise output_write_error(output_dir, error) from error
            raise
        except OSError as error:
            raise output_write_error(output_dir, error) from error
        finally:
            if run.views_writer is not None:
                run.views_writer.close()

    @classmethod
    def _prepare(cls, run, model, optimizers, schedulers, train_iter_factory) -> None:
        """Choose the start, check memory on the largest batches, write ``checkpoint.pth``."""
        run.choose_start()
        options = run.options
        if options.init_model is not None and run.choice is None:
            init_model(model, options.init_model, options.token_list)
        elif options.init_model is not None:
            logging.info(f"--init_model {options.init_model} not applied: resuming instead")
        device = "cuda" if options.ngpu > 0 else "cpu"
        try_largest_batches(
            model, train_iter_factory.build_iter(1), options.train_shape_file,
            options.oom_scan_batches, device, run.limits(),
            autocast_dtype=AUTOCAST_DTYPES[options.precision],
        )
        run.write_initial_espnet_checkpoint(model, optimizers, schedulers)
        if run.distributed:
            torch.distributed.barrier()  # every rank sees rank 0's checkpoint.pth

    @classmethod
    def resume(cls, checkpoint, model, reporter, optimizers, schedulers, scaler,
               ngpu: int = 0, strict: bool = True) -> None:
        # ``checkpoint`` is ESPnet's checkpoint.pth; the run has chosen its own
        cls.training_run.resume(model, reporter, optimizers, schedulers, scaler, ngpu, strict)

    # -- training ----------------------------------------------------------------------
    @classmethod
    def train_one_epoch(cls, model, iterator, optimizers, schedulers, scaler, reporter,
                        summary_writer, options, distributed_option) -> bool:
        run = cls.training_run
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
        run = cls.training_run
        batches = iter(loader)  # draws from torch's RNG: restore after, as it was saved
        if restore is not None:
            restore_rng_state(restore["rng"])
        elif run.last_saved != Position(epoch, 0):
            run.save(Position(epoch, 0), capture_rng_state(), None, valid_before)
        finished_one = False
        while True:
            if finished_one:
                cls._after_iteration(run, Position(epoch, done), length, reporter)
            if run.sigterm_on_any_rank():
                run.stop_for_sigterm(Position(epoch, done), capture_rng_state(), reporter)
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
    def _after_iteration(cls, run, position: Position, length: int, reporter) -> None:
        """Count a non-finite step (stop after too many) and save when one is due."""
        problem = run.guard.end_iteration()
        where = (
            f"epoch {position.epoch}, iteration {position.iteration} "
            f"({reporter.get_total_count()} overall)"
        )
        if problem is not None:
            log_skipped(problem, where, run.batch_ids, run.guard)
            if run.guard.limit_reached:
                path = run.save(position, capture_rng_state(), reporter, True)
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
        due = reporter.get_total_count() % run.options.checkpoint_interval_iters == 0
        if due and position.iteration != length:
            run.save(position, capture_rng_state(), reporter, True)

    # -- validation --------------------------------------------------------------------
    @classmethod
    def validate_one_epoch(cls, model, iterator, reporter, options, distributed_option) -> None:
        run = cls.training_run

        def batches():
            for utt_ids, batch in iterator:
                if run.sigterm:  # (ranks may differ in batch counts here: no collective)
                    end = run.end_of_train
                    run.stop_for_sigterm(
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
            run.write_views(model)
