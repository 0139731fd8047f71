#!/usr/bin/env python3
"""Copy a trained model's config.yaml with the synthesis precision set (for stage 7).

ESPnet's ``espnet2.bin.tts_inference`` builds the model from the training config, so the
decoder precision of ``tts: fast_vits`` (``tts_conf.inference_precision``: fp32 or bf16, see
``FastVITS.set_inference_precision``) is chosen by passing it a copy of that config with the
key set: ``--train_config <output>``. The training config itself is left untouched. The copy
is written atomically (temporary file, then rename).

Usage: local/set_inference_precision.py <config.yaml> <fp32|bf16> <output.yaml>
"""

import argparse
import os
import sys
import tempfile
from pathlib import Path

import yaml

PRECISIONS = ("fp32", "bf16")


def set_inference_precision(config_path: Path, precision: str, output_path: Path) -> None:
    """Write ``config_path`` to ``output_path`` with ``tts_conf.inference_precision`` set.

    Raises:
        ValueError: For an unknown precision, or bf16 for a model other than fast_vits
            (ESPnet's own ``vits`` has no such option).
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    with open(config_path, encoding="utf-8") as stream:
        config = yaml.safe_load(stream)
    if config.get("tts") != "fast_vits":
        if precision != "fp32":
            raise ValueError(
                f"{config_path}: tts is {config.get('tts')!r}; only tts: fast_vits has a bf16 synthesis path"
            )
    else:
        config["tts_conf"] = dict(config.get("tts_conf") or {}, inference_precision=precision)
    output_path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=output_path.parent, prefix=f".{output_path.name}.")
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as stream:
            yaml.safe_dump(config, stream, allow_unicode=True, sort_keys=False)
        os.replace(temporary, output_path)
    except BaseException:
        os.unlink(temporary)
        raise


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("config", type=Path, help="the trained model's config.yaml")
    parser.add_argument("precision", help="fp32 or bf16")
    parser.add_argument("output", type=Path, help="where to write the copy")
    args = parser.parse_args(argv)
    try:
        set_inference_precision(args.config, args.precision, args.output)
    except (ValueError, OSError) as error:
        print(f"set_inference_precision.py: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
