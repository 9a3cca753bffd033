"""Mixed precision: inside ``torch.autocast`` every public function computes in float32.

Under autocast a network hands over float16 or bfloat16 features, and autocast would run
matrix products in that precision too. Formulas 1 and 2 need float32: a bfloat16 path sum
keeps 8 bits. ``float32_under_autocast`` is the convention of
``torch.amp.custom_fwd(cast_inputs=torch.float32)``, for plain functions and for the
device of the inputs: when autocast is on for that device, floating inputs below float64
become float32 and the function runs with autocast off, so it gives bitwise the float32
result and returns float32. Outside autocast it changes nothing, and the checks refuse
half-precision inputs (no silent casting).
"""

import functools

import torch


# The devices torch_impl runs on, each with its own autocast state.
_DEVICES = ("cpu", "cuda")


def _autocast_device(values):
    """The device type of the first tensor in ``values`` if autocast is on there, else None."""
    for value in values:
        if isinstance(value, torch.Tensor):
            device = value.device.type
            on = device in _DEVICES and torch.is_autocast_enabled(device)
            return device if on else None
    return None


def _to_float32(value, device):
    """``value`` as float32 if it is a float tensor below float64 on ``device``."""
    if (isinstance(value, torch.Tensor) and value.is_floating_point()
            and value.dtype != torch.float64 and value.device.type == device):
        return value.float()
    return value


def float32_under_autocast(fn):
    """Decorate ``fn`` to run in float32 with autocast off when called under autocast.

    Also decorates ``backward`` of an autograd Function (``custom_bwd``'s convention):
    its gradient comes out float32 like the forward's output, whatever autocast state
    ``backward()`` was called in.
    """
    @functools.wraps(fn)
    def run(*args, **kwargs):
        # Checked first, as it costs a fifth of finding the inputs' device: this
        # runs twice in every training step.
        if not (torch.is_autocast_enabled("cpu") or torch.is_autocast_enabled("cuda")):
            return fn(*args, **kwargs)
        device = _autocast_device((*args, *kwargs.values()))
        if device is None:
            return fn(*args, **kwargs)
        with torch.autocast(device, enabled=False):
            return fn(*(_to_float32(a, device) for a in args),
                      **{k: _to_float32(v, device) for k, v in kwargs.items()})
    return run
