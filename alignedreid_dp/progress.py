"""Progress of a long run on stderr, the same in every implementation.

``local_dist(..., progress=True)`` of ``reference``, ``numba_impl`` and ``torch_impl``
reports the query-gallery pairs it has finished. Following the ecosystem's convention,
a terminal gets a ``tqdm`` bar when tqdm is installed (the ``progress`` extra); anything
else (a file, a pipe, a log collector, or no tqdm) gets one line per update, at most one
per percent, each ending in a newline, never a bare carriage return::

    local_dist: 1184/3060 pairs (38%)
"""
import contextlib
import sys


class _Lines:
    """One line per update, at most one per percent; the last one at 100%."""

    def __init__(self, func, total, unit, stream):
        self.func, self.total, self.unit, self.stream = func, total, unit, stream
        self.done, self.shown = 0, -1

    def update(self, count):
        self.done += count
        percent = 100 * self.done // self.total
        if percent > self.shown:
            self.shown = percent
            print(f"{self.func}: {self.done}/{self.total} {self.unit} ({percent}%)",
                  file=self.stream, flush=True)

    def close(self):
        pass


class _Silent:
    def update(self, count):
        pass

    def close(self):
        pass


def _tqdm_bar(func, total, unit, stream):
    """A tqdm bar on ``stream`` when tqdm is installed and ``stream`` is a terminal."""
    isatty = getattr(stream, "isatty", None)
    if not (isatty and isatty()):
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, desc=func, unit=unit.rstrip("s"), file=stream,
                leave=True, dynamic_ncols=True)


@contextlib.contextmanager
def report(func, total, enabled, unit="pairs"):
    """Report ``total`` units of work of ``func`` on stderr while the block runs.

    Parameters
    ----------
    func : str
        The name shown, e.g. ``"local_dist"``.
    total : int
        The units of work of the whole run (positive).
    enabled : bool
        False gives a reporter that prints nothing.
    unit : str
        What is counted, in the plural.

    Yields
    ------
    An object whose ``update(count)`` adds ``count`` finished units.
    """
    if not enabled:
        yield _Silent()
        return
    stream = sys.stderr
    shown = _tqdm_bar(func, total, unit, stream) or _Lines(func, total, unit, stream)
    try:
        yield shown
    finally:
        shown.close()
