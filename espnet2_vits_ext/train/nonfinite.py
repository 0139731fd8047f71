"""Skip optimizer steps whose loss or gradients are not finite; stop after too many.

ESPnet's ``GANTrainer`` checks the gradient norm only when ``grad_clip > 0`` (VITS
configs use ``-1``), so a NaN loss at step 200k is applied and destroys the weights.
:class:`NonFiniteGuard` attaches to the model and the optimizers for one epoch:

* a forward hook records, per turn (generator / discriminator), whether the loss is
  finite and which stats are not;
* an optimizer step pre-hook skips the step when the turn's loss or any gradient of the
  optimizer's parameters is not finite, by dropping the gradients (``grad = None``):
  Adam then leaves those parameters and its moments untouched;
* :meth:`NonFiniteGuard.end_iteration`, called between iterations, counts skipped
  iterations and reports when ``max_consecutive`` were skipped in a row.

With fp16 a ``GradScaler`` also skips steps whose *scaled gradients* overflowed while the
loss was finite; that is its normal calibration, counted as ``amp_overflow_steps`` (in the
logs and TensorBoard next to ``nonfinite_skipped_steps``) and not towards the limit.
"""

import logging
import math
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

import torch

SKIPPED_STAT = "nonfinite_skipped_steps"  # cumulative, shown in the logs and TensorBoard
AMP_OVERFLOW_STAT = "amp_overflow_steps"  # cumulative, with a GradScaler only


@dataclass
class _Turn:
    nonfinite: List[str] = field(default_factory=list)  # loss and stats that are not finite
    stepped: bool = False


def _is_finite(value) -> bool:
    if isinstance(value, torch.Tensor):
        return bool(torch.isfinite(value.detach()).all())
    if isinstance(value, (int, float)):
        return math.isfinite(value)
    return True


class NonFiniteGuard:
    """Skips and counts non-finite optimizer steps of a GAN trainer's two turns.

    Args:
        model: the module the trainer calls with ``forward_generator=...``.
        optimizers: the trainer's optimizers (generator first, as ESPnet orders them).
        max_consecutive: stop after this many skipped iterations in a row.
        uses_grad_scaler: whether fp16 with a ``GradScaler`` is on.
        skipped_steps: skipped iterations counted before (restored from a checkpoint).
        amp_overflow_steps: GradScaler overflows counted before (likewise).
    """

    def __init__(
        self,
        model: torch.nn.Module,
        optimizers: Sequence[torch.optim.Optimizer],
        max_consecutive: int,
        uses_grad_scaler: bool,
        skipped_steps: int = 0,
        amp_overflow_steps: int = 0,
    ):
        if max_consecutive < 1:
            raise ValueError(f"max_consecutive must be at least 1, got {max_consecutive}")
        self.model = model
        self.optimizers = list(optimizers)
        self.max_consecutive = max_consecutive
        self.uses_grad_scaler = uses_grad_scaler
        self.skipped_steps = skipped_steps
        self.amp_overflow_steps = amp_overflow_steps
        self.consecutive = 0
        self._turns: Dict[str, _Turn] = {}
        self._current: Optional[_Turn] = None
        self._handles = []

    def __enter__(self) -> "NonFiniteGuard":
        self._handles.append(
            self.model.register_forward_hook(self._after_forward, with_kwargs=True)
        )
        for optimizer in self.optimizers:
            self._handles.append(optimizer.register_step_pre_hook(self._before_step))
        return self

    def __exit__(self, *exc_info) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def _after_forward(self, module, args, kwargs, output):
        if not module.training or not isinstance(output, dict):
            return None
        turn_name = "generator" if kwargs.get("forward_generator", True) else "discriminator"
        turn = _Turn()
        if not _is_finite(output["loss"]):
            turn.nonfinite.append("loss")
            stats = output.get("stats", {})
            turn.nonfinite += [k for k, v in stats.items() if v is not None and not _is_finite(v)]
        self._turns[turn_name] = turn
        self._current = turn
        if turn_name == "generator":
            # The generator turn runs every iteration; its stats carry our counters.
            output["stats"][SKIPPED_STAT] = float(self.skipped_steps)
            if self.uses_grad_scaler:
                output["stats"][AMP_OVERFLOW_STAT] = float(self.amp_overflow_steps)
        return output

    def _before_step(self, optimizer, args, kwargs):
        turn = self._current
        if turn is None:
            return None
        params = [p for group in optimizer.param_groups for p in group["params"]]
        grads = [p.grad for p in params if p.grad is not None]
        if grads and not turn.nonfinite:
            norm = torch.nn.utils.get_total_norm(grads, error_if_nonfinite=False)
            if not torch.isfinite(norm):
                turn.nonfinite.append("gradients")
        if turn.nonfinite:
            for p in params:
                p.grad = None  # Adam/AdamW skip parameters without a gradient
        else:
            turn.stepped = True
        return None

    def end_iteration(self) -> Optional[str]:
        """Close an iteration; return a description of it if its step was skipped."""
        problems = []
        overflow = False
        for name, turn in self._turns.items():
            if turn.nonfinite:
                problems.append(f"{name} turn: {', '.join(turn.nonfinite)}")
            elif not turn.stepped:
                if self.uses_grad_scaler:
                    overflow = True
                else:
                    # ESPnet itself skipped it: non-finite gradient norm with grad_clip > 0
                    problems.append(f"{name} turn: gradients")
        self._turns = {}
        self._current = None
        if overflow and not problems:
            self.amp_overflow_steps += 1
        if not problems:
            self.consecutive = 0
            return None
        self.consecutive += 1
        self.skipped_steps += 1
        return "; ".join(problems)

    @property
    def limit_reached(self) -> bool:
        return self.consecutive >= self.max_consecutive


def log_skipped(description: str, where: str, utt_ids: Sequence[str], guard: NonFiniteGuard):
    shown = ", ".join(list(utt_ids)[:4]) + (" ..." if len(utt_ids) > 4 else "")
    logging.warning(
        f"Skipped the optimizer step at {where} (utterances {shown}): non-finite "
        f"{description}. Skipped {guard.consecutive} in a row "
        f"(limit {guard.max_consecutive}), {guard.skipped_steps} in all."
    )
