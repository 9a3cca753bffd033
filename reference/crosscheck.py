"""See any implementation of the contract through NumPy, to compare it with the oracle.

``Implementation`` wraps a module that works on NumPy arrays (``reference``,
``numba_impl``) or on torch tensors (``torch_impl``, ``numba_impl.autograd``, a user's
module): it converts inputs in and results back, and computes gradients through the
module's ``*_vjp`` functions or through torch autograd. The test suite and
``python -m reference`` both use it. Inputs keep their dtype (every integer dtype too) and
can be handed over in other memory layouts (``LAYOUTS``: transposed, strided, expanded, ...).
"""
import importlib

import numpy as np

from .loss import TripletLoss

ARRAY_KINDS = ("numpy", "torch")
# Memory layouts in which inputs can be handed to the module (``Implementation.layout``).
LAYOUTS = ("contiguous", "transposed", "permuted", "strided", "expanded", "reversed")


class NotProvided(AttributeError):
    """The module under test does not define a function of the contract."""


def in_layout(array, layout):
    """``(buffer, view)``: a fresh buffer and a view of it holding ``array``'s values, laid out
    in memory as ``layout`` says.

    - ``contiguous``: C order (the view is the buffer);
    - ``transposed``: the axes in reverse order in memory (column-major; ``x.t()`` for 2-D);
    - ``permuted``: the last axis outermost in memory;
    - ``strided``: every other element along every axis, starting at the second;
    - ``expanded``: stride 0 along every axis (longer than 1) on which the values repeat, as
      ``np.broadcast_to`` or ``Tensor.expand`` give (read-only for NumPy);
    - ``reversed``: negative strides along every axis (NumPy only: torch has none).
    """
    if layout not in LAYOUTS:
        raise ValueError(f"in_layout: layout must be one of {LAYOUTS}; got {layout!r}")
    if layout == "contiguous" or array.ndim == 0:  # a 0-d array has no strides to vary
        buffer = np.array(array)
        return buffer, buffer
    axes = tuple(range(array.ndim))
    if layout in ("transposed", "permuted"):
        order = axes[::-1] if layout == "transposed" else axes[-1:] + axes[:-1]
        buffer = np.ascontiguousarray(array.transpose(order))
        return buffer, buffer.transpose(np.argsort(order))
    if layout == "strided":
        buffer = np.zeros(tuple(2 * size + 1 for size in array.shape), dtype=array.dtype)
        view = buffer[(slice(1, None, 2),) * array.ndim]
        view[...] = array
        return buffer, view
    if layout == "reversed":
        flip = (slice(None, None, -1),) * array.ndim
        buffer = array[flip].copy()
        return buffer, buffer[flip]
    # expanded: keep one slice along each repeating axis, broadcast it back
    first = tuple(slice(0, 1) if size > 1 and _repeats(array, axis) else slice(None)
                  for axis, size in enumerate(array.shape))
    buffer = np.ascontiguousarray(array[first])
    return buffer, np.broadcast_to(buffer, array.shape)


def _repeats(array, axis):
    """True when every slice of ``array`` along ``axis`` equals the first."""
    first = np.broadcast_to(array.take([0], axis=axis), array.shape)
    return np.array_equal(array, first, equal_nan=array.dtype.kind == "f")


