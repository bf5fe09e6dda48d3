"""Ctrl-C that something swallowed still stops a conversion or a frame loop: :class:`Interrupts`."""

from __future__ import annotations

import signal
import threading


class Interrupts:
    """Count every SIGINT while active, so that a Ctrl-C swallowed on its way still stops the work.

    Python turns a SIGINT into a KeyboardInterrupt in whatever code runs next, and some code drops it: a
    backend that catches it and finishes its export (litert-torch's converter), or a finalizer the garbage
    collector runs at that moment ("Exception ignored in ..."). While active, each SIGINT is counted as well
    as raised, and :meth:`check` raises KeyboardInterrupt at the next step boundary (after a frame, before an
    artifact is renamed into place) if one arrived. It only stands in for Python's own Ctrl-C handler, in the
    main thread, where Python delivers signals: where SIGINT is ignored (a background job of a shell script) or
    a program installed its own handler, it leaves that alone and does nothing.
    """

    def __init__(self) -> None:
        self.count = 0
        self._installed = False

    def __enter__(self) -> Interrupts:
        if (threading.current_thread() is threading.main_thread()
                and signal.getsignal(signal.SIGINT) is signal.default_int_handler):
            signal.signal(signal.SIGINT, self._handle)
            self._installed = True
        return self

    def __exit__(self, *exc) -> None:
        if self._installed:
            signal.signal(signal.SIGINT, signal.default_int_handler)
            self._installed = False

    def _handle(self, signum, frame) -> None:
        self.count += 1
        raise KeyboardInterrupt

    def check(self) -> None:
        """Raise KeyboardInterrupt if a SIGINT arrived since this context was entered."""
        if self.count:
            raise KeyboardInterrupt
