"""pydantic's validation errors said in this project's terms: a ConfigError naming the field, never the value."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from sslreconciler.model.errors import ConfigError

if TYPE_CHECKING:  # pydantic costs ~50 ms to import: not on --help's path
    from pydantic import ValidationError


def config_error_from_validation(file: Path | str, exc: ValidationError) -> ConfigError:
    """The first problem pydantic found, as a ConfigError naming the field. Never echoes input values."""
    first = exc.errors(include_input=False, include_url=False)[0]
    field = ".".join(str(part) for part in first["loc"]) or None
    more = len(exc.errors()) - 1
    reason = _in_our_words(first) + (f" (and {more} more problem{'s' if more > 1 else ''})" if more else "")
    return ConfigError(file, reason, field)


# pydantic's wording for the common cases, said in this project's terms
_WORDS = {
    "model_type": "must be a JSON object (e.g. {...})",
    "model_attributes_type": "must be a JSON object (e.g. {...})",
    "dict_type": "must be a JSON object (e.g. {...})",
    "list_type": "must be a JSON list (e.g. [...])",
    "string_type": "must be a string",
    "int_type": "must be a whole number",
    "int_parsing": "must be a whole number",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "missing": "is required",
}


def _in_our_words(error: Any) -> str:
    kind = str(error.get("type", ""))
    if kind == "extra_forbidden":
        name = str(error["loc"][-1]) if error.get("loc") else ""
        import difflib  # here: only a misspelt field needs it

        close = difflib.get_close_matches(name, _known_field_names(), n=1, cutoff=0.6)
        return "unknown field" + (f"; did you mean {close[0]!r}?" if close else "")
    last = str(error["loc"][-1]) if error.get("loc") else ""
    if kind in ("model_type", "model_attributes_type") and last in ("password", "hmac_key"):
        return 'must be an object: {"value": "..."}, {"file": "PATH"} or {"credential": "NAME"}'
    if kind in _WORDS:
        return _WORDS[kind]
    message = str(error.get("msg", "invalid"))
    return message.removeprefix("Value error, ")


def _known_field_names() -> list[str]:
    """Every field name of the settings and the desired state, for "did you mean"."""
    from pydantic import BaseModel

    from sslreconciler.config.desired_model import DesiredState
    from sslreconciler.config.settings import Settings

    names: set[str] = set()
    todo: list[type[BaseModel]] = [Settings, DesiredState]
    seen: set[type[BaseModel]] = set()
    while todo:
        model = todo.pop()
        if model in seen:
            continue
        seen.add(model)
        for name, info in model.model_fields.items():
            names.add(name)
            todo.extend(_models_in(info.annotation))
    return sorted(names)


def _models_in(annotation: Any) -> list[Any]:
    from pydantic import BaseModel

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in getattr(annotation, "__args__", ()) for m in _models_in(arg)]