class Implementation:
    """A module under test, called with NumPy arrays and answering with NumPy arrays.

    Parameters
    ----------
    module : module
        Defines (some of) the functions of the contract.
    array : {"numpy", "torch"}
        The kind of array the module's functions take.
    device : str
        The torch device inputs are moved to (torch modules only).
    layout : str
        The memory layout of the array inputs, one of ``LAYOUTS`` (see ``in_layout``).
    stand_ins : iterable of str
        Functions the module lacks that the oracle computes instead (``with_stand_ins``).
    calls : set, optional
        Where the names of the module's own functions are recorded as they are used;
        shared by the variants made with ``with_layout`` (a fresh set by default).
    """

    def __init__(self, module, array="numpy", device="cpu", layout="contiguous", stand_ins=(),
                 calls=None):
        if array not in ARRAY_KINDS:
            raise ValueError(f"Implementation: array must be one of {ARRAY_KINDS}; got {array!r}")
        if layout not in LAYOUTS:
            raise ValueError(f"Implementation: layout must be one of {LAYOUTS}; got {layout!r}")
        self.module = module
        self.array = array
        self.device = device
        self.layout = layout
        self.stand_ins = frozenset(stand_ins)
        self.calls = set() if calls is None else calls
        tags = [t for t in (device, layout) if t not in ("cpu", "contiguous")]
        self.name = module.__name__ + (f"[{', '.join(tags)}]" if tags else "")

    @classmethod
    def load(cls, module_name, array=None, device="cpu"):
        """Import ``module_name`` (import errors propagate) and guess its array kind."""
        module = importlib.import_module(module_name)
        if array is None:
            torch_like = module_name.startswith("torch_impl") or module_name.endswith(".autograd")
            array = "torch" if torch_like else "numpy"
        return cls(module, array, device)

    def __repr__(self):
        return f"Implementation({self.name}, array={self.array})"

    def _variant(self, **changes):
        kwargs = dict(array=self.array, device=self.device, layout=self.layout,
                      stand_ins=self.stand_ins, calls=self.calls)
        kwargs.update(changes)
        return type(self)(self.module, **kwargs)

    def with_layout(self, layout):
        """The same module, its array inputs handed over in ``layout``."""
        return self._variant(layout=layout)

    def with_stand_ins(self, names):
        """The same module, with the oracle computing the functions ``names`` it lacks.

        A test of one function that needs another (a value compared with a diagonal, a
        loss beside a distance) then still judges the function the module has. Calls of
        a stand-in go to ``reference`` whole, with NumPy arguments; ``TripletLoss``
        cannot stand in (the module's own losses take only its own).
        """
        names = frozenset(names)
        if "TripletLoss" in names:
            raise ValueError("Implementation.with_stand_ins: TripletLoss cannot stand in")
        return self._variant(stand_ins=names, calls=set())

    def fresh(self):
        """The same module with an empty record of calls."""
        return self._variant(calls=set())

    def provides(self, name):
        return callable(getattr(self.module, name, None))

    def function(self, name):
        """The module's function ``name``; raises ``NotProvided`` when it has none.

        A stand-in (``with_stand_ins``) is the oracle's function, for NumPy modules only:
        a torch module's callers would hand it tensors.
        """
        if name in self.stand_ins and self.array == "numpy":
            return getattr(_oracle().module, name)
        if not self.provides(name):
            raise NotProvided(f"{self.module.__name__} does not provide {name}")
        self.calls.add(name)
        return getattr(self.module, name)

    def _stands_in(self, name, vjp=False):
        """True when a call of ``name`` (or of its VJP) goes to the oracle."""
        return name in self.stand_ins or (vjp and self.array == "numpy"
                                          and f"{name}_vjp" in self.stand_ins)

    # conversions -----------------------------------------------------------------
    def to_native(self, value, requires_grad=False):
        """NumPy array (or reference.TripletLoss) to what the module takes, in ``self.layout``.

        The dtype is kept (every integer dtype too). A torch input in another layout is a
        view of a leaf tensor that keeps its gradient (``retain_grad``); torch has no
        negative strides, so ``reversed`` gives it a copy, as torch's own error advises.
        ndarray subclasses other than ``np.memmap`` (``np.matrix``, masked arrays) pass
        unchanged: converting them would drop what makes them differ (a mask), so the
        module itself must refuse them, as it refuses any array not of its kind.
        """
        if isinstance(value, TripletLoss):
            return self.function("TripletLoss")(value.margin)
        if type(value) not in (np.ndarray, np.memmap):
            return value
        buffer, view = in_layout(value, self.layout)
        if self.array == "numpy":
            return view
        import torch

        if min(view.strides, default=0) < 0:
            buffer = view = np.array(view)
        base = torch.from_numpy(buffer).to(self.device).requires_grad_(requires_grad)
        if view is buffer:
            return base
        offset = (view.__array_interface__["data"][0] - buffer.ctypes.data) // view.itemsize
        tensor = base.as_strided(view.shape, [s // view.itemsize for s in view.strides], offset)
        if requires_grad:
            tensor.retain_grad()
        return tensor

    def to_numpy(self, value):
        """A result of the module, as NumPy (tuples element by element)."""
        if isinstance(value, (tuple, list)):
            return type(value)(self.to_numpy(v) for v in value)
        if self.array == "torch" and hasattr(value, "detach"):
            return value.detach().cpu().numpy()
        return np.asarray(value) if np.isscalar(value) or isinstance(value, np.generic) else value

    # calls -----------------------------------------------------------------------
    def __call__(self, name, *args, **kwargs):
        """``module.name(*args, **kwargs)`` on converted inputs, result as NumPy."""
        if self._stands_in(name):
            return _oracle().with_layout(self.layout)(name, *args, **kwargs)
        fn = self.function(name)
        native = [self.to_native(a) for a in args]
        native_kw = {k: self.to_native(v) for k, v in kwargs.items()}
        return self.to_numpy(fn(*native, **native_kw))

    def vjp(self, name, *args, grad_out=None, **kwargs):
        """Gradients of ``name``'s (first) output with respect to its float array arguments.

        ``grad_out`` is the output gradient; ``None`` for scalar losses (gradient 1).
        NumPy modules answer through ``module.<name>_vjp``; torch modules through autograd.
        Returns one array, or a tuple when several arguments are differentiated.
        """
        if self._stands_in(name, vjp=True):
            return _oracle().with_layout(self.layout).vjp(name, *args, grad_out=grad_out, **kwargs)
        if self.array == "numpy":
            vjp = self.function(f"{name}_vjp")
            extra = () if grad_out is None else (grad_out,)
            native = [self.to_native(a) for a in args]
            return self.to_numpy(vjp(*native, *extra, **{k: self.to_native(v) for k, v in kwargs.items()}))
        fn = self.function(name)
        wrt = [isinstance(a, np.ndarray) and a.dtype.kind == "f" for a in args]
        native = [self.to_native(a, requires_grad=w) for a, w in zip(args, wrt)]
        out = fn(*native, **{k: self.to_native(v) for k, v in kwargs.items()})
        out = out[0] if isinstance(out, tuple) else out
        if grad_out is None:
            out.backward()
        else:
            out.backward(self.to_native(np.asarray(grad_out, dtype=args[0].dtype)))
        import torch

        grads = [
            self.to_numpy(t.grad if t.grad is not None else torch.zeros_like(t))
            for t, w in zip(native, wrt) if w
        ]
        return grads[0] if len(grads) == 1 else tuple(grads)


def _oracle():
    """``reference`` through this adapter: what stands in for a function a module lacks."""
    import reference

    return Implementation(reference)


BUILTIN = ("numba_impl", "torch_impl", "numba_impl.autograd")


def installed():
    """Each built-in implementation as ``(name, Implementation or the ImportError it raised)``."""
    found = []
    for name in BUILTIN:
        try:
            found.append((name, Implementation.load(name)))
        except ImportError as error:
            found.append((name, error))
    return found
