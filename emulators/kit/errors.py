"""Errors of the control plane and configuration: each names the field and what is allowed."""

from __future__ import annotations


class FieldError(ValueError):
    """A value a user supplied is not allowed; ``field`` is a dotted path such as ``action.status``."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message

    def as_dict(self) -> dict[str, str]:
        return {"error": f"{self.field}: {self.message}", "field": self.field}
