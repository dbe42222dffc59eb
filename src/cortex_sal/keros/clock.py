"""Moved to :mod:`cortex_sal.clock` (base layer); this alias goes once every import is updated."""

from ..clock import SYSTEM_CLOCK, Clock, ManualClock, SystemClock

__all__ = ["SYSTEM_CLOCK", "Clock", "ManualClock", "SystemClock"]
