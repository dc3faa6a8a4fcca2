"""The CRDs (issue 3, "Resources and their schemas"): generated from the models, committed as
generated, structural, described, with the columns and names the issue lists; and every koos
document under examples/ is accepted by them as the API server would accept it.

The API server's handling of a custom object is emulated with the sandbox's schema functions:
`prune` (unknown fields dropped), `apply_defaults`, then `validate`.
"""

from __future__ import annotations

import copy
import difflib
from pathlib import Path
from typing import Any, NamedTuple

import pytest
import yaml

from koos.api.crds import all_crds, missing_descriptions
from koos.api.template import Template, TemplateSpec
from koos.cli import crds as crds_cli
from koos.engine.params import resolve_parameters
from koos.engine.template import validate_template
from koos_sandbox.jsonpath import find_results, parse
from koos_sandbox.schema import apply_defaults, check_structural, prune, validate

ROOT = Path(__file__).resolve().parents[3]
CRDS_DIR = ROOT / "crds"
EXAMPLES = ROOT / "examples"

GROUP = "koos.io"
API_VERSION = "koos.io/v1alpha1"
GENERATED = all_crds()
CRD_BY_KIND = {crd["spec"]["names"]["kind"]: crd for crd in GENERATED.values()}

# What the issue asks of each kind: short name and printer columns (name, type) in order.
EXPECTED = {
    "Template": {
        "plural": "templates",
        "short_names": ["tpl"],
        "columns": [("Steps", "integer"), ("Ready", "string"), ("Age", "date")],
    },
    "Execution": {
        "plural": "executions",
        "short_names": ["exe"],
        "columns": [
            ("Template", "string"),
            ("Phase", "string"),
            ("Progress", "string"),
            ("Age", "date"),
        ],
    },
    "Schedule": {
        "plural": "schedules",
        "short_names": ["sched"],
        "columns": [
            ("Schedule", "string"),
            ("TimeZone", "string"),
            ("Suspend", "boolean"),
            ("Next", "date"),
            ("Last", "date"),
            ("Active", "integer"),
            ("Age", "date"),
        ],
    },
    "Approval": {
        "plural": "approvals",
        "short_names": ["appr"],
        "columns": [
            ("Phase", "string"),
            ("Approvals", "string"),
            ("Execution", "string"),
            ("Age", "date"),
        ],
    },
}


def _version(crd: dict[str, Any]) -> dict[str, Any]:
    versions = crd["spec"]["versions"]
    assert len(versions) == 1, "koos serves exactly one version, v1alpha1"
    version: dict[str, Any] = versions[0]
    return version


def _schema(crd: dict[str, Any]) -> dict[str, Any]:
    schema: dict[str, Any] = _version(crd)["schema"]["openAPIV3Schema"]
    return schema


def _admit(doc: dict[str, Any], schema: dict[str, Any]) -> tuple[dict[str, Any], list[Any]]:
    """What the API server stores for `doc` and the causes of a 422 ([] when accepted)."""
    stored = apply_defaults(prune(doc, schema), schema)
    return stored, validate(stored, schema)


def _removed(before: Any, after: Any, path: str = "") -> list[str]:
    """Field paths present in `before` and missing from `after` (what pruning dropped)."""
    if isinstance(before, dict) and isinstance(after, dict):
        gone: list[str] = []
        for key, value in before.items():
            here = f"{path}.{key}" if path else key
            gone += [here] if key not in after else _removed(value, after[key], here)
        return gone
    if isinstance(before, list) and isinstance(after, list):
        return [
            found
            for i, (old, new) in enumerate(zip(before, after, strict=False))
            for found in _removed(old, new, f"{path}[{i}]")
        ]
    return []


# --- committed files are the generated ones -------------------------------------------------


@pytest.mark.parametrize("name", sorted(GENERATED))
def test_committed_crd_is_generated(name: str) -> None:
    path = CRDS_DIR / name
    expected = crds_cli.render(GENERATED[name])
    assert path.exists(), f"crds/{name} is missing: run `make crds`"
    committed = path.read_text()
    diff = "".join(
        difflib.unified_diff(
            committed.splitlines(keepends=True),
            expected.splitlines(keepends=True),
            f"crds/{name} (committed)",
            f"crds/{name} (generated)",
            n=1,
        )
    )
    assert committed == expected, f"crds/{name} is out of date: run `make crds`\n{diff[:3000]}"


