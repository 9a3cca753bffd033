"""numba_impl's two backends, ``numba_impl.cpu`` and ``numba_impl.gpu``, provide the one
protocol of ``numba_impl._backend`` (every name, with its signature), and the public
modules reach them only through ``_dispatch.backend``: no branch on the target by name."""
import ast
import inspect
import pathlib

import pytest

import numba_impl
from numba_impl import _backend, _dispatch

PROTOCOL = {name: inspect.signature(func) for name, func in vars(_backend.Backend).items()
            if inspect.isfunction(func) and not name.startswith("_")}


def _without_self(signature):
    return signature.replace(parameters=list(signature.parameters.values())[1:])


@pytest.mark.parametrize("target", [_dispatch.CPU, _dispatch.GPU])
def test_each_backend_provides_the_protocol(target):
    module = _dispatch.backend(target)
    missing = sorted(name for name in PROTOCOL if not callable(getattr(module, name, None)))
    assert not missing, f"{module.__name__} lacks {missing}"
    differ = {name: str(inspect.signature(getattr(module, name)))
              for name, signature in PROTOCOL.items()
              if inspect.signature(getattr(module, name)) != _without_self(signature)}
    assert not differ, f"{module.__name__}: signatures other than the protocol's: {differ}"


def test_protocol_names_the_backend_functions_the_public_modules_call():
    # every backend(target).NAME in numba_impl's public modules is in the protocol
    called = set()
    for path in pathlib.Path(numba_impl.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Call)
                    and getattr(node.value.func, "id", None) == "backend"):
                called.add(node.attr)
            elif isinstance(node, ast.Attribute) and getattr(node.value, "id", None) == "ops":
                called.add(node.attr)
    assert called and called <= set(PROTOCOL), sorted(called - set(PROTOCOL))


def test_no_branch_on_the_target_by_its_name():
    found = []
    for path in pathlib.Path(numba_impl.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Compare):
                names = [c.value for c in [node.left, *node.comparators]
                         if isinstance(c, ast.Constant) and c.value in ("cpu", "gpu")]
                if names:
                    found.append(f"{path.name}:{node.lineno}")
    assert not found, f"comparisons with a target's name: {found}"
