"""A small validator for the part of JSON Schema that ``verdict.schema.json`` uses.

Enough to check a verdict without a dependency: ``type``, ``const``, ``enum``,
``properties``, ``required``, ``additionalProperties: false``, ``items``, ``minimum`` and
``$ref`` to ``#/$defs/...``. Any other keyword is refused, so that the schema cannot
grow past what is checked here unnoticed.
"""
import json
import os

_TYPES = {"object": dict, "array": list, "string": str, "boolean": bool, "null": type(None)}
_KNOWN = {"$schema", "$id", "$defs", "$ref", "title", "description", "type", "const", "enum",
          "properties", "required", "additionalProperties", "items", "minimum"}


def load():
    """The schema of the gate's verdict."""
    with open(os.path.join(os.path.dirname(__file__), "verdict.schema.json")) as f:
        return json.load(f)


def _is(value, kind):
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, _TYPES[kind])


def errors(document, schema=None):
    """Where ``document`` breaks ``schema`` (the verdict's by default): a list of messages."""
    root = load() if schema is None else schema
    found = []
    _check(document, root, root, "$", found)
    return found


def _check(value, schema, root, where, found):
    unknown = set(schema) - _KNOWN
    if unknown:
        raise ValueError(f"schema at {where} uses keywords this validator lacks: {sorted(unknown)}")
    if "$ref" in schema:
        name = schema["$ref"].removeprefix("#/$defs/")
        _check(value, root["$defs"][name], root, where, found)
    if "type" in schema and not _is(value, schema["type"]):
        found.append(f"{where}: expected {schema['type']}, got {type(value).__name__}")
        return
    if "const" in schema and value != schema["const"]:
        found.append(f"{where}: expected {schema['const']!r}, got {value!r}")
    if "enum" in schema and value not in schema["enum"]:
        found.append(f"{where}: {value!r} is not one of {schema['enum']}")
    if "minimum" in schema and _is(value, "number") and value < schema["minimum"]:
        found.append(f"{where}: {value!r} is below {schema['minimum']}")
    if isinstance(value, dict):
        for key in schema.get("required", ()):
            if key not in value:
                found.append(f"{where}: missing {key!r}")
        properties = schema.get("properties", {})
        for key, item in value.items():
            if key in properties:
                _check(item, properties[key], root, f"{where}.{key}", found)
            elif schema.get("additionalProperties") is False:
                found.append(f"{where}: unexpected {key!r}")
    if isinstance(value, list) and "items" in schema:
        for k, item in enumerate(value):
            _check(item, schema["items"], root, f"{where}[{k}]", found)
