#!/usr/bin/env python3
"""Check a training config before the recipe spends hours on it (run.sh, before stage 4).

A VITS config states the hop length three times: ``feats_extract_conf.hop_length``, the
product of ``tts_conf.generator_params.decoder_upsample_scales`` and
``tts_conf.mel_loss_params.hop_length``. They must agree (see
``espnet2_vits_ext/vits/hop_length.py``); otherwise this prints one error line naming the
file and the two numbers, and exits with status 1.

Usage: local/check_train_config.py <config.yaml>
"""

import argparse
import sys
from pathlib import Path

import yaml


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("config", type=Path, help="the ESPnet training config (YAML)")
    args = parser.parse_args(argv)
    try:
        with open(args.config, encoding="utf-8") as stream:
            config = yaml.safe_load(stream)
    except (OSError, yaml.YAMLError) as error:
        print(f"check_train_config.py: error: {args.config}: {error}", file=sys.stderr)
        return 1
    if not isinstance(config, dict):
        print(f"check_train_config.py: error: {args.config}: not a YAML mapping", file=sys.stderr)
        return 1
    # Imported after the cheap checks: the model package pulls in torch and ESPnet.
    from espnet2_vits_ext.vits.hop_length import check_hop_lengths

    try:
        check_hop_lengths(config, str(args.config))
    except ValueError as error:
        print(f"check_train_config.py: error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
