"""A tiny arithmetic evaluator for derived search-space values (``d_model: "n_heads * _head_dim"``).

Space files are data, so they must not run code: expressions are parsed with :mod:`ast` and only numbers,
names, ``+ - * / // % **``, unary minus and ``min``/``max``/``round``/``int``/``abs`` calls are evaluated.
``model.x`` / ``train.x`` name a value of the other section of the same family.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable, Mapping
from typing import Any

SECTIONS = ("model", "train")
_BINARY: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY: dict[type, Callable[[Any], Any]] = {ast.USub: operator.neg, ast.UAdd: operator.pos}
_FUNCTIONS: dict[str, Callable[..., Any]] = {"min": min, "max": max, "round": round, "int": int, "abs": abs}
_MAX_EXPONENT = 64


class ExpressionError(ValueError):
    """The expression is not in the allowed subset, or names something unknown."""


def parse_expression(text: str) -> ast.Expression:
    """Parse and check ``text``; raises :class:`ExpressionError` on anything but plain arithmetic."""
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as err:
        raise ExpressionError(f"not an arithmetic expression ({err.msg})") from None
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            if not isinstance(node.func, ast.Name) or node.func.id not in _FUNCTIONS or node.keywords:
                raise ExpressionError(f"only the functions {sorted(_FUNCTIONS)} may be called")
        elif isinstance(node, ast.Attribute):
            if not isinstance(node.value, ast.Name) or node.value.id not in SECTIONS:
                raise ExpressionError("a dotted name must be model.NAME or train.NAME")
        elif isinstance(node, ast.Constant):
            if isinstance(node.value, bool) or not isinstance(node.value, int | float):
                raise ExpressionError(f"only numbers may appear as literals, not {node.value!r}")
        elif isinstance(node, ast.BinOp | ast.UnaryOp):
            if type(node.op) not in _BINARY and type(node.op) not in _UNARY:
                raise ExpressionError(f"operator {type(node.op).__name__} is not allowed; use + - * / // % **")
        elif not isinstance(node, ast.Expression | ast.Name | ast.Load | ast.operator | ast.unaryop):
            raise ExpressionError(f"{type(node).__name__} is not allowed; use numbers, names and + - * / // % **")
    return tree


def referenced_names(tree: ast.Expression, section: str) -> set[tuple[str, str]]:
    """The ``(section, name)`` pairs an expression reads; bare names belong to ``section``."""
    names: set[tuple[str, str]] = set()
    attribute_bases = {id(node.value) for node in ast.walk(tree) if isinstance(node, ast.Attribute)}
    function_names = {id(node.func) for node in ast.walk(tree) if isinstance(node, ast.Call)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            names.add((node.value.id, node.attr))  # type: ignore[attr-defined]
        elif isinstance(node, ast.Name) and id(node) not in attribute_bases and id(node) not in function_names:
            names.add((section, node.id))
    return names


def evaluate(tree: ast.Expression, section: str, values: Mapping[tuple[str, str], Any]) -> Any:
    """Evaluate a checked expression; ``values`` maps ``(section, name)`` to numbers."""

    def visit(node: ast.AST) -> Any:
        if isinstance(node, ast.Expression):
            return visit(node.body)
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Name):
            return _lookup((section, node.id))
        if isinstance(node, ast.Attribute):
            return _lookup((node.value.id, node.attr))  # type: ignore[attr-defined]
        if isinstance(node, ast.UnaryOp):
            return _UNARY[type(node.op)](visit(node.operand))
        if isinstance(node, ast.BinOp):
            left, right = visit(node.left), visit(node.right)
            if isinstance(node.op, ast.Pow) and abs(right) > _MAX_EXPONENT:
                raise ExpressionError(f"exponent {right} is too large (at most {_MAX_EXPONENT})")
            try:
                return _BINARY[type(node.op)](left, right)
            except ZeroDivisionError:
                raise ExpressionError("division by zero") from None
        if isinstance(node, ast.Call):
            return _FUNCTIONS[node.func.id](*(visit(arg) for arg in node.args))  # type: ignore[attr-defined]
        raise ExpressionError(f"{type(node).__name__} is not allowed")

    def _lookup(key: tuple[str, str]) -> Any:
        if key not in values:
            raise ExpressionError(f"unknown name {'.'.join(key)}")
        return values[key]

    return visit(tree)
