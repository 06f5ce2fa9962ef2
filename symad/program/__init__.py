"""Tensor programs: one recording of registry ops on shaped arrays behind the compiled paths.

``capture`` records the user's forward and the registry VJPs of its backward in one eager run;
``Runner`` replays it on new data with the registry's numpy evaluation (one call per step)."""
from .capture import NotReplayable, Recorder, capture
from .ir import Program, Step
from .run import Runner

__all__ = ["NotReplayable", "Program", "Recorder", "Runner", "Step", "capture"]
