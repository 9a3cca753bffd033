"""Compile the bodies written once (``_dp``, ``_scalar``) for one target.

Numba code can call a plain Python function only once it is compiled for the caller's
target, and a plain function's globals name the plain functions of its module. So
``for_target`` compiles a copy of every function of a module whose globals name the
compiled copies: ``_scalar.stripe_of_sq`` calling ``euclid`` then calls the ``euclid``
compiled for the same target. ``overrides`` rebind a global for one target (the CPU's
vectorisable ``tanh``). The modules themselves stay plain Python that runs as it is (the
CUDA simulator, ``NUMBA_DISABLE_JIT``).
"""
import types


def for_target(module, compile_function, **overrides):
    """A module holding every function of ``module`` compiled with ``compile_function``.

    Parameters
    ----------
    module : module
        Plain functions that both targets' compilers accept.
    compile_function : callable
        ``numba.njit(...)`` or ``numba.cuda.jit(device=True)``.
    **overrides
        Globals of ``module`` replaced for this target, e.g. ``tanh=...``.
    """
    space = dict(vars(module), **overrides)
    compiled = types.ModuleType(module.__name__, module.__doc__)
    for name, func in vars(module).items():
        if isinstance(func, types.FunctionType) and func.__module__ == module.__name__:
            copy = types.FunctionType(func.__code__, space, name, func.__defaults__,
                                      func.__closure__)
            copy.__qualname__, copy.__module__, copy.__doc__ = (
                func.__qualname__, func.__module__, func.__doc__)
            space[name] = compile_function(copy)
            setattr(compiled, name, space[name])
    return compiled