def test_crds_folder_holds_only_generated_files() -> None:
    present = {path.name for path in CRDS_DIR.iterdir()}
    stray = present - set(GENERATED) - {"README.md"}
    assert not stray, f"crds/ holds files `make crds` does not write: {sorted(stray)}"


def test_generated_kinds_are_the_koos_kinds() -> None:
    assert set(CRD_BY_KIND) == set(EXPECTED)
    assert set(GENERATED) == {f"{spec['plural']}.yaml" for spec in EXPECTED.values()}


def test_make_crds_check_passes_on_the_committed_folder(capsys: pytest.CaptureFixture[str]) -> None:
    assert crds_cli.main(["--check", "--out", str(CRDS_DIR)]) == 0, capsys.readouterr().err


def test_make_crds_check_fails_on_a_stale_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert crds_cli.main(["--out", str(tmp_path)]) == 0
    assert crds_cli.main(["--check", "--out", str(tmp_path)]) == 0
    stale = tmp_path / sorted(GENERATED)[0]
    stale.write_text(stale.read_text() + "# edited by hand\n")
    assert crds_cli.main(["--check", "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "make crds" in err
    assert str(stale) in err


# --- shape of each CRD ----------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(GENERATED))
def test_crd_schema_is_structural(name: str) -> None:
    assert check_structural(_schema(GENERATED[name])) == []


@pytest.mark.parametrize("name", sorted(GENERATED))
def test_crd_names_scope_and_version(name: str) -> None:
    crd = GENERATED[name]
    spec = crd["spec"]
    kind = spec["names"]["kind"]
    expected = EXPECTED[kind]
    assert crd["apiVersion"] == "apiextensions.k8s.io/v1"
    assert crd["kind"] == "CustomResourceDefinition"
    assert crd["metadata"]["name"] == f"{expected['plural']}.{GROUP}"
    assert spec["group"] == GROUP
    assert spec["scope"] == "Namespaced"
    assert spec["names"]["plural"] == expected["plural"]
    assert spec["names"]["singular"] == kind.lower()
    assert spec["names"]["listKind"] == f"{kind}List"
    assert spec["names"]["shortNames"] == expected["short_names"]
    assert spec["names"]["categories"] == ["koos"]
    version = _version(crd)
    assert f"{GROUP}/{version['name']}" == API_VERSION
    assert version["served"] is True
    assert version["storage"] is True


@pytest.mark.parametrize("name", sorted(GENERATED))
def test_crd_has_status_subresource(name: str) -> None:
    version = _version(GENERATED[name])
    assert version.get("subresources", {}).get("status") == {}
    assert "status" in _schema(GENERATED[name])["properties"]


@pytest.mark.parametrize("name", sorted(GENERATED))
def test_crd_describes_every_property(name: str) -> None:
    schema = _schema(GENERATED[name])
    assert schema.get("description"), "the root needs a description for `kubectl explain`"
    assert missing_descriptions(schema) == []


@pytest.mark.parametrize("name", sorted(GENERATED))
def test_crd_printer_columns(name: str) -> None:
    crd = GENERATED[name]
    columns = _version(crd)["additionalPrinterColumns"]
    got = [(column["name"], column["type"]) for column in columns]
    assert got == EXPECTED[crd["spec"]["names"]["kind"]]["columns"]


def _condition(kind: str, status: str, reason: str) -> dict[str, Any]:
    return {
        "type": kind,
        "status": status,
        "reason": reason,
        "message": "",
        "lastTransitionTime": "2025-01-01T00:00:00Z",
    }


CREATED = "2025-01-01T00:00:00Z"


def _example(relative: str) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((EXAMPLES / relative).read_text())
    return doc


class Sample(NamedTuple):
    """A live object of the kind and what each printer column must show for it."""

    obj: dict[str, Any]
    cells: dict[str, Any]


def _samples() -> dict[str, Sample]:
    template = _example("quickstart/template.yaml")
    template["metadata"]["creationTimestamp"] = CREATED
    template["status"] = {
        "observedGeneration": 1,
        "stepCount": 5,
        "conditions": [_condition("Ready", "True", "Valid")],
    }
    execution = _example("quickstart/execution.yaml")
    execution["metadata"]["creationTimestamp"] = CREATED
    execution["status"] = {
        "phase": "Running",
        "progress": "3/5",
        "conditions": [
            _condition("Succeeded", "Unknown", "Running"),
            _condition("Ready", "Unknown", "Running"),
        ],
    }
    approval = {
        "apiVersion": API_VERSION,
        "kind": "Approval",
        "metadata": {"name": "quickstart-1-approve", "creationTimestamp": CREATED},
        "spec": {
            "executionRef": {"name": "quickstart-1", "uid": "u-1"},
            "step": "approve",
            "approvers": {"groups": ["sre"]},
            "minApprovals": 2,
            "deadline": CREATED,
        },
        "status": {"phase": "Pending", "progress": "1/2"},
    }
    nightly = {
        "apiVersion": API_VERSION,
        "kind": "Schedule",
        "metadata": {"name": "nightly", "creationTimestamp": CREATED},
        "spec": {
            "schedule": "0 2 * * *",
            "timeZone": "Europe/Berlin",
            "suspend": False,
            "executionTemplate": {"spec": {"templateRef": {"name": "quickstart"}}},
        },
        "status": {"nextScheduleTime": CREATED, "lastScheduleTime": CREATED, "activeCount": 1},
    }
    return {
        "Schedule": Sample(
            nightly,
            {
                "Schedule": "0 2 * * *",
                "TimeZone": "Europe/Berlin",
                "Suspend": False,
                "Next": CREATED,
                "Last": CREATED,
                "Active": 1,
                "Age": CREATED,
            },
        ),
        "Approval": Sample(
            approval,
            {"Phase": "Pending", "Approvals": "1/2", "Execution": "quickstart-1", "Age": CREATED},
        ),
        "Template": Sample(template, {"Steps": 5, "Ready": "True", "Age": CREATED}),
        "Execution": Sample(
            execution,
            {"Template": "quickstart", "Phase": "Running", "Progress": "3/5", "Age": CREATED},
        ),
    }


@pytest.mark.parametrize("name", sorted(GENERATED))
def test_crd_printer_column_json_paths_select_declared_fields(name: str) -> None:
    crd = GENERATED[name]
    schema = _schema(crd)
    sample = _samples()[crd["spec"]["names"]["kind"]]
    # The sample is a valid object whose fields are all declared (pruning keeps everything),
    # so a column that finds its value in it reads a field the schema has.
    stored, causes = _admit(sample.obj, schema)
    assert causes == []
    assert _removed(sample.obj, prune(sample.obj, schema)) == []
    for column in _version(crd)["additionalPrinterColumns"]:
        path = column["jsonPath"]
        assert path.startswith("."), f"{column['name']}: a CRD jsonPath starts with '.'"
        parse(path)  # raises on what client-go would not parse
        assert find_results(stored, path) == [sample.cells[column["name"]]], column["name"]


# --- examples/ ------------------------------------------------------------------------------


class Doc(NamedTuple):
    id: str
    body: dict[str, Any]


def _documents() -> list[Doc]:
    docs: list[Doc] = []
    for path in sorted(EXAMPLES.rglob("*.y*ml")):
        relative = path.relative_to(EXAMPLES).as_posix()
        bodies = [body for body in yaml.safe_load_all(path.read_text()) if body is not None]
        for i, body in enumerate(bodies):
            docs.append(Doc(relative if len(bodies) == 1 else f"{relative}#{i}", body))
    return docs


DOCS = _documents()
KOOS_DOCS = [doc for doc in DOCS if doc.body.get("apiVersion") == API_VERSION]
FOREIGN_DOCS = [doc for doc in DOCS if doc.body.get("apiVersion") != API_VERSION]
EXAMPLE_CRDS = [doc for doc in FOREIGN_DOCS if doc.body.get("kind") == "CustomResourceDefinition"]


def _ids(docs: list[Doc]) -> list[str]:
    return [doc.id for doc in docs]


def test_examples_hold_the_quickstart_template_and_execution() -> None:
    found = {(doc.id, doc.body.get("kind")) for doc in KOOS_DOCS}
    assert ("quickstart/template.yaml", "Template") in found
    assert ("quickstart/execution.yaml", "Execution") in found


@pytest.mark.parametrize("doc", FOREIGN_DOCS, ids=_ids(FOREIGN_DOCS))
def test_foreign_example_is_not_a_misspelt_koos_resource(doc: Doc) -> None:
    """Only koos.io/v1alpha1 documents are checked against the CRDs: make sure nothing meant
    as one escapes the check through a wrong apiVersion."""
    api_version = str(doc.body.get("apiVersion", ""))
    assert api_version, "every example document needs an apiVersion"
    assert api_version.split("/")[0] != GROUP, f"koos.io serves only {API_VERSION}"


@pytest.mark.parametrize("doc", KOOS_DOCS, ids=_ids(KOOS_DOCS))
def test_koos_example_is_accepted_by_its_crd(doc: Doc) -> None:
    kind = doc.body.get("kind")
    assert kind in CRD_BY_KIND, f"no koos CRD serves kind {kind!r}"
    schema = _schema(CRD_BY_KIND[kind])
    pruned = prune(doc.body, schema)
    assert _removed(doc.body, pruned) == [], "unknown or misspelt fields would be dropped"
    stored, causes = _admit(doc.body, schema)
    assert causes == []
    assert stored["spec"], "an empty spec after admission"


@pytest.mark.parametrize("doc", EXAMPLE_CRDS, ids=_ids(EXAMPLE_CRDS))
def test_example_crd_is_structural(doc: Doc) -> None:
    for version in doc.body["spec"]["versions"]:
        assert check_structural(version["schema"]["openAPIV3Schema"]) == [], version["name"]


def test_the_sandbox_example_crd_is_checked() -> None:
    assert "sandbox/crd.yaml" in _ids(EXAMPLE_CRDS)


TEMPLATE_DOCS = [doc for doc in KOOS_DOCS if doc.body.get("kind") == "Template"]
EXECUTION_DOCS = [doc for doc in KOOS_DOCS if doc.body.get("kind") == "Execution"]


@pytest.mark.parametrize("doc", TEMPLATE_DOCS, ids=_ids(TEMPLATE_DOCS))
def test_example_template_passes_semantic_validation(doc: Doc) -> None:
    spec = TemplateSpec.model_validate(doc.body["spec"])
    assert [str(problem) for problem in validate_template(spec)] == []


def _template_named(name: str) -> dict[str, Any]:
    for doc in TEMPLATE_DOCS:
        if doc.body["metadata"]["name"] == name:
            return doc.body
    raise AssertionError(f"no Template {name!r} under examples/")


@pytest.mark.parametrize("doc", EXECUTION_DOCS, ids=_ids(EXECUTION_DOCS))
def test_example_execution_runs_an_example_template(doc: Doc) -> None:
    template = _template_named(doc.body["spec"]["templateRef"]["name"])
    spec = TemplateSpec.model_validate(template["spec"])
    _, problems = resolve_parameters(spec, doc.body["spec"].get("parameters"))
    assert [str(problem) for problem in problems] == []


# --- round trip through the models ----------------------------------------------------------


@pytest.mark.parametrize("doc", TEMPLATE_DOCS, ids=_ids(TEMPLATE_DOCS))
def test_template_model_dump_is_accepted_by_the_crd(doc: Doc) -> None:
    schema = _schema(CRD_BY_KIND["Template"])
    model = Template.model_validate(doc.body)
    dumped = model.model_dump(by_alias=True, exclude_none=True)
    assert _removed(dumped, prune(dumped, schema)) == [], "the model writes undeclared fields"
    stored, causes = _admit(dumped, schema)
    assert causes == []
    # The model writes every default already, so the API server stores it unchanged …
    assert stored == dumped
    # … and reads back the same model.
    assert Template.model_validate(stored) == model


@pytest.mark.parametrize("doc", TEMPLATE_DOCS, ids=_ids(TEMPLATE_DOCS))
def test_crd_defaults_agree_with_model_defaults(doc: Doc) -> None:
    schema = _schema(CRD_BY_KIND["Template"])
    stored, _ = _admit(copy.deepcopy(doc.body), schema)
    assert Template.model_validate(stored) == Template.model_validate(doc.body)
