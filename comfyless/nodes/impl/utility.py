"""Execute of the utility nodes (nodes/utility.py)."""

from __future__ import annotations

import ast
import json
import math
import operator

import torch

from ...files import write_atomic
from ...typesys.schema import Result
from . import image_files


def concatenate(ctx, string_a: str, string_b: str, delimiter: str = ""):
    return (delimiter.join((string_a, string_b)),)


def replace(ctx, string: str, find: str, replace: str):
    return (string.replace(find, replace),)


def _image_batch(image, node: str, input_name: str = "image") -> torch.Tensor:
    """`image` as an IMAGE tensor [B, H, W, C], or a ValueError naming the input."""
    if not isinstance(image, torch.Tensor) or image.ndim != 4:
        found = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
        raise ValueError(f"{node} input '{input_name}': expected an IMAGE tensor "
                         f"[batch, height, width, channels], got {found}")
    return image


def image_size(ctx, image):
    batch, height, width, _ = _image_batch(image, "GetImageSize").shape
    return (int(width), int(height), int(batch))


# -- PreviewAny ----------------------------------------------------------------------------

def preview_text(source) -> str:
    """ComfyUI's rule: strings as they are, scalars by str(), others as indented JSON, else
    str() (tensors with 6 edge items), else a fixed note."""
    if source is None:
        return "None"
    if isinstance(source, str):
        return source
    if isinstance(source, (bool, int, float)):
        return str(source)
    try:
        return json.dumps(source, indent=4)
    except (TypeError, ValueError):
        pass
    try:
        torch.set_printoptions(edgeitems=6)
        return str(source)
    except Exception:  # a value whose __str__ fails is still previewed, as ComfyUI does
        return "source exists, but could not be serialized."
    finally:
        torch.set_printoptions(profile="default")


def preview_any(ctx, source=None):
    text = preview_text(source)
    return Result((text,), {"text": [text]})


# -- SaveText ------------------------------------------------------------------------------

def _text_for(format: str, text: str) -> str:
    """The file content: JSON text is re-indented (2 spaces) when it parses, else kept."""
    if format == "json":
        try:
            return json.dumps(json.loads(text), indent=2, ensure_ascii=False)
        except json.JSONDecodeError:
            return text
    return text


def save_text(ctx, text: str, filename_prefix: str = "ComfyUI", format: str = "txt"):
    if not isinstance(text, str):
        raise ValueError(f"SaveText input 'text': expected a STRING, got {type(text).__name__}")
    # ComfyUI expands the prefix variables with a 1 x 1 "image" (%width% and %height% -> 1)
    prefix = image_files.expand_prefix(filename_prefix, 1, 1)
    path = ctx.save_path(prefix, f".{format}", folder="output", gap="")
    content = _text_for(format, text)
    write_atomic(path, lambda tmp: tmp.write_text(content, encoding="utf-8"))
    root = ctx.paths.folders("output")[0]
    return Result((text,), {"text": [text],
                            "files": [image_files.ui_entry(path, root, "output")]})


# -- ComfyMathExpression -------------------------------------------------------------------

MAX_EXPONENT = 4000  # ComfyUI's cap on pow() exponents; ** gets the same cap here


MAX_INT_BITS = 1 << 16  # whole-number powers beyond this size are refused, not computed


def _pow(base, exponent):
    if abs(exponent) > MAX_EXPONENT:
        raise ValueError(f"exponent {exponent} exceeds the maximum allowed ({MAX_EXPONENT})")
    # Nested powers of whole numbers ((a ** 4000) ** 4000) would otherwise grow without bound.
    if isinstance(base, int) and isinstance(exponent, int) and \
            abs(base).bit_length() * abs(exponent) > MAX_INT_BITS:
        raise ValueError(f"{base} ** {exponent} is too large")
    return pow(base, exponent)


def _sum(*args):
    """sum(values) and sum(a, b, c) both work."""
    return sum(args[0]) if len(args) == 1 and isinstance(args[0], list) else sum(args)


MATH_FUNCTIONS = {
    "sum": _sum, "min": min, "max": max, "abs": abs, "round": round, "pow": _pow,
    "sqrt": math.sqrt, "ceil": math.ceil, "floor": math.floor, "log": math.log,
    "log2": math.log2, "log10": math.log10, "sin": math.sin, "cos": math.cos, "tan": math.tan,
    "int": int, "float": float,
}
BINARY_OPERATORS = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
    ast.Div: operator.truediv, ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod,
    ast.Pow: _pow,
}
UNARY_OPERATORS = {ast.USub: operator.neg, ast.UAdd: operator.pos}


