"""`register_autograd`: an op's autograd formula, registered from Python for the Autograd
dispatch key, like `torch.library.register_autograd` but with less work per call.

torch's generic wrapper rebuilds the op's schema argument list on every forward call to put
back the arguments the dispatcher dropped at their defaults (`torch._library.utils.
fill_defaults`: ~65 us per call on the 2-core CI machine, about a tiny convolution's own
time). Here the defaults are read from the schema once, at registration. Everything else
is what torch's wrapper does: an `autograd.Function` whose forward redispatches below
Autograd and hands (ctx, inputs, output) to `setup_context`, and whose backward calls
`backward(ctx, *grads)`; without grad mode or a tensor that requires grad the op runs with
no Function at all. `torch.compile` and `torch.library.opcheck` see the same kind of Autograd
kernel as with `torch.library.register_autograd`. (Neither supports `torch.func.grad` / `vjp`
through such an op in torch 2.13: functorch needs an autograd.Function it can run at its own
level, not one called from inside a dispatcher kernel.)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

# Impl registrations live as long as their Library object; made at the first registration
# (only when the compiled ops loaded).
_LIBS: dict[str, torch.library.Library] = {}


def register_autograd(qualname: str, backward: Callable[..., Any],
                      setup_context: Callable[..., None]) -> None:
    """Register `backward(ctx, *grads)` and `setup_context(ctx, inputs, output)` as the
    autograd formula of the op `qualname` ("lightdl::name", overload "default").

    `inputs` holds every schema argument (defaults filled in); `backward` returns one
    gradient (or None) per argument, as for `torch.library.register_autograd`."""
    namespace, name = qualname.split("::")
    op = getattr(getattr(torch.ops, namespace), name).default
    defaults = tuple(arg.default_value for arg in op._schema.arguments)
    after_autograd = torch._C._after_autograd_keyset

    class Formula(torch.autograd.Function):
        @staticmethod
        def forward(ctx: Any, *args: Any) -> Any:
            keyset, args = args[-1], args[:-1]
            with torch._C._AutoDispatchBelowAutograd():
                output = op.redispatch(keyset & after_autograd, *args)
            setup_context(ctx, args + defaults[len(args):], output)
            return output

        @staticmethod
        def backward(ctx: Any, *grads: Any) -> Any:
            # The trailing keyset argument has no gradient: hide it from the formula.
            needs = ctx.needs_input_grad
            ctx.needs_input_grad = needs[:-1]
            try:
                result = backward(ctx, *grads)
            finally:
                ctx.needs_input_grad = needs
            return (*result, None) if isinstance(result, tuple) else (result, None)

    Formula.__name__ = Formula.__qualname__ = f"{name}_autograd"

    def kernel(keyset: torch._C.DispatchKeySet, *args: Any) -> Any:
        if torch.is_grad_enabled() and torch._C._any_requires_grad(*args):
            return Formula.apply(*args, keyset)
        with torch._C._AutoDispatchBelowAutograd():
            return op.redispatch(keyset & after_autograd, *args)

    if namespace not in _LIBS:
        _LIBS[namespace] = torch.library.Library(namespace, "IMPL")
    _LIBS[namespace].impl(name, kernel, "Autograd", with_keyset=True)



def call(op: Callable[..., Any], *args: Any) -> Any:
    """`op(*args)`, dispatched past the Autograd key where autograd has nothing to record
    (grad mode off, or no argument requiring grad), as the op's Autograd kernel would decide:
    that kernel, a Python function, would only redispatch, at ~3.3 us a call (a cell step at
    batch 1 takes ~15). Not while torch.compile traces: it sees the op as usual."""
    if torch.compiler.is_compiling() or (torch.is_grad_enabled()
                                         and torch._C._any_requires_grad(*args)):
        return op(*args)
    with torch._C._AutoDispatchBelowAutograd():
        return op(*args)
