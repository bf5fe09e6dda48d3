"""What a checkpoint's pickle would allocate, read before anything is unpickled.

torch's weights-only unpickler admits a few constructors that take a size rather than data:
``bytearray(n)``, ``torch.FloatTensor(n)``, ``torch.UntypedStorage(n)``, ``_rebuild_qtensor(..., size, ...)``.
A pickle of a few bytes can call them with n in the billions (memory), or hand the result to ``set()``
(minutes of CPU and a Python object per element). A real checkpoint never calls them with a size: its
tensors are rebuilt from storages saved beside the pickle (``bytearray`` and the storage classes appear with
data, or as the type in a storage's persistent id). :func:`largest_allocation` follows the pickle's stack
without running it, the globals it names included, and returns the most elements any call of such a
constructor asks for.
"""

from __future__ import annotations

import math
import pickletools
from typing import Any

SIZED = {
    "builtins.bytearray",
    "torch.storage.UntypedStorage",
    "torch.storage.TypedStorage",
    "torch._utils._rebuild_qtensor",
}
LEGACY_MODULES = ("torch", "torch.cuda", "torch.sparse", "torch.cuda.sparse")  # torch.FloatTensor(n) and kin
REBUILD_FROM_TYPE = "torch._tensor._rebuild_from_type_v2"  # calls its first argument with its third


class _Global(str):
    """A global the pickle named (``module.name``)."""


class _Mark:
    """Where MARK left the stack."""


def _numbers(value: Any) -> list[int]:
    if not isinstance(value, (tuple, list)):
        return []
    return [v for v in value if isinstance(v, int) and not isinstance(v, bool)]


def _call_size(args: Any) -> int:
    """The most elements a call's arguments name: the product of its integer arguments, or of the integers
    of any tuple or list among them (a size such as ``(64, 3, 3, 3)``)."""
    sizes = [math.prod(_numbers(args)) if _numbers(args) else 0]
    if isinstance(args, (tuple, list)):
        sizes += [math.prod(_numbers(a)) for a in args if _numbers(a)]
    return max(abs(s) for s in sizes)


def sized(name: str) -> bool:
    """Whether global `name` (``module.name``) allocates from a size argument when called."""
    module, _, short = name.rpartition(".")
    legacy = module in LEGACY_MODULES and short.endswith(("Tensor", "Storage"))
    return legacy or name in SIZED


def largest_allocation(data: bytes) -> int:
    """The most elements any call of a size-taking constructor (:func:`sized`) in pickle `data` asks for;
    0 when none does.

    Raises ValueError for bytes that are not a pickle (an unknown opcode, a truncated argument, an op that
    pops more than the stack holds): the unpickler would refuse them too.
    """
    stack: list[Any] = []
    memo: dict[int, Any] = {}
    largest = 0

    def pop_mark() -> list[Any]:
        for i in range(len(stack) - 1, -1, -1):
            if isinstance(stack[i], _Mark):
                items = stack[i + 1 :]
                del stack[i:]
                return items
        raise ValueError("no MARK on the stack")

    def pop(count: int = 1) -> list[Any]:
        if count > len(stack) or any(isinstance(v, _Mark) for v in stack[len(stack) - count :]):
            raise ValueError("an op pops more than the stack holds")
        items = stack[len(stack) - count :] if count else []
        del stack[len(stack) - count :]
        return items

    for op, arg, _ in pickletools.genops(data):
        name = op.name
        if name == "MARK":
            stack.append(_Mark())
        elif name in ("INT", "BININT", "BININT1", "BININT2", "LONG", "LONG1", "LONG4"):
            stack.append(arg if isinstance(arg, int) and not isinstance(arg, bool) else None)
        elif name in ("TUPLE", "LIST"):
            items = pop_mark()
            stack.append(tuple(items) if name == "TUPLE" else items)
        elif name in ("TUPLE1", "TUPLE2", "TUPLE3"):
            stack.append(tuple(pop(int(name[-1]))))
        elif name == "EMPTY_TUPLE":
            stack.append(())
        elif name == "EMPTY_LIST":
            stack.append([])
        elif name in ("APPEND", "APPENDS"):
            items = pop() if name == "APPEND" else pop_mark()
            if not stack:
                raise ValueError(f"{name} with nothing to append to")
            if isinstance(stack[-1], list):
                stack[-1].extend(items)
        elif name in ("PUT", "BINPUT", "LONG_BINPUT", "MEMOIZE"):
            if not stack:
                raise ValueError(f"{name} with an empty stack")
            memo[len(memo) if name == "MEMOIZE" else int(arg)] = stack[-1]
        elif name in ("GET", "BINGET", "LONG_BINGET"):
            stack.append(memo.get(int(arg)))
        elif name == "GLOBAL":
            stack.append(_Global(str(arg).replace(" ", ".", 1)))
        elif name in ("REDUCE", "NEWOBJ", "NEWOBJ_EX"):
            func, args = pop(3 if name == "NEWOBJ_EX" else 2)[:2]
            if func == REBUILD_FROM_TYPE and isinstance(args, tuple) and len(args) > 2:
                func, args = args[0], args[2]
            if isinstance(func, _Global) and sized(func):
                largest = max(largest, _call_size(args))
            stack.append(None)
        elif name == "DUP":
            stack.append(stack[-1] if stack else None)
        elif name == "STOP":
            break
        else:  # every other op by its declared stack effect: what it pushes is not followed
            before = op.stack_before
            if pickletools.markobject in before:
                pop_mark()
                pop(before.index(pickletools.markobject))  # what lies below the mark (the dict of SETITEMS)
            else:
                pop(len(before))
            stack.extend(None for _ in op.stack_after)
    return largest