class ExpressionError(ValueError):
    """An expression that is not allowed or cannot be evaluated."""


class _Evaluator:
    """Walks a parsed expression, allowing only the node types listed above; never eval()."""

    def __init__(self, names: dict[str, object]):
        self.names = names

    def visit(self, node: ast.AST):
        if isinstance(node, ast.Expression):
            return self.visit(node.body)
        if isinstance(node, ast.Constant):
            if isinstance(node.value, bool) or not isinstance(node.value, (int, float)):
                raise ExpressionError(f"only numbers are allowed, found {node.value!r}")
            return node.value
        if isinstance(node, ast.Name):
            return self._name(node.id)
        if isinstance(node, ast.BinOp) and type(node.op) in BINARY_OPERATORS:
            return BINARY_OPERATORS[type(node.op)](self.visit(node.left), self.visit(node.right))
        if isinstance(node, ast.UnaryOp) and type(node.op) in UNARY_OPERATORS:
            return UNARY_OPERATORS[type(node.op)](self.visit(node.operand))
        if isinstance(node, ast.Call):
            return self._call(node)
        raise ExpressionError(f"{_describe(node)} is not allowed")

    def _name(self, name: str):
        if name not in self.names:
            known = ", ".join(sorted(self.names)) or "none connected"
            raise ExpressionError(f"unknown name {name!r} (the values are: {known})")
        return self.names[name]

    def _call(self, node: ast.Call):
        if not isinstance(node.func, ast.Name) or node.func.id not in MATH_FUNCTIONS:
            allowed = ", ".join(MATH_FUNCTIONS)
            raise ExpressionError(f"{_describe(node.func)} is not an allowed function "
                                  f"(allowed: {allowed})")
        if node.keywords:
            raise ExpressionError(f"{node.func.id}(): keyword arguments are not allowed")
        args = [self.visit(arg) for arg in node.args]
        return MATH_FUNCTIONS[node.func.id](*args)


def _describe(node: ast.AST) -> str:
    text = ast.unparse(node)
    return f"{type(node).__name__} {text!r}" if len(text) <= 40 else type(node).__name__


def evaluate_expression(expression: str, values: dict[str, object]):
    """The value of `expression` with each letter bound to its value and `values` to the list."""
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError as exc:
        raise ExpressionError(f"not a valid expression: {exc.msg}") from None
    except (RecursionError, MemoryError):
        raise ExpressionError("the expression is nested too deeply") from None
    names = dict(values)
    names["values"] = list(values.values())
    try:
        return _Evaluator(names).visit(tree)
    except ExpressionError:
        raise
    except RecursionError:
        raise ExpressionError("the expression is nested too deeply") from None
    except (ArithmeticError, ValueError, TypeError) as exc:  # 1/0, sqrt(-1), min() ...
        raise ExpressionError(f"{type(exc).__name__}: {exc}") from None


def math_expression(ctx, expression: str, **connected):
    where = "ComfyMathExpression input 'expression'"
    if not expression.strip():
        raise ValueError(f"{where}: the expression is empty")
    # Sockets arrive as "values.a": the expression names them by the letter after the dot.
    values = {name.split(".", 1)[1]: value for name, value in sorted(connected.items())}
    try:
        result = evaluate_expression(expression, values)
    except ExpressionError as exc:
        raise ValueError(f"{where}: {expression!r}: {exc}") from None
    if isinstance(result, bool) or not isinstance(result, (int, float)):
        raise ValueError(f"{where}: {expression!r} must give a number, "
                         f"got {type(result).__name__} {result!r}")
    try:
        as_float = float(result)
    except OverflowError:
        as_float = math.inf
    if not math.isfinite(as_float):
        raise ValueError(f"{where}: {expression!r} gave a non-finite result ({result})")
    return (as_float, int(result), result != 0)


# -- ImageCompare --------------------------------------------------------------------------

def image_compare(ctx, image_a=None, image_b=None, compare_view=None):
    ui = {"a_images": [], "b_images": []}
    for key, images, name, prefix in (("a_images", image_a, "image_a", "comfy.compare.a"),
                                      ("b_images", image_b, "image_b", "comfy.compare.b")):
        if images is not None and len(_image_batch(images, "ImageCompare", name)) > 0:
            # PreviewImage's naming: the prefix plus "_temp_<5 random letters>".
            unique = prefix + image_files.temp_prefix().removeprefix("ComfyUI")
            ui[key] = image_files.save_images(ctx, images, unique, folder="temp",
                                              compress_level=1)
    return Result((), ui)
