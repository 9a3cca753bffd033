"""torch_impl's distances behind a custom autograd Function that reads ``needs_input_grad``
the wrong way round.

With both inputs requiring a gradient nothing shows; with only ``x`` (a frozen gallery
``y``) ``x`` gets no gradient and with only ``y`` neither does ``y``: silently, training
one branch does nothing.
"""
import torch

import torch_impl


class _Pairwise(torch.autograd.Function):
    @staticmethod
    @torch.amp.custom_fwd(device_type="cpu", cast_inputs=torch.float32)
    def forward(ctx, x, y, func):
        ctx.save_for_backward(x, y)
        ctx.func = func
        return func(x, y)

    @staticmethod
    @torch.amp.custom_bwd(device_type="cpu")
    def backward(ctx, grad):
        if torch.is_grad_enabled():  # create_graph=True: no second derivative here
            raise RuntimeError("this function cannot be differentiated twice")
        x, y = ctx.saved_tensors
        with torch.enable_grad():
            xd, yd = x.detach().requires_grad_(), y.detach().requires_grad_()
            grad_x, grad_y = torch.autograd.grad(ctx.func(xd, yd), (xd, yd), grad)
        # the bug: each input's flag decides the other input's gradient
        return (grad_x if ctx.needs_input_grad[1] else None,
                grad_y if ctx.needs_input_grad[0] else None, None)


def _wrapped(name):
    func = getattr(torch_impl, name)

    def call(x, y):
        return _Pairwise.apply(x, y, func)

    call.__name__ = name
    return call


euclidean_dist = _wrapped("euclidean_dist")
batch_euclidean_dist = _wrapped("batch_euclidean_dist")
batch_local_dist = _wrapped("batch_local_dist")
pair_local_dist = _wrapped("pair_local_dist")
