#!/usr/bin/env python3
"""Run jobs on this machine, in parallel, one log each (Kaldi's run.pl interface).

See utils/job_runner.py for the options and the log format.

Usage: utils/run_local.py [options] [JOB=1:N] LOG COMMAND [ARG ...]
"""

import sys

from job_runner import main

if __name__ == "__main__":
    sys.exit(main("local"))
