"""Errors: specific classes that also inherit the built-in a caller would catch."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import numpy as np
import pytest

from semdict_onnx import errors
from semdict_onnx._bases import Basis
from semdict_onnx._ranking import top_k_channels

PACKAGE = Path(errors.__file__).resolve().parent
ERROR_CLASSES = [
    cls
    for _, cls in inspect.getmembers(errors, inspect.isclass)
    if issubclass(cls, errors.SemdictError) and cls is not errors.SemdictError
]


def raised_names(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, name) of every `raise Name(...)` or `raise Name` in a module's syntax tree."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Raise) and node.exc is not None:
            target = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
            if isinstance(target, ast.Name):
                found.append((node.lineno, target.id))
    return found


def test_no_module_raises_the_bare_base_class():
    bare = [
        f"{path.relative_to(PACKAGE)}:{line}"
        for path in sorted(PACKAGE.rglob("*.py"))
        for line, name in raised_names(ast.parse(path.read_text(encoding="utf-8")))
        if name == "SemdictError"
    ]
    assert bare == [], "raise a specific class from errors.py, not SemdictError"


def test_the_scan_finds_a_bare_raise():
    source = "def f():\n    raise SemdictError('x')\n\n\ndef g():\n    raise ImageError\n"
    assert raised_names(ast.parse(source)) == [(2, "SemdictError"), (6, "ImageError")]


@pytest.mark.parametrize("cls", ERROR_CLASSES, ids=lambda cls: cls.__name__)
def test_every_error_also_inherits_a_built_in_exception(cls):
    built_ins = [
        base
        for base in cls.__mro__
        if base.__module__ == "builtins" and base not in (Exception, BaseException, object)
    ]
    assert built_ins, f"{cls.__name__} inherits no built-in exception besides Exception"


def test_except_value_error_catches_what_users_get():
    with pytest.raises(ValueError, match="one image's layer"):
        top_k_channels(np.zeros((4, 4)), 1)
    with pytest.raises(ValueError, match="numeric"):
        Basis(np.zeros(5))
    with pytest.raises(TypeError, match="top_k must be an integer"):
        top_k_channels(np.zeros((2, 2, 3)), "2")


def test_provider_warning_is_a_user_warning_among_the_errors():
    assert issubclass(errors.ProviderWarning, UserWarning)
