"""The type stubs (``auditbuf/_auditbuf.pyi``, as the wheel ships them) against the native
module they describe: every public callable has a stub, every stub a callable, with the
same parameters — names, kinds and defaults — as ``inspect.signature`` reads at run time.
What a user's editor shows must be what a call does."""

import ast
import inspect
import pathlib
from typing import Any, Dict, List, Tuple

import auditbuf
from auditbuf import _auditbuf as native

STUB = pathlib.Path(auditbuf.__file__).with_name("_auditbuf.pyi")

# A parameter as both sides give it: name, kind, default (``EMPTY`` when it has none).
Param = Tuple[str, str, Any]
EMPTY = "<no default>"

# Dunder methods the stubs describe; pyo3 adds others (``__repr__``, comparisons) that
# need no stub of their own.
DUNDERS = {"__init__", "__enter__", "__exit__"}


def stub_params(fn: ast.FunctionDef) -> List[Param]:
    a = fn.args
    params: List[Param] = []
    positional = a.posonlyargs + a.args
    defaults = [EMPTY] * (len(positional) - len(a.defaults)) + [
        ast.literal_eval(d) for d in a.defaults
    ]
    for arg, default in zip(positional, defaults):
        kind = "POSITIONAL_ONLY" if arg in a.posonlyargs else "POSITIONAL_OR_KEYWORD"
        params.append((arg.arg, kind, default))
    if a.vararg:
        params.append((a.vararg.arg, "VAR_POSITIONAL", EMPTY))
    for arg, kw_default in zip(a.kwonlyargs, a.kw_defaults):
        default = EMPTY if kw_default is None else ast.literal_eval(kw_default)
        params.append((arg.arg, "KEYWORD_ONLY", default))
    if a.kwarg:
        params.append((a.kwarg.arg, "VAR_KEYWORD", EMPTY))
    # `self` and `cls` are not in what the runtime reports of a class or a bound method.
    if params and params[0][0] in ("self", "cls"):
        params = params[1:]
    return params


def runtime_params(obj: Any) -> List[Param]:
    params: List[Param] = []
    for p in inspect.signature(obj).parameters.values():
        default = EMPTY if p.default is inspect.Parameter.empty else p.default
        params.append((p.name, p.kind.name, default))
    if params and params[0][0] in ("self", "cls"):
        params = params[1:]
    return params


def is_property(fn: ast.FunctionDef) -> bool:
    return any(isinstance(d, ast.Name) and d.id == "property" for d in fn.decorator_list)


def stubs() -> Dict[str, ast.FunctionDef]:
    """Every function the stub file defines, as ``name`` or ``Class.name``."""
    found: Dict[str, ast.FunctionDef] = {}
    for node in ast.parse(STUB.read_text()).body:
        if isinstance(node, ast.FunctionDef):
            found[node.name] = node
        elif isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, ast.FunctionDef) and not is_property(item):
                    found[f"{node.name}.{item.name}"] = item
    return found


def runtime() -> Dict[str, Any]:
    """Every public callable of the native module, as ``name`` or ``Class.name``: a class
    with a signature of its own stands for its ``__init__``."""
    found: Dict[str, Any] = {}
    for name, obj in vars(native).items():
        if inspect.isclass(obj):
            if name.startswith("_"):
                continue
            try:
                inspect.signature(obj)
                found[f"{name}.__init__"] = obj
            except ValueError:
                pass  # made by the library, not by callers (Stats, Report, the errors)
            for attr, value in vars(obj).items():
                public = not attr.startswith("_") or attr in DUNDERS
                if public and (callable(value) or isinstance(value, classmethod)):
                    found[f"{name}.{attr}"] = getattr(obj, attr)
        elif callable(obj):
            found[name] = obj
    return found


def test_every_public_callable_has_a_stub_and_every_stub_a_callable() -> None:
    assert sorted(stubs()) == sorted(runtime())


def test_stub_parameters_are_those_of_the_runtime_signature() -> None:
    live = runtime()
    mismatches = []
    for name, fn in stubs().items():
        want = runtime_params(live[name])
        got = stub_params(fn)
        if got != want:
            mismatches.append(f"{name}:\n  stub    {got}\n  runtime {want}")
    assert not mismatches, "\n".join(mismatches)

