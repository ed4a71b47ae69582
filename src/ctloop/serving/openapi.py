"""Request-body schemas for the OpenAPI document (so clients and fuzzers can build bodies).

The handlers read raw bytes (orjson, typed checks against the model's
signature), so the schemas are declared, not enforced by FastAPI; they say
what a valid body looks like.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ADMIN_PROMOTE", "ADMIN_ROLLBACK", "FEEDBACK", "V1_PREDICT", "V2_INFER", "body"]

_SCALAR: dict[str, Any] = {"type": ["string", "number", "integer", "boolean", "null"]}

V1_PREDICT: dict[str, Any] = {
    "type": "object",
    "description": "Exactly one of instances (KServe v1), rows or columns.",
    "properties": {
        "instances": {
            "type": "array", "minItems": 1,
            "items": {"oneOf": [
                {"type": "object", "additionalProperties": _SCALAR, "minProperties": 1},
                {"type": "array", "items": _SCALAR},
            ]},
        },
        "rows": {"type": "array", "minItems": 1,
                 "items": {"type": "object", "additionalProperties": _SCALAR,
                           "minProperties": 1}},
        "columns": {"type": "object", "minProperties": 1,
                    "additionalProperties": {"type": "array", "items": _SCALAR}},
        "request_ids": {"type": "array", "items": {"type": "string"}},
        "row_ids": {"type": "array", "items": {"type": ["string", "null"]}},
        "now": {"type": "string", "format": "date-time"},
    },
    "additionalProperties": False,
}

_TENSOR: dict[str, Any] = {
    "type": "object",
    "required": ["name", "shape", "datatype", "data"],
    "properties": {
        "name": {"type": "string"},
        "shape": {"type": "array", "items": {"type": "integer", "minimum": 0},
                  "minItems": 1, "maxItems": 2},
        "datatype": {"enum": ["BOOL", "INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16",
                              "UINT32", "UINT64", "FP16", "FP32", "FP64", "BYTES"]},
        "data": {"type": "array"},
        "parameters": {"type": "object"},
    },
}

V2_INFER: dict[str, Any] = {
    "type": "object",
    "required": ["inputs"],
    "properties": {
        "id": {"type": "string"},
        "parameters": {"type": "object"},
        "inputs": {"type": "array", "minItems": 1, "items": _TENSOR},
        "outputs": {"type": "array", "items": {
            "type": "object", "required": ["name"],
            "properties": {"name": {"type": "string"}, "parameters": {"type": "object"}},
        }},
    },
}

FEEDBACK: dict[str, Any] = {
    "type": "object",
    "required": ["labels"],
    "properties": {"labels": {"type": "array", "minItems": 1, "items": {
        "type": "object", "required": ["label"],
        "properties": {"request_id": {"type": "string"}, "row_id": {"type": "string"},
                       "label": {"type": ["number", "string"]}},
    }}},
}

ADMIN_PROMOTE: dict[str, Any] = {
    "type": "object",
    "required": ["version"],
    "properties": {"version": {"type": "integer", "minimum": 1},
                   "alias": {"type": "string"}, "reason": {"type": "string"}},
}

ADMIN_ROLLBACK: dict[str, Any] = {
    "type": "object",
    "properties": {"alias": {"type": "string"}, "reason": {"type": "string"}},
}


def body(schema: dict[str, Any], *, required: bool = True) -> dict[str, Any]:
    """``openapi_extra`` declaring a JSON request body."""
    return {"requestBody": {"required": required,
                            "content": {"application/json": {"schema": schema}}}}
