"""The command line: `gearjobs serve / run / attach / status / ls`."""

from gearjobs.cli._main import main

__all__ = ("main",)
