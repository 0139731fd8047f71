"""One full GAN training step (discriminator turn, then generator turn), ours vs ESPnet's.

Batch of ``--batch_size`` LJSpeech-like utterances (text 150 down to 90 tokens, 870 down to
550 frames of a 513-bin linear spectrogram, hop 256; longest first as ESPnet's sorted
batches), the recipe's AdamW settings (``optim_conf``/``optim2_conf`` of ``conf/train.yaml``,
fused; ``--unfused`` drops ``fused`` to measure what it gains), both models seeded alike before every step so that they
see the same data and draw the same random segments. The turn order is ESPnet's
GANTrainer default (``generator_first: false``); the generator's outputs of the first
turn are reused by the second (``cache_generator_outputs``), as in training.

Timing mode (default): both models in this process, repeats interleaved; prints one JSON
object with steps/s of each, the speed-up and the first step's losses of both (they must
agree). Memory mode (``--memory ours|espnet``): that model alone; peak process RSS on
CPU, ``torch.cuda.max_memory_allocated`` on GPU.

Usage: python bench/bench_train_step.py [--device cpu|cuda] [--batch_size 4] [--threads 2]
       [--repeats 3] [--warmup 1] [--unfused]
       python bench/bench_train_step.py --memory ours [--device cuda] [--batch_size 4]
"""

import argparse
import json

import torch
import yaml

from common import (
    LINEAR_BINS,
    TRAIN_CONFIG,
    VOCAB_SIZE,
    build_models,
    interleaved_timing,
    load_tts_conf,
    reset_peak_rss,
    rss_mib,
)

HOP = 256


def make_batch(batch_size: int, device: str) -> dict:
    """LJSpeech-like lengths, longest first as ESPnet's sorted batches are."""
    generator = torch.Generator().manual_seed(3)
    text_lengths = torch.linspace(150, 90, batch_size).long()
    feats_lengths = torch.linspace(870, 550, batch_size).long()
    text = torch.randint(1, VOCAB_SIZE - 1, (batch_size, int(text_lengths.max())), generator=generator)
    feats = torch.randn(batch_size, int(feats_lengths.max()), LINEAR_BINS, generator=generator).abs()
    speech = 0.1 * torch.randn(batch_size, int(feats_lengths.max()) * HOP, generator=generator)
    for index in range(batch_size):  # zero the padding, as the data loader does
        text[index, text_lengths[index]:] = 0
        feats[index, feats_lengths[index]:] = 0
        speech[index, feats_lengths[index] * HOP:] = 0
    batch = dict(text=text, text_lengths=text_lengths, feats=feats, feats_lengths=feats_lengths,
                 speech=speech, speech_lengths=feats_lengths * HOP)
    return {name: value.to(device) for name, value in batch.items()}


def optimizer_settings(fused: bool) -> dict:
    """The recipe's AdamW arguments (``optim2_conf``: discriminator, ``optim_conf``: generator,
    as ESPnet's GAN-TTS task assigns them), with ``fused`` as asked."""
    with open(TRAIN_CONFIG) as stream:
        config = yaml.safe_load(stream)
    assert config["optim"] == config["optim2"] == "adamw", "the benchmark builds AdamW"
    return {
        forward_generator: dict(config[key], fused=fused)
        for forward_generator, key in ((False, "optim2_conf"), (True, "optim_conf"))
    }


def make_trainer(model, batch: dict, device: str, fused: bool = True):
    """A step function for ``model`` and the dict it fills with the first step's losses."""
    settings = optimizer_settings(fused)
    optimizers = {
        False: torch.optim.AdamW(model.discriminator.parameters(), **settings[False]),
        True: torch.optim.AdamW(model.generator.parameters(), **settings[True]),
    }
    first_losses = {}

    def step() -> None:
        torch.manual_seed(4)
        for forward_generator in (False, True):
            output = model(**batch, forward_generator=forward_generator)
            optimizer = optimizers[forward_generator]
            optimizer.zero_grad(set_to_none=True)
            output["loss"].backward()
            optimizer.step()
            if forward_generator not in first_losses:
                first_losses[forward_generator] = {
                    name: float(value) for name, value in output["stats"].items()
                    if value is not None and "loss" in name
                }
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    return step, first_losses


def measure_memory(args) -> dict:
    model = build_models(load_tts_conf(), args.memory).train().to(args.device)
    batch = make_batch(args.batch_size, args.device)
    step, _ = make_trainer(model, batch, args.device, fused=not args.unfused)
    if args.device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    else:
        reset_peak_rss()
    for _ in range(2):  # the second step also holds the optimiser state
        step()
    if args.device.startswith("cuda"):
        peak = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak = rss_mib("VmHWM")
    return dict(model=args.memory, device=args.device, batch_size=args.batch_size, peak_mib=peak)


def measure_time(args) -> dict:
    espnet_model, ours = build_models(load_tts_conf(), "both")
    batch = make_batch(args.batch_size, args.device)
    steps, losses = {}, {}
    for name, model in (("espnet", espnet_model), ("ours", ours)):
        steps[name], losses[name] = make_trainer(
            model.train().to(args.device), batch, args.device, fused=not args.unfused
        )
    timing = interleaved_timing(steps, args.repeats, args.warmup)
    result = dict(device=args.device, batch_size=args.batch_size, threads=args.threads,
                  fused_optimizer=not args.unfused)
    for name, figures in timing.items():
        result[name] = dict(steps_per_s=1.0 / figures["median_s"], **figures)
        result[name]["first_step_losses"] = {**losses[name][False], **losses[name][True]}
    result["speedup"] = timing["espnet"]["median_s"] / timing["ours"]["median_s"]
    result["max_rel_loss_diff"] = max(
        abs(result["ours"]["first_step_losses"][key] - value) / max(abs(value), 1e-12)
        for key, value in result["espnet"]["first_step_losses"].items()
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch_size", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--memory", choices=["ours", "espnet"], default=None)
    parser.add_argument("--unfused", action="store_true", help="AdamW without fused=True")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(json.dumps(measure_memory(args) if args.memory else measure_time(args)))


if __name__ == "__main__":
    main()
