"""What a command that runs until it is stopped (``serve``, ``worker``) does once its stack is
loaded: collect garbage as CPython does by default.

:func:`aether.entry.collect_rarely` raised the collector's threshold for the start-up, where
the objects made live as long as the process; a server that runs for days collects its
garbage cycles at the usual pace instead.
"""

from __future__ import annotations

import gc

DEFAULT_GC_THRESHOLD = 700  # CPython 3.11-3.13's first-generation threshold


def collect_as_usual() -> None:
    gc.set_threshold(DEFAULT_GC_THRESHOLD, *gc.get_threshold()[1:])
