"""CRD schema behaviour: pruning, defaulting, validation wording and structural checks.

Expected messages are the texts kube-apiserver 1.32 produces (kube-openapi's validator,
apiextensions' error conversion, apimachinery's field.Error rendering).
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from koos_sandbox import schema
from koos_sandbox.goformat import go_float, go_json, go_quote, go_sharp_v

pytestmark = pytest.mark.sandbox_only(
    reason="unit tests of the sandbox's schema module (no server)"
)


def crd(spec: dict[str, Any], **root: Any) -> dict[str, Any]:
    """A root schema with apiVersion/kind/metadata and the given spec schema."""
    return {
        "type": "object",
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": spec,
        },
        **root,
    }


def obj(spec: Any) -> dict[str, Any]:
    return {"apiVersion": "koos.io/v1", "kind": "Run", "metadata": {"name": "r"}, "spec": spec}


# --- pruning -------------------------------------------------------------------------------

PRUNE_CASES = [
    pytest.param(
        {
            "type": "object",
            "properties": {"a": {"type": "object", "properties": {"b": {"type": "string"}}}},
        },
        {"a": {"b": "x", "c": "drop"}, "z": 1},
        {"a": {"b": "x"}},
        id="nested-unknown-dropped",
    ),
    pytest.param(
        {
            "type": "object",
            "x-kubernetes-preserve-unknown-fields": True,
            "properties": {"known": {"type": "object", "properties": {"k": {"type": "string"}}}},
        },
        {"free": {"any": [1, {"thing": True}]}, "known": {"k": "v", "gone": 1}},
        {"free": {"any": [1, {"thing": True}]}, "known": {"k": "v"}},
        id="preserve-unknown-subtree-still-prunes-declared-children",
    ),
    pytest.param(
        {
            "type": "object",
            "properties": {
                "labels": {
                    "type": "object",
                    "additionalProperties": {
                        "type": "object",
                        "properties": {"v": {"type": "string"}},
                    },
                }
            },
        },
        {"labels": {"one": {"v": "1", "x": "drop"}, "two": {"v": "2"}}},
        {"labels": {"one": {"v": "1"}, "two": {"v": "2"}}},
        id="additional-properties-keys-kept-values-pruned",
    ),
    pytest.param(
        {
            "type": "object",
            "properties": {
                "template": {
                    "type": "object",
                    "x-kubernetes-embedded-resource": True,
                    "properties": {
                        "spec": {"type": "object", "properties": {"a": {"type": "string"}}}
                    },
                }
            },
        },
        {
            "template": {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "p", "labels": {"x": "y"}},
                "spec": {"a": "keep", "b": "drop"},
                "status": {"gone": True},
            }
        },
        {
            "template": {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "p", "labels": {"x": "y"}},
                "spec": {"a": "keep"},
            }
        },
        id="embedded-resource-keeps-type-and-object-meta",
    ),
    pytest.param(
        {
            "type": "object",
            "properties": {
                "steps": {
                    "type": "array",
                    "items": {"type": "object", "properties": {"name": {"type": "string"}}},
                },
                "port": {"x-kubernetes-int-or-string": True},
            },
        },
        {"steps": [{"name": "a", "extra": 1}, {"other": 2}], "port": "http"},
        {"steps": [{"name": "a"}, {}], "port": "http"},
        id="array-items-and-int-or-string",
    ),
]


@pytest.mark.parametrize(("spec_schema", "spec", "expected"), PRUNE_CASES)
def test_prune(spec_schema: dict[str, Any], spec: Any, expected: Any) -> None:
    original = obj(spec)
    before = copy.deepcopy(original)
    pruned = schema.prune(original, crd(spec_schema))
    assert pruned["spec"] == expected
    assert original == before, "prune must not mutate its input"


def test_prune_keeps_root_type_and_metadata_and_drops_unknown_root_fields() -> None:
    doc = {**obj({}), "metadata": {"name": "r", "anything": {"x": 1}}, "status": {"s": 1}}
    pruned = schema.prune(doc, crd({"type": "object"}))
    assert pruned == {
        "apiVersion": "koos.io/v1",
        "kind": "Run",
        "metadata": {"name": "r", "anything": {"x": 1}},
        "spec": {},
    }


def test_prune_preserve_unknown_at_root_keeps_everything() -> None:
    doc = {**obj({"free": 1}), "extra": {"x": [1]}}
    root = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    assert schema.prune(doc, root) == doc


# --- defaulting ----------------------------------------------------------------------------

DEFAULT_SPEC = {
    "type": "object",
    "properties": {
        "mode": {"type": "string", "default": "Fast"},
        "retries": {"type": "integer", "default": 3},
        "policy": {
            "type": "object",
            "default": {},
            "properties": {"backoff": {"type": "string", "default": "linear"}},
        },
        "nested": {
            "type": "object",
            "properties": {"inner": {"type": "string", "default": "in"}},
        },
        "steps": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"timeout": {"type": "string", "default": "5m"}},
            },
        },
        "env": {
            "type": "object",
            "additionalProperties": {
                "type": "object",
                "properties": {"secret": {"type": "boolean", "default": False}},
            },
        },
        "note": {"type": "string", "nullable": True, "default": "n"},
        "loose": {"type": "string"},
    },
}

DEFAULT_CASES = [
    pytest.param(
        {},
        {"mode": "Fast", "retries": 3, "policy": {"backoff": "linear"}, "note": "n"},
        id="missing-fields-and-defaulted-default",
    ),
    pytest.param(
        {"mode": "Slow", "nested": {}},
        {
            "mode": "Slow",
            "retries": 3,
            "policy": {"backoff": "linear"},
            "nested": {"inner": "in"},
            "note": "n",
        },
        id="existing-parent-gets-nested-default",
    ),
    pytest.param(
        {"steps": [{}, {"timeout": "1m"}], "env": {"A": {}, "B": {"secret": True}}},
        {
            "steps": [{"timeout": "5m"}, {"timeout": "1m"}],
            "env": {"A": {"secret": False}, "B": {"secret": True}},
        },
        id="array-items-and-additional-properties",
    ),
    pytest.param(
        {"mode": None, "note": None, "loose": None},
        {"mode": "Fast", "note": None},
        id="null-non-nullable-defaulted-nullable-kept-no-default-dropped",
    ),
]


@pytest.mark.parametrize(("spec", "expected_subset"), DEFAULT_CASES)
def test_apply_defaults(spec: dict[str, Any], expected_subset: dict[str, Any]) -> None:
    original = obj(spec)
    before = copy.deepcopy(original)
    result = schema.apply_defaults(original, crd(DEFAULT_SPEC))
    for key, value in expected_subset.items():
        assert result["spec"][key] == value, key
    assert "loose" not in result["spec"]
    assert original == before, "apply_defaults must not mutate its input"


def test_defaults_do_not_create_missing_parent_objects() -> None:
    result = schema.apply_defaults(obj({}), crd(DEFAULT_SPEC))
    assert "nested" not in result["spec"]
    assert "steps" not in result["spec"]


def test_defaults_are_copies() -> None:
    spec_schema = crd(DEFAULT_SPEC)
    first = schema.apply_defaults(obj({}), spec_schema)
    first["spec"]["policy"]["backoff"] = "changed"
    second = schema.apply_defaults(obj({}), spec_schema)
    assert second["spec"]["policy"]["backoff"] == "linear"
    assert spec_schema["properties"]["spec"]["properties"]["policy"]["default"] == {}


# --- validation ----------------------------------------------------------------------------


def one(field_schema: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """A spec schema with a single property `x`."""
    return {"type": "object", "properties": {"x": field_schema}, **extra}


VALIDATION_CASES = [
    pytest.param(
        {"type": "object", "properties": {"replicas": {"type": "integer"}}},
        {"replicas": "string"},
        [
            (
                "spec.replicas",
                'Invalid value: "string": spec.replicas in body must be of type integer: "string"',
            )
        ],
        id="type",
    ),
    pytest.param(
        one({"type": "integer"}),
        {"x": True},
        [("spec.x", 'Invalid value: "boolean": spec.x in body must be of type integer: "boolean"')],
        id="type-boolean",
    ),
    pytest.param(
        one({"type": "integer"}),
        {"x": 1.5},
        [("spec.x", 'Invalid value: "number": spec.x in body must be of type integer: "number"')],
        id="type-fraction-is-not-integer",
    ),
    pytest.param(
        one({"type": "integer", "maximum": 3}), {"x": 2.0}, [], id="integral-float-is-integer"
    ),
    pytest.param(
        {"type": "object", "required": ["foo"], "properties": {"foo": {"type": "string"}}},
        {},
        [("spec.foo", "Required value")],
        id="required",
    ),
    pytest.param(
        {"type": "object", "properties": {"mode": {"type": "string", "enum": ["A", "B"]}}},
        {"mode": "x"},
        [("spec.mode", 'Unsupported value: "x": supported values: "A", "B"')],
        id="enum",
    ),
    pytest.param(
        one({"type": "integer", "enum": [1, 2]}),
        {"x": 3},
        [("spec.x", 'Unsupported value: 3: supported values: "1", "2"')],
        id="enum-integers",
    ),
    pytest.param(
        one({"type": "integer", "enum": [1, 2]}), {"x": 2.0}, [], id="enum-converts-numbers"
    ),
    pytest.param(
        one({"type": "string", "pattern": "^[a-z]+$"}),
        {"x": "Abc"},
        [("spec.x", "Invalid value: \"Abc\": spec.x in body should match '^[a-z]+$'")],
        id="pattern",
    ),
    pytest.param(
        one({"type": "string", "pattern": "^[a-z]+$"}),
        {"x": "abc\n"},
        [("spec.x", "Invalid value: \"abc\\n\": spec.x in body should match '^[a-z]+$'")],
        id="pattern-dollar-is-end-of-text",
    ),
    pytest.param(
        one({"type": "integer", "maximum": 10}),
        {"x": 11},
        [("spec.x", "Invalid value: 11: spec.x in body should be less than or equal to 10")],
        id="maximum",
    ),
    pytest.param(
        one({"type": "integer", "maximum": 10, "exclusiveMaximum": True}),
        {"x": 10},
        [("spec.x", "Invalid value: 10: spec.x in body should be less than 10")],
        id="exclusive-maximum",
    ),
    pytest.param(
        one({"type": "integer", "minimum": 1}),
        {"x": 0},
        [("spec.x", "Invalid value: 0: spec.x in body should be greater than or equal to 1")],
        id="minimum",
    ),
    pytest.param(
        one({"type": "number", "minimum": 1.5, "exclusiveMinimum": True}),
        {"x": 1.5},
        [("spec.x", "Invalid value: 1.5: spec.x in body should be greater than 1.5")],
        id="exclusive-minimum-float",
    ),
    pytest.param(
        one({"type": "number", "maximum": 1000000}),
        {"x": 2000000.5},
        [
            (
                "spec.x",
                "Invalid value: 2.0000005e+06: spec.x in body should be less than or equal to "
                "1e+06",
            )
        ],
        id="float-bounds-print-like-go",
    ),
    pytest.param(
        one({"type": "integer", "multipleOf": 5}),
        {"x": 7},
        [("spec.x", "Invalid value: 7: spec.x in body should be a multiple of 5")],
        id="multiple-of",
    ),
    pytest.param(
        one({"type": "string", "maxLength": 3}),
        {"x": "abcd"},
        [("spec.x", "Too long: may not be more than 3 bytes")],
        id="max-length",
    ),
    pytest.param(
        one({"type": "string", "minLength": 3}),
        {"x": "ab"},
        [("spec.x", 'Invalid value: "ab": spec.x in body should be at least 3 chars long')],
        id="min-length",
    ),
    pytest.param(
        one({"type": "array", "items": {"type": "string"}, "maxItems": 2}),
        {"x": ["a", "b", "c"]},
        [("spec.x", "Too many: 3: must have at most 2 items")],
        id="max-items",
    ),
    pytest.param(
        one({"type": "array", "items": {"type": "string"}, "minItems": 1}),
        {"x": []},
        [("spec.x", "Invalid value: 0: spec.x in body should have at least 1 items")],
        id="min-items",
    ),
    pytest.param(
        one({"type": "object", "maxProperties": 1, "additionalProperties": {"type": "string"}}),
        {"x": {"a": "1", "b": "2"}},
        [("spec.x", "Too many: 2: must have at most 1 item")],
        id="max-properties",
    ),
    pytest.param(
        one({"type": "object", "minProperties": 1, "additionalProperties": {"type": "string"}}),
        {"x": {}},
        [("spec.x", "Invalid value: 0: spec.x in body should have at least 1 properties")],
        id="min-properties",
    ),
    pytest.param(
        one({"type": "array", "items": {"type": "integer"}, "uniqueItems": True}),
        {"x": [1, 2, 1]},
        [("spec.x", 'Invalid value: "": spec.x in body shouldn\'t contain duplicates')],
        id="unique-items",
    ),
    pytest.param(one({"type": "string", "nullable": True}), {"x": None}, [], id="nullable-null-ok"),
    pytest.param(
        one({"type": "string"}),
        {"x": None},
        [("spec.x", 'Invalid value: "null": spec.x in body must be of type string: "null"')],
        id="non-nullable-null",
    ),
    pytest.param(
        one({"x-kubernetes-int-or-string": True}), {"x": "80%"}, [], id="int-or-string-string"
    ),
    pytest.param(one({"x-kubernetes-int-or-string": True}), {"x": 80}, [], id="int-or-string-int"),
    pytest.param(
        one({"x-kubernetes-int-or-string": True}),
        {"x": True},
        [
            (
                "spec.x",
                'Invalid value: "boolean": spec.x in body must be of type integer,string: '
                '"boolean"',
            )
        ],
        id="int-or-string-bool",
    ),
    pytest.param(
        one({"type": "string", "format": "date-time"}),
        {"x": "yesterday"},
        [
            (
                "spec.x",
                'Invalid value: "yesterday": spec.x in body must be of type date-time: "yesterday"',
            )
        ],
        id="format-date-time",
    ),
    pytest.param(
        one({"type": "string", "format": "date-time"}),
        {"x": "2024-05-01T10:00:00Z"},
        [],
        id="format-date-time-ok",
    ),
    pytest.param(
        one({"type": "string", "format": "date"}),
        {"x": "2024-02-30"},
        [
            (
                "spec.x",
                'Invalid value: "2024-02-30": spec.x in body must be of type date: "2024-02-30"',
            )
        ],
        id="format-date",
    ),
    pytest.param(
        one({"type": "string", "format": "byte"}),
        {"x": "not base64!"},
        [
            (
                "spec.x",
                'Invalid value: "not base64!": spec.x in body must be of type byte: "not base64!"',
            )
        ],
        id="format-byte",
    ),
    pytest.param(
        one({"type": "string", "format": "uuid"}),
        {"x": "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"},
        [],
        id="format-uuid-ok",
    ),
    pytest.param(
        one({"type": "string", "format": "ipv4"}),
        {"x": "::1"},
        [("spec.x", 'Invalid value: "::1": spec.x in body must be of type ipv4: "::1"')],
        id="format-ipv4",
    ),
    pytest.param(
        one({"type": "integer", "format": "int32"}),
        {"x": 2**40},
        [],
        id="format-int32-no-range-check",
    ),
    pytest.param(
        one({"type": "string", "format": "made-up"}),
        {"x": "anything"},
        [],
        id="unknown-format-stripped",
    ),
    pytest.param(
        one({"type": "string", "anyOf": [{"pattern": "^a"}, {"pattern": "^b"}]}),
        {"x": "c"},
        [
            ("<nil>", 'Invalid value: "": "spec.x" must validate at least one schema (anyOf)'),
            ("spec.x", "Invalid value: \"c\": spec.x in body should match '^a'"),
        ],
        id="any-of",
    ),
    pytest.param(
        one({"type": "string", "oneOf": [{"minLength": 1}, {"maxLength": 5}]}),
        {"x": "abc"},
        [
            (
                "<nil>",
                'Invalid value: "": "spec.x" must validate one and only one schema (oneOf). Found '
                "2 valid alternatives",
            )
        ],
        id="one-of",
    ),
    pytest.param(
        one({"type": "string", "allOf": [{"minLength": 5}, {"pattern": "^a"}]}),
        {"x": "abc"},
        [
            ("spec.x", 'Invalid value: "abc": spec.x in body should be at least 5 chars long'),
            ("<nil>", 'Invalid value: "": "spec.x" must validate all the schemas (allOf)'),
        ],
        id="all-of",
    ),
    pytest.param(
        one({"type": "string", "not": {"enum": ["forbidden"]}}),
        {"x": "forbidden"},
        [("<nil>", 'Invalid value: "": "spec.x" must not validate the schema (not)')],
        id="not",
    ),
    pytest.param(
        one({"type": "object", "additionalProperties": {"type": "integer"}}),
        {"x": {"key": "v"}},
        [
            (
                "spec.x.key",
                'Invalid value: "string": spec.x.key in body must be of type integer: "string"',
            )
        ],
        id="additional-properties-path",
    ),
    pytest.param(
        one(
            {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["name"],
                    "properties": {"name": {"type": "string"}},
                },
            }
        ),
        {"x": [{"name": "a"}, {}]},
        [("spec.x[1].name", "Required value")],
        id="array-item-path",
    ),
    pytest.param(
        one({"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}}),
        {"x": ["a", "b", "a", "a"]},
        [("spec.x[2]", 'Duplicate value: "a"')],
        id="list-type-set",
    ),
    pytest.param(
        one(
            {
                "type": "array",
                "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["name"],
                "items": {
                    "type": "object",
                    "required": ["name"],
                    "properties": {"name": {"type": "string"}},
                },
            }
        ),
        {"x": [{"name": "a"}, {"name": "b"}, {"name": "a"}]},
        [("spec.x[2]", 'Duplicate value: map[string]interface {}{"name":"a"}')],
        id="list-type-map",
    ),
    pytest.param(
        one(
            {
                "type": "array",
                "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["name", "port"],
                "items": {
                    "type": "object",
                    "properties": {"name": {"type": "string"}, "port": {"type": "integer"}},
                },
            }
        ),
        {"x": [{"name": "a", "port": 1}, {"name": "a", "port": 2}, {"port": 1, "name": "a"}]},
        [("spec.x[2]", 'Duplicate value: map[string]interface {}{"name":"a", "port":1}')],
        id="list-type-map-two-keys",
    ),
    pytest.param(
        one(
            {
                "type": "object",
                "additionalProperties": {
                    "type": "array",
                    "x-kubernetes-list-type": "set",
                    "items": {"type": "integer"},
                },
            }
        ),
        {"x": {"ports": [1, 1]}},
        [("spec.x[ports][1]", "Duplicate value: 1")],
        id="list-type-under-map-uses-key-path",
    ),
    pytest.param(
        one(
            {
                "type": "object",
                "x-kubernetes-embedded-resource": True,
                "x-kubernetes-preserve-unknown-fields": True,
            }
        ),
        {"x": {"apiVersion": "v1"}},
        [("spec.x.kind", "Required value: must not be empty")],
        id="embedded-resource-needs-kind",
    ),
]


@pytest.mark.parametrize(("spec_schema", "spec", "expected"), VALIDATION_CASES)
def test_validate(spec_schema: dict[str, Any], spec: Any, expected: list[tuple[str, str]]) -> None:
    document = obj(spec)
    before = copy.deepcopy(document)
    assert schema.validate(document, crd(spec_schema)) == expected
    assert document == before


def test_validate_ignores_metadata_and_cel_rules() -> None:
    root = crd(
        {"type": "object", "x-kubernetes-validations": [{"rule": "false", "message": "never"}]},
        required=["metadata"],
    )
    root["properties"]["metadata"] = {"type": "object", "properties": {"name": {"maxLength": 1}}}
    assert schema.validate({**obj({}), "metadata": {"name": "long-name"}}, root) == []


def test_validate_reports_errors_in_apiserver_order() -> None:
    spec = {
        "type": "object",
        "required": ["b"],
        "properties": {
            "a": {"type": "integer"},
            "b": {"type": "string"},
            "set": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}},
        },
    }
    causes = schema.validate(obj({"a": "x", "set": ["s", "s"]}), crd(spec))
    assert [field for field, _ in causes] == ["spec.a", "spec.b", "spec.set[1]"]


# --- structural checks ---------------------------------------------------------------------

STRUCTURAL_CASES = [
    pytest.param(crd({"type": "object", "properties": {"a": {"type": "string"}}}), [], id="valid"),
    pytest.param(
        crd({"type": "object", "properties": {"a": {"description": "no type"}}}),
        [
            "properties[spec].properties[a].type: Required value: must not be empty for specified "
            "object fields"
        ],
        id="missing-type",
    ),
    pytest.param(
        crd({"type": "object", "properties": {"a": {"$ref": "#/definitions/A"}}}),
        ["properties[spec].properties[a].$ref: Forbidden: $ref is not supported"],
        id="ref",
    ),
    pytest.param(
        crd(
            {
                "type": "object",
                "properties": {"a": {"type": "string"}},
                "additionalProperties": {"type": "string"},
            }
        ),
        [
            "properties[spec].additionalProperties: Forbidden: additionalProperties and "
            "properties are mutual exclusive"
        ],
        id="properties-and-additional-properties",
    ),
    pytest.param(
        crd({"type": "object", "additionalProperties": False}),
        ["properties[spec].additionalProperties: Forbidden: cannot be set to false"],
        id="additional-properties-false",
    ),
    pytest.param(
        {"type": "array", "items": {"type": "string"}},
        ['type: Invalid value: "array": must be object at the root'],
        id="root-not-object",
    ),
    pytest.param(
        crd({"type": "array"}),
        ["properties[spec].items: Required value: must be specified"],
        id="array-without-items",
    ),
    pytest.param(
        crd({"type": "array", "items": {"type": "string"}, "uniqueItems": True}),
        [
            "properties[spec].uniqueItems: Forbidden: uniqueItems cannot be set to true since the "
            "runtime complexity becomes quadratic"
        ],
        id="unique-items",
    ),
    pytest.param(
        crd({"type": "string", "anyOf": [{"type": "string", "pattern": "^a"}]}),
        ["properties[spec].anyOf[0].type: Forbidden: must be empty to be structural"],
        id="typed-any-of",
    ),
    pytest.param(
        crd(
            {"x-kubernetes-int-or-string": True, "anyOf": [{"type": "integer"}, {"type": "string"}]}
        ),
        [],
        id="int-or-string-any-of-allowed",
    ),
    pytest.param(
        crd({"type": "array", "x-kubernetes-list-type": "map", "items": {"type": "object"}}),
        [
            "properties[spec].x-kubernetes-list-map-keys: Required value: must not be empty if "
            "x-kubernetes-list-type is map"
        ],
        id="list-map-without-keys",
    ),
    pytest.param(
        crd({"type": "string", "x-kubernetes-list-type": "set"}),
        [
            'properties[spec].type: Invalid value: "string": must be array if '
            "x-kubernetes-list-type is specified"
        ],
        id="list-type-on-string",
    ),
    pytest.param(
        {
            "type": "object",
            "properties": {
                "metadata": {"type": "object", "properties": {"labels": {"type": "object"}}}
            },
        },
        [
            "properties[metadata]: Forbidden: must not specify anything other than name and "
            "generateName, but metadata is implicitly specified"
        ],
        id="metadata-restricted",
    ),
    pytest.param(
        crd({"type": "object", "properties": {"n": {"type": "integer", "default": "three"}}}),
        [
            'properties[spec].properties[n].default: Invalid value: "string":  in body must be of '
            'type integer: "string"'
        ],
        id="default-type",
    ),
    pytest.param(
        crd({"type": "object", "x-kubernetes-preserve-unknown-fields": False}),
        [
            "properties[spec].x-kubernetes-preserve-unknown-fields: Invalid value: false: must be "
            "true or undefined"
        ],
        id="preserve-unknown-false",
    ),
]


@pytest.mark.parametrize(("openapi", "expected"), STRUCTURAL_CASES)
def test_check_structural(openapi: dict[str, Any], expected: list[str]) -> None:
    assert schema.check_structural(openapi) == expected


def test_structural_causes_use_the_crd_path() -> None:
    path = "spec.versions[0].schema.openAPIV3Schema"
    causes = schema.structural_causes(crd({"properties": {}}), path)
    assert causes == [
        (
            f"{path}.properties[spec].type",
            "Required value: must not be empty for specified object fields",
        )
    ]


# --- Go renderings used in the messages ----------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (10.0, "10"),
        (1.5, "1.5"),
        (1e6, "1e+06"),
        (123456.0, "123456"),
        (1e-5, "1e-05"),
        (0.0001, "0.0001"),
    ],
)
def test_go_float(value: float, expected: str) -> None:
    assert go_float(value) == expected


def test_go_renderings() -> None:
    assert go_quote('a"b\\c\n\x01é') == '"a\\"b\\\\c\\n\\x01é"'
    assert (
        go_sharp_v({"b": [1, "x"], "a": None})
        == 'map[string]interface {}{"a":interface {}(nil), "b":[]interface {}{1, "x"}}'
    )
    assert go_json({"b": 1.0, "a": "<&>"}) == '{"a":"\\u003c\\u0026\\u003e","b":1}'
