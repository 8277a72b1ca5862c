"""`register_autograd`: an op's autograd formula, registered from Python for the Autograd
dispatch key, like `torch.library.register_autograd` but with less work per call, and usable
under torch.func's transforms.

torch's generic wrapper rebuilds the op's schema argument list on every forward call to put
back the arguments the dispatcher dropped at their defaults (`torch._library.utils.
fill_defaults`: ~65 us per call on the 2-core CI machine, about a tiny convolution's own
time). Here the defaults are read from the schema once, at registration. Otherwise the
kernel does what torch's does: an `autograd.Function` whose forward redispatches below
Autograd and hands (ctx, inputs, output) to `setup_context`, and whose backward calls
`backward(ctx, *grads)`; without grad mode or a tensor that requires grad the op runs with
no Function at all. `torch.compile` and `torch.library.opcheck` see the same kind of Autograd
kernel as with `torch.library.register_autograd`.

torch.func (`grad`, `vjp`, `jacrev`, `vmap` of `grad` for per-sample gradients) cannot run an
autograd.Function from inside a dispatcher kernel, where its transform layers have already
been passed (torch's own custom ops fail there too: pytorch#168393, #179652). So `call`, the
way lightdl's Python ops invoke their compiled op, applies the op's Function itself, at the
Python level, while a transform is active and something needs a gradient.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

# Impl registrations live as long as their Library object; made at the first registration
# (only when the compiled ops loaded).
_LIBS: dict[str, torch.library.Library] = {}
# "namespace::name" -> the op's autograd.Function for `call` under torch.func transforms.
_TRANSFORM_FUNCTIONS: dict[str, type[torch.autograd.Function]] = {}


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

    def run_forward(keyset: Any, args: tuple[Any, ...]) -> Any:
        with torch._C._AutoDispatchBelowAutograd():
            if keyset is None:  # applied by `call` under a torch.func transform
                return op(*args)
            return op.redispatch(keyset & after_autograd, *args)

    def run_setup(ctx: Any, inputs: tuple[Any, ...], output: Any) -> None:
        args = inputs[:-1]  # the trailing keyset
        setup_context(ctx, args + defaults[len(args):], output)

    def run_backward(ctx: Any, *grads: Any) -> Any:
        # The trailing keyset argument has no gradient: hide it from the formula.
        needs = ctx.needs_input_grad
        ctx.needs_input_grad = needs[:-1]
        create_graph = torch.is_grad_enabled()
        try:
            if create_graph:
                # The backward ops have no derivatives of their own: run them untracked, and
                # make differentiating their results an error, not a silent zero.
                with torch.no_grad():
                    result = backward(ctx, *grads)
            else:
                result = backward(ctx, *grads)
        finally:
            ctx.needs_input_grad = needs
        # One gradient per argument given (the dispatcher drops those at their default, `call`
        # passes them all), then None for the keyset.
        result = result if isinstance(result, tuple) else (result,)
        n = len(needs) - 1
        result = (*result[:n], *[None] * (n - len(result)), None)
        return _first_order_only(qualname, ctx, grads, result) if create_graph else result

    class Formula(torch.autograd.Function):
        """Applied by the Autograd kernel below (forward with ctx: the cheaper kind to call,
        ~14 us less per call than one with setup_context)."""

        @staticmethod
        def forward(ctx: Any, *args: Any) -> Any:
            output = run_forward(args[-1], args[:-1])
            run_setup(ctx, args, output)
            return output

        backward = staticmethod(run_backward)

    class TransformFormula(torch.autograd.Function):
        """Applied by `call` under torch.func transforms, which run only Functions with a
        separate setup_context. torch's generated Function has none, so torch's own custom ops
        fail there (pytorch#168393)."""

        generate_vmap_rule = True  # vmap of grad: forward and backward vmapped as they are

        @staticmethod
        def forward(*args: Any) -> Any:
            return run_forward(args[-1], args[:-1])

        setup_context = staticmethod(run_setup)
        backward = staticmethod(run_backward)

        @staticmethod
        def jvp(ctx: Any, *tangents: Any) -> Any:
            raise RuntimeError(
                f"{qualname} has no forward-mode derivative (torch.func.jvp, jacfwd, hessian): "
                "use reverse mode (grad, vjp, jacrev), or lightdl.ops.use_backend('reference')")

    Formula.__name__ = Formula.__qualname__ = f"{name}_autograd"
    TransformFormula.__name__ = TransformFormula.__qualname__ = f"{name}_transform_autograd"
    _TRANSFORM_FUNCTIONS[qualname] = TransformFormula

    def kernel(keyset: torch._C.DispatchKeySet, *args: Any) -> Any:
        if torch.is_grad_enabled() and torch._C._any_requires_grad(*args):
            if torch._C._are_functorch_transforms_active():
                raise RuntimeError(
                    f"{qualname} reached the dispatcher's autograd under a torch.func "
                    "transform, which cannot differentiate it from there. That happens when "
                    f"torch.ops.lightdl.{name} is called directly (call lightdl.ops.{name} or "
                    "the lightdl.nn module instead) or under torch.compile of a transform "
                    "(run the transform eagerly)")
            return Formula.apply(*args, keyset)
        with torch._C._AutoDispatchBelowAutograd():
            return op.redispatch(keyset & after_autograd, *args)

    if namespace not in _LIBS:
        _LIBS[namespace] = torch.library.Library(namespace, "IMPL")
    _LIBS[namespace].impl(name, kernel, "Autograd", with_keyset=True)


class _NoSecondDerivative(torch.autograd.Function):
    """Identity on a backward's gradients (views), recording that they depend on `tracked`
    (the tensors autograd would differentiate them by); differentiating them raises."""

    generate_vmap_rule = True

    @staticmethod
    def forward(message: str, n: int, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(t.view_as(t) for t in tensors[:n])

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: Any) -> None:
        ctx.message = inputs[0]

    @staticmethod
    def backward(ctx: Any, *grads: Any) -> Any:
        raise RuntimeError(ctx.message)


def _first_order_only(qualname: str, ctx: Any, grads: tuple[Any, ...],
                      result: tuple[Any, ...]) -> tuple[Any, ...]:
    """`result`, the gradients a backward computed with create_graph on
    (torch.autograd.grad(..., create_graph=True), or any torch.func transform): where autograd
    could differentiate them again, they come out of a node that raises a clear error if it
    does, instead of passing for constants whose derivatives are zero. (torch's
    `once_differentiable` does this too, but without the op's name in the message, and it cuts
    the graph at the backward's inputs, so that autograd.grad reports the inputs unused.)"""
    tracked = [t for t in (*grads, *ctx.saved_tensors)
               if isinstance(t, torch.Tensor) and t.requires_grad]
    if not tracked:
        return result
    message = (f"{qualname} has no second derivative: its backward is a kernel of its own, "
               "not differentiable again (double backward, grad of grad, hessians). Run it "
               "with lightdl.ops.use_backend('reference') for higher-order gradients.")
    where = [i for i, t in enumerate(result) if isinstance(t, torch.Tensor)]
    views = _NoSecondDerivative.apply(message, len(where), *[result[i] for i in where], *tracked)
    out = list(result)
    for i, v in zip(where, views, strict=True):
        out[i] = v
    return tuple(out)


def call(op: torch._ops.OpOverloadPacket, *args: Any) -> Any:
    """`op(*args)`, dispatched past the Autograd key where autograd has nothing to record
    (grad mode off, or no argument requiring grad), as the op's Autograd kernel would decide:
    that kernel, a Python function, would only redispatch, at ~3.3 us a call (a cell step at
    batch 1 takes ~15). Not while torch.compile traces: it sees the op as usual. Under a
    torch.func transform that differentiates, the op's autograd.Function is applied here."""
    if torch.compiler.is_compiling():
        return op(*args)
    if torch.is_grad_enabled() and torch._C._any_requires_grad(*args):
        if torch._C._are_functorch_transforms_active():
            return _TRANSFORM_FUNCTIONS[op._qualified_op_name].apply(*args, None)
        return op(*args)
    with torch._C._AutoDispatchBelowAutograd():
        return op(*args)
