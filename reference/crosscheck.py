"""See any implementation of the contract through NumPy, to compare it with the oracle.

``Implementation`` wraps a module that works on NumPy arrays (``reference``,
``numba_impl``) or on torch tensors (``torch_impl``, ``numba_impl.autograd``, a user's
module): it converts inputs in and results back, and computes gradients through the
module's ``*_vjp`` functions or through torch autograd. The test suite and
``python -m reference`` both use it.
"""
import importlib

import numpy as np

from .loss import TripletLoss

ARRAY_KINDS = ("numpy", "torch")


class NotProvided(AttributeError):
    """The module under test does not define a function of the contract."""


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
    """

    def __init__(self, module, array="numpy", device="cpu"):
        if array not in ARRAY_KINDS:
            raise ValueError(f"Implementation: array must be one of {ARRAY_KINDS}; got {array!r}")
        self.module = module
        self.array = array
        self.device = device
        self.name = module.__name__ if device == "cpu" else f"{module.__name__}[{device}]"

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

    def provides(self, name):
        return callable(getattr(self.module, name, None))

    def function(self, name):
        """The module's function ``name``; raises ``NotProvided`` when it has none."""
        if not self.provides(name):
            raise NotProvided(f"{self.module.__name__} does not provide {name}")
        return getattr(self.module, name)

    # conversions -----------------------------------------------------------------
    def to_native(self, value, requires_grad=False):
        """NumPy array (or reference.TripletLoss) to what the module takes.

        ndarray subclasses other than ``np.memmap`` (``np.matrix``, masked arrays) pass
        unchanged: converting them would drop what makes them differ (a mask), so the
        module itself must refuse them, as it refuses any array not of its kind.
        """
        if isinstance(value, TripletLoss):
            return self.function("TripletLoss")(value.margin)
        if self.array == "numpy" or type(value) not in (np.ndarray, np.memmap):
            return value
        import torch

        tensor = torch.from_numpy(np.array(value)).to(self.device)
        if requires_grad:
            tensor.requires_grad_(True)
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
