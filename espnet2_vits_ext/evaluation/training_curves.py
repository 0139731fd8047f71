"""Training curves: losses over steps, from ESPnet's TensorBoard events or its ``train.log``.

ESPnet's trainer logs every ``log_interval`` batches a line
``<E>epoch:train:<first>-<last>batch: key=value, ...`` (averages over those batches) and after
each epoch ``<E>epoch results: [train] key=value, ..., total_count=<N>, [valid] ...``, where
``total_count`` is the number of training iterations so far. With ``use_tensorboard`` it also
writes the same scalars to ``tensorboard/{train,valid}/events.out.tfevents.*`` keyed by that
iteration count. We prefer the event files (exact steps) and fall back to the log.
"""

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter
from typeguard import typechecked

# A curve is a list of (iteration, value), sorted by iteration.
Curve = List[Tuple[int, float]]

_BATCH_LINE = re.compile(r"(\d+)epoch:train:(\d+)-(\d+)batch:\s*(.*)$")
_EPOCH_LINE = re.compile(r"(\d+)epoch results:\s*(.*)$")
_SECTION = re.compile(r"\[(\w+)\]\s*")
# Numeric key=value pairs only; the human-readable "time=1 minute, 2 seconds" is skipped
# because a value must be followed by a comma or the end of the section.
_NUMBER_FIELD = re.compile(
    r"(\w+)=([-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|nan|inf))(?=\s*,|\s*$)"
)


@dataclass
class TrainingCurves:
    """Loss curves of one training run.

    Attributes:
        train: Loss name -> training curve (per logged interval).
        valid: Loss name -> validation curve (one point per epoch, at the epoch's last
            training iteration).
        source: Where they were read from (a path).
    """

    train: Dict[str, Curve] = field(default_factory=dict)
    valid: Dict[str, Curve] = field(default_factory=dict)
    source: str = ""


def is_loss_name(name: str) -> bool:
    """``loss``, ``generator_loss``, ``generator_mel_loss``, ...: the keys worth plotting."""
    return name == "loss" or name.endswith("_loss")


def _numeric_fields(text: str) -> Dict[str, float]:
    return {key: float(value) for key, value in _NUMBER_FIELD.findall(text)}


def _add_point(curves: Dict[str, Curve], name: str, step: int, value: float) -> None:
    curves.setdefault(name, []).append((step, value))


def _sorted_unique(curves: Dict[str, Curve]) -> Dict[str, Curve]:
    # A resumed run logs some iterations twice; the later line wins.
    return {name: sorted(dict(points).items()) for name, points in curves.items()}


@typechecked
def parse_train_log(path: Union[str, Path]) -> TrainingCurves:
    """Read loss curves from an ESPnet ``train.log``.

    The iteration of a batch line is the ``total_count`` of the previous epoch's results plus
    the line's last batch index (the previous epoch's largest logged batch index when its
    results line is missing, e.g. in a run still going).
    """
    train: Dict[str, Curve] = {}
    valid: Dict[str, Curve] = {}
    iterations_before_epoch: Dict[int, int] = {1: 0}
    last_batch_of_epoch: Dict[int, int] = {}
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            if match := _BATCH_LINE.search(line):
                epoch, last_batch = int(match.group(1)), int(match.group(3))
                offset = iterations_before_epoch.get(epoch)
                if offset is None:
                    offset = iterations_before_epoch.get(epoch - 1, 0) + last_batch_of_epoch.get(
                        epoch - 1, 0
                    )
                    iterations_before_epoch[epoch] = offset
                last_batch_of_epoch[epoch] = max(last_batch_of_epoch.get(epoch, 0), last_batch)
                for name, value in _numeric_fields(match.group(4)).items():
                    if is_loss_name(name):
                        _add_point(train, name, offset + last_batch, value)
            elif match := _EPOCH_LINE.search(line):
                epoch = int(match.group(1))
                # "[train] a=1, b=2, [valid] a=3" -> ["", "train", "a=1, b=2, ", "valid", "a=3"]
                pieces = _SECTION.split(match.group(2))
                sections = {
                    pieces[i]: _numeric_fields(pieces[i + 1].rstrip().rstrip(","))
                    for i in range(1, len(pieces) - 1, 2)
                }
                train_stats = sections.get("train", {})
                if "total_count" not in train_stats:
                    continue
                step = int(train_stats["total_count"])
                iterations_before_epoch[epoch + 1] = step
                for name, value in sections.get("valid", {}).items():
                    if is_loss_name(name):
                        _add_point(valid, name, step, value)
    return TrainingCurves(_sorted_unique(train), _sorted_unique(valid), str(path))


