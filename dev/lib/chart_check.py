"""Helpers for dev/chart-check.sh: split rendered manifests, turn a CRD into a
JSON schema, build chart values from an example GitalyCluster, and check that
README.md documents every value.

Runs in the chart-check venv (PyYAML comes with kubernetes-validate).
"""

import json
import re
import sys
from pathlib import Path

import yaml

# Kinds kubernetes-validate has no schema for: checked elsewhere or not at all.
CUSTOM_KINDS = {
    ("cairn.dev/v1alpha1", "GitalyCluster"): "gitalycluster",
    ("monitoring.coreos.com/v1", "ServiceMonitor"): None,
}


def split(rendered: str, outdir: str) -> None:
    """Writes builtin.yaml (everything kubernetes-validate knows) and one
    gitalycluster-N.yaml per GitalyCluster; prints what it found."""
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    builtin, kinds, skipped, clusters = [], {}, [], 0
    for doc in yaml.safe_load_all(Path(rendered).read_text()):
        if not doc:
            continue
        key = (doc.get("apiVersion"), doc.get("kind"))
        name = doc.get("metadata", {}).get("name")
        if key in CUSTOM_KINDS:
            if CUSTOM_KINDS[key] == "gitalycluster":
                clusters += 1
                (out / f"gitalycluster-{clusters}.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
            else:
                skipped.append(f"{key[1]}/{name}")
            continue
        builtin.append(doc)
        kinds[key[1]] = kinds.get(key[1], 0) + 1
    (out / "builtin.yaml").write_text(yaml.safe_dump_all(builtin, sort_keys=False))
    summary = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
    print(f"  rendered: {summary or 'nothing'}" + (f"; GitalyCluster: {clusters}" if clusters else ""))
    if skipped:
        print(f"  not validated (no schema offline): {', '.join(skipped)}")


def _to_jsonschema(node):
    """A structural CRD schema as plain JSON Schema, as strict as the
    apiserver with kubectl's default field validation (Strict):
    - OpenAPI's `nullable: true` means "or null": spell the null type out;
    - an unknown field is an error: objects with `properties` get
      `additionalProperties: false` unless they preserve unknown fields."""
    if isinstance(node, dict):
        node = {k: _to_jsonschema(v) for k, v in node.items()}
        if (
            "properties" in node
            and "additionalProperties" not in node
            and not node.get("x-kubernetes-preserve-unknown-fields")
        ):
            node["additionalProperties"] = False
        if node.pop("nullable", False):
            if "type" in node:
                types = node["type"] if isinstance(node["type"], list) else [node["type"]]
                node["type"] = types + ["null"]
            elif "enum" in node:
                node["enum"] = list(node["enum"]) + [None]
        return node
    if isinstance(node, list):
        return [_to_jsonschema(v) for v in node]
    return node


def crd_schema(crd: str, out: str) -> None:
    """Writes the storage version's openAPIV3Schema as a JSON Schema."""
    doc = yaml.safe_load(Path(crd).read_text())
    versions = doc["spec"]["versions"]
    version = next((v for v in versions if v.get("storage")), versions[0])
    schema = version["schema"]["openAPIV3Schema"]
    # Every object has these, whether the CRD's schema lists them or not.
    implicit = {"apiVersion": {"type": "string"}, "kind": {"type": "string"}, "metadata": {"type": "object"}}
    schema["properties"] = {**implicit, **schema.get("properties", {})}
    schema = _to_jsonschema(schema)
    schema["$schema"] = "http://json-schema.org/draft-07/schema#"
    Path(out).write_text(json.dumps(schema, indent=1))


def example_values(example: str, out: str) -> None:
    """Chart values that create the example's GitalyCluster through the chart."""
    doc = yaml.safe_load(Path(example).read_text())
    if doc.get("kind") != "GitalyCluster":
        sys.exit(f"{example}: not a GitalyCluster (kind {doc.get('kind')!r})")
    meta = doc.get("metadata", {})
    values = {"cluster": {"enabled": True, "name": meta.get("name", "cairn"), "spec": doc.get("spec") or {}}}
    if meta.get("namespace"):
        values["cluster"]["namespace"] = meta["namespace"]
    Path(out).write_text(yaml.safe_dump(values, sort_keys=False))


KEY = re.compile(r"^(\s*)([A-Za-z0-9_]+):")


def documented_keys(values: str) -> list:
    """Dotted paths of the keys in values.yaml preceded by a `# --` comment."""
    keys, stack, doc_comment = [], [], False
    for line in Path(values).read_text().splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            doc_comment = doc_comment or stripped.startswith("# --")
            continue
        m = KEY.match(line)
        if not m:
            if not stripped:
                doc_comment = False
            continue
        indent = len(m.group(1))
        while stack and stack[-1][0] >= indent:
            stack.pop()
        stack.append((indent, m.group(2)))
        if doc_comment:
            keys.append(".".join(k for _, k in stack))
        doc_comment = False
    return keys


def readme_keys(values: str, readme: str) -> None:
    """Fails when README.md's values table misses a documented key."""
    text = Path(readme).read_text()
    keys = documented_keys(values)
    missing = [k for k in keys if f"`{k}`" not in text]
    if missing:
        sys.exit(f"{readme} does not list these values.yaml keys: {', '.join(missing)}")
    print(f"  README.md documents all {len(keys)} documented values")


if __name__ == "__main__":
    commands = {"split": split, "crd-schema": crd_schema, "example-values": example_values, "readme-keys": readme_keys}
    if len(sys.argv) < 2 or sys.argv[1] not in commands:
        sys.exit(f"usage: chart_check.py {{{'|'.join(commands)}}} ARGS...")
    commands[sys.argv[1]](*sys.argv[2:])
