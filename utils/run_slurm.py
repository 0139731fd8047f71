#!/usr/bin/env python3
"""Run jobs as a Slurm job array, one log each (Kaldi's slurm.pl interface).

See utils/job_runner.py for the options, the sbatch script it writes, and the log format.

Usage: utils/run_slurm.py [options] [JOB=1:N] LOG COMMAND [ARG ...]
"""

import sys

from job_runner import main

if __name__ == "__main__":
    sys.exit(main("slurm"))
