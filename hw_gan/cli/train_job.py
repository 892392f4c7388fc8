"""The job behind `python train_main.py` / `hwgan train` once its flags are a validated config:
runs it under SIGTERM/SIGINT handlers that ask training to save and stop, prints the JSON summary
and turns a user's mistake into one line and exit code 2.

hw_gan.cli.train (the flags) imports this module by name, only when a job runs: this is where
TensorFlow gets imported, so a --dry_run or a refused flag answers at once.
"""

from __future__ import annotations

import contextlib
import json
import signal
import sys

from hw_gan import config as config_lib
from hw_gan import experiment
from hw_gan.cli import errors
from hw_gan.training import StopRequest


def train(cfg: config_lib.ExperimentConfig, deterministic: bool = False,
          overwrite_export: bool = False) -> int:
    """--mode=train|evaluate|export|sample: runs `cfg`; returns the exit code."""
    with stop_on_signals(StopRequest()) as stop:
        return _report(lambda: experiment.run(cfg, deterministic=deterministic,
                                              overwrite_export=overwrite_export, stop=stop))


def adapt(acfg: config_lib.AdaptConfig) -> int:
    """--mode=adapt: adds one writer to a trained style_cgan; returns the exit code."""
    return _report(lambda: experiment.run_adapt(acfg))


@contextlib.contextmanager
def stop_on_signals(stop: StopRequest):
    """SIGTERM and SIGINT ask `stop` to save and stop after the current step (main thread
    only; elsewhere the caller's handlers stay); the previous handlers come back after."""
    previous = {}

    def handler(signum, frame):
        stop.request(f"signal {signum}")

    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            previous[sig] = signal.signal(sig, handler)
        except ValueError:  # not the main thread
            pass
    try:
        yield stop
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _report(job) -> int:
    """Runs a job, prints its JSON summary; user errors become one line and exit code 2 (files
    included: an OSError names its file), anything else one line and exit code 1 (a traceback
    with --debug), an interruption (checkpoint already saved) exit code 130."""
    try:
        summary = job()
    except KeyboardInterrupt as e:
        print(f"\ninterrupted: {e}", file=sys.stderr)
        return 130
    except (ValueError, OSError, RuntimeError, KeyError) as e:
        return errors.report(e)
    except Exception as e:
        if errors.debug():
            raise
        return errors.unexpected(e)
    print(json.dumps(summary, indent=1, default=str))
    return 0


