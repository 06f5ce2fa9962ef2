"""Tensor programs: one recording of registry ops on shaped arrays behind the compiled paths.

``capture`` records the user's forward and the registry VJPs of its backward in one eager run;
``Runner`` replays it on new data (numpy steps, fused elementwise regions as native kernels)."""
from .capture import NotReplayable, Recorder, capture
from .ir import Program, Step
from .run import Runner

__all__ = ["NotReplayable", "Program", "Recorder", "Runner", "Step", "capture"]
