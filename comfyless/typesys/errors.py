"""The one error hierarchy of comfyless.

Every error that concerns a node carries `node_id`; every one that concerns a socket carries
`input_name`. `code` is ComfyUI's error `type` string where ComfyUI has one, so `to_dict()`
serialises to the same JSON shape ComfyUI's /prompt endpoint returns.
"""

from __future__ import annotations

from typing import Any, ClassVar


class WorkflowError(Exception):
    """Base of every error comfyless raises on purpose."""

    code: ClassVar[str] = "workflow_error"
    message_title: ClassVar[str] = "Workflow error"

    def __init__(
        self,
        message: str,
        *,
        node_id: str | None = None,
        input_name: str | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.node_id = node_id
        self.input_name = input_name
        self.extra = extra

    def details(self) -> str:
        """ComfyUI's short `details` string: the input name where there is one."""
        return self.input_name or ""

    def to_dict(self) -> dict[str, Any]:
        """ComfyUI's error object: {type, message, details, extra_info}."""
        info: dict[str, Any] = {}
        if self.node_id is not None:
            info["node_id"] = self.node_id
        if self.input_name is not None:
            info["input_name"] = self.input_name
        info.update({k: _jsonable(v) for k, v in self.extra.items()})
        return {
            "type": self.code,
            "message": self.message,
            "details": self.details(),
            "extra_info": info,
        }


def _jsonable(value: Any) -> Any:
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return repr(value)


class InvalidWorkflow(WorkflowError):
    """The JSON itself is malformed or has the wrong shape; `path` is the `$.a.b` location."""

    code = "invalid_workflow"

    def __init__(self, message: str, *, path: str = "$", **kw: Any) -> None:
        super().__init__(f"{message} (at {path})" if path else message, path=path, **kw)
        self.path = path


class UnknownNodeType(WorkflowError):
    code = "missing_node_type"


class MissingInput(WorkflowError):
    code = "required_input_missing"


class BadLink(WorkflowError):
    code = "bad_linked_input"


class TypeMismatch(WorkflowError):
    code = "return_type_mismatch"


class InvalidValue(WorkflowError):
    code = "invalid_input_type"


class ValueOutOfRange(WorkflowError):
    """Below min or above max; `code` depends on the side, as in ComfyUI."""

    code = "value_smaller_than_min"

    def __init__(self, message: str, *, too_big: bool, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.too_big = too_big
        self.code = "value_bigger_than_max" if too_big else "value_smaller_than_min"  # type: ignore[misc]


class NotInChoices(WorkflowError):
    code = "value_not_in_list"


class DependencyCycle(WorkflowError):
    code = "dependency_cycle"


class NoOutputs(WorkflowError):
    code = "prompt_no_outputs"


class CustomValidationFailed(WorkflowError):
    code = "custom_validation_failed"


class WorkflowInvalid(WorkflowError):
    """All validation errors of a workflow at once."""

    code = "prompt_outputs_failed_validation"

    def __init__(self, errors: list[WorkflowError], class_types: dict[str, str] | None = None):
        lines = [f"- {e}" for e in errors]
        super().__init__(
            f"Workflow failed validation with {len(errors)} error(s):\n" + "\n".join(lines)
        )
        self.errors = errors
        self.class_types = class_types or {}
        self.dependent_outputs: dict[str, list[str]] = {}

    def to_dict(self) -> dict[str, Any]:
        """ComfyUI's /prompt failure body: {"error": {...}, "node_errors": {...}}."""
        node_errors: dict[str, dict[str, Any]] = {}
        top_level: list[dict[str, Any]] = []
        for err in self.errors:
            if err.node_id is None:
                top_level.append(err.to_dict())
                continue
            entry = node_errors.setdefault(
                err.node_id,
                {
                    "errors": [],
                    "dependent_outputs": self.dependent_outputs.get(err.node_id, []),
                    "class_type": self.class_types.get(err.node_id),
                },
            )
            entry["errors"].append(err.to_dict())
        # ComfyUI builds `details` from the errors of the output nodes themselves only.
        own = [e.to_dict() for e in self.errors
               if e.node_id is not None and e.node_id in self.dependent_outputs.get(e.node_id, ())]
        error = {
            "type": self.code,
            "message": "Prompt outputs failed validation",
            "details": "\n".join(f"{e['message']}: {e['details']}" for e in top_level + own),
            "extra_info": {},
        }
        if len(top_level) == 1 and not node_errors:
            error = top_level[0]  # a prompt-level error (e.g. no outputs) stands alone
        return {"error": error, "node_errors": node_errors}


class NodeExecutionError(WorkflowError):
    """A node raised while running; raised `from` the original exception."""

    code = "node_execution_failed"


class Interrupted(WorkflowError):
    """The user interrupted the run (Ctrl-C); raised at the next step boundary."""

    code = "execution_interrupted"


class SchemaError(WorkflowError):
    """A developer bug in a node declaration."""

    code = "invalid_node_schema"


class ModelLoadError(WorkflowError):
    """A model file is missing, corrupt, refused (pickle) or of an unsupported layout."""

    code = "model_load_failed"
