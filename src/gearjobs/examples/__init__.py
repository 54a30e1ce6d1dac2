"""The example jobs served by `gearjobs serve --examples`: echo, sleep, count, fail, tally."""

from gearjobs.examples._jobs import example_jobs

__all__ = ("example_jobs",)