@typechecked
def read_tensorboard(tensorboard_dir: Union[str, Path]) -> Optional[TrainingCurves]:
    """Read loss scalars from ``<tensorboard_dir>/train`` and ``/valid``; None if no events."""
    tensorboard_dir = Path(tensorboard_dir)
    if not any(tensorboard_dir.glob("train/events.out.tfevents.*")):
        return None
    # Imported here: loading TensorBoard takes about a second and only this path needs it.
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    curves = {}
    for split in ("train", "valid"):
        curves[split] = {}
        if not (tensorboard_dir / split).is_dir():
            continue
        accumulator = EventAccumulator(str(tensorboard_dir / split), size_guidance={"scalars": 0})
        accumulator.Reload()
        for tag in accumulator.Tags()["scalars"]:
            if is_loss_name(tag):
                curves[split][tag] = [(e.step, e.value) for e in accumulator.Scalars(tag)]
    return TrainingCurves(
        _sorted_unique(curves["train"]), _sorted_unique(curves["valid"]), str(tensorboard_dir)
    )


@typechecked
def load_training_curves(train_log_dir: Union[str, Path]) -> Optional[TrainingCurves]:
    """Curves of the run in ``train_log_dir`` (``exp/<tts_exp>``): TensorBoard events if there
    are any, else ``train.log``; None if neither exists or neither holds a loss."""
    train_log_dir = Path(train_log_dir)
    curves = read_tensorboard(train_log_dir / "tensorboard")
    if (curves is None or not curves.train) and (train_log_dir / "train.log").is_file():
        curves = parse_train_log(train_log_dir / "train.log")
    if curves is None or not (curves.train or curves.valid):
        return None
    return curves


def _panel_of(name: str) -> str:
    if name.startswith("generator"):
        return "generator"
    if name.startswith("discriminator"):
        return "discriminator"
    return "other"


def _minor_log_label(value: float, _position: int) -> str:
    # Plain numbers at 2x and 5x each decade (not 3x10^1): readable and uncluttered.
    leading_digit = f"{value:e}"[0]
    return f"{value:g}" if leading_digit in "25" else ""


@typechecked
def plot_training_curves(curves: TrainingCurves, output_path: Union[str, Path]) -> None:
    """Save one PNG: a panel each for generator, discriminator and other losses; solid lines
    for training, dots on dashed lines for validation, in the same colour per loss."""
    names = sorted(set(curves.train) | set(curves.valid))
    panels = [p for p in ("generator", "discriminator", "other") if any(_panel_of(n) == p for n in names)]
    figure = Figure(figsize=(5.2 * len(panels), 3.6), dpi=80, layout="constrained")
    axes = figure.subplots(1, len(panels), squeeze=False)[0]
    for ax, panel in zip(axes, panels):
        panel_names = [n for n in names if _panel_of(n) == panel]
        plotted_values: List[float] = []
        for index, name in enumerate(panel_names):
            if panel == "other":
                label = name
            else:
                label = "total" if name == f"{panel}_loss" else name.removeprefix(f"{panel}_")
            style = {"color": f"C{index % 10}"}
            for curve, extra_style, curve_label in (
                (curves.train.get(name), {"linewidth": 1.2}, label),
                (curves.valid.get(name), {"linestyle": "--", "marker": "o", "markersize": 3},
                 None if name in curves.train else f"{label} (valid)"),
            ):
                if curve:
                    steps, values = zip(*curve)
                    ax.plot(steps, values, label=curve_label, **style, **extra_style)
                    plotted_values.extend(values)
        if min(plotted_values) > 0 and max(plotted_values) >= 10 * min(plotted_values):
            ax.set_yscale("log")  # e.g. mel loss ~30 and KL loss ~1 in one panel
            ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
            ax.yaxis.set_minor_formatter(FuncFormatter(_minor_log_label))
        ax.set_title(f"{panel} losses (solid: train, dashed: valid)", fontsize=10)
        ax.set_xlabel("iteration")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, ncol=2)
    figure.savefig(output_path)
