"""The implementation whose public functions compute the blocks, named by module.

Block tasks carry an ``Engine`` (a module name and its array kind: two strings, cheap to
send to a Dask worker) and import the module where they run. The call goes through
``reference.crosscheck.Implementation``, the adapter the test suite uses, so any module
that passes the suite (``numba_impl``, ``torch_impl``, a user's ``--impl`` module) can
compute retrieval's blocks.
"""
import functools
import types
from dataclasses import dataclass

from reference.crosscheck import Implementation

from ._inputs import describe


@functools.lru_cache(maxsize=None)
def _loaded(module, array):
    return Implementation.load(module, array)


@dataclass(frozen=True)
class Engine:
    """``Engine(module, array)("local_dist", x, y)`` calls ``module.local_dist`` on
    NumPy arrays (converted to torch tensors when ``array == "torch"``) and answers
    with a NumPy array."""

    module: str
    array: str

    def __call__(self, name, *args):
        return _loaded(self.module, self.array)(name, *args)


def engine(func, impl, needs):
    """Check ``impl`` (a module, its name or an ``Implementation``); it must provide
    ``needs``. The array kind of a module is guessed by its name as the test suite does
    (``torch_impl...`` and ``....autograd`` take torch tensors); an ``Implementation``
    says it."""
    if isinstance(impl, types.ModuleType):
        impl = impl.__name__
    if isinstance(impl, str):
        try:
            loaded = _loaded(impl, None)
        except ImportError as error:
            raise ValueError(f"{func}: impl must name an importable module such as "
                             f"'numba_impl'; got {impl!r} ({error})") from None
    elif isinstance(impl, Implementation):
        loaded = impl
    else:
        raise TypeError(f"{func}: impl must be a module, a module name or a "
                        f"reference.crosscheck.Implementation; got {describe(impl)}")
    if loaded.device != "cpu":
        raise ValueError(f"{func}: impl must compute on the CPU; got device {loaded.device!r}")
    missing = [name for name in needs if not loaded.provides(name)]
    if missing:
        raise ValueError(f"{func}: impl {loaded.module.__name__!r} must provide "
                         f"{', '.join(needs)}; it lacks {', '.join(missing)}")
    return Engine(loaded.module.__name__, loaded.array)
