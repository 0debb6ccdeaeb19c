#!/usr/bin/env python3
"""Writes the schemas kube/tests validate the exported manifests against.

Usage: python3 tools/k8s_schemas.py KUBERNETES_VALIDATE_DIR LWS_CRD_YAML

KUBERNETES_VALIDATE_DIR is the unpacked wheel of the PyPI package kubernetes-validate 1.37.0
(`pip download kubernetes-validate==1.37.0 --no-deps`, then unzip); its
kubernetes-json-schema/v1.37.0-local-strict/ holds the strict standalone schemas of
Kubernetes 1.37 (every object closed with additionalProperties: false). LWS_CRD_YAML is
config/crd/bases/leaderworkerset.x-k8s.io_leaderworkersets.yaml of kubernetes-sigs/lws.

Only what the tests need is kept: the top-level schemas of the kinds inferkit writes, the
definitions they reach, and the LeaderWorkerSet v1 openAPIV3Schema; descriptions are dropped
(they are documentation, not constraints) to keep the fixtures small.
"""
import json
import pathlib
import sys

import yaml

KINDS = ["deployment-apps-v1", "service-v1", "configmap-v1", "podtemplatespec-v1"]
OUT = pathlib.Path(__file__).resolve().parent.parent / "kube/tests/fixtures/schemas"
DEFS_PREFIX = "/api/_definitions.json#/$defs/"


def strip(node):
    if isinstance(node, dict):
        return {k: strip(v) for k, v in node.items() if k != "description"}
    if isinstance(node, list):
        return [strip(v) for v in node]
    return node


def refs(node):
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value.rsplit("/", 1)[-1]
            else:
                yield from refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from refs(value)


def main(validate_dir, crd_path):
    source = pathlib.Path(validate_dir) / "kubernetes-json-schema/v1.37.0-local-strict"
    k8s = OUT / "k8s-v1.37"
    k8s.mkdir(parents=True, exist_ok=True)
    definitions = json.loads((source / "_definitions.json").read_text())
    wanted = set()
    for kind in KINDS:
        schema = strip(json.loads((source / f"{kind}.json").read_text()))
        (k8s / f"{kind}.json").write_text(json.dumps(schema, indent=1, sort_keys=True) + "\n")
        pending = list(refs(schema))
        while pending:
            name = pending.pop()
            if name not in wanted:
                wanted.add(name)
                pending.extend(refs(definitions["$defs"][name]))
    kept = dict(definitions)
    kept["$defs"] = {k: strip(v) for k, v in sorted(definitions["$defs"].items()) if k in wanted}
    (k8s / "_definitions.json").write_text(json.dumps(kept, indent=1, sort_keys=True) + "\n")
    crd = yaml.safe_load(pathlib.Path(crd_path).read_text())
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
    schema = strip(version["schema"]["openAPIV3Schema"])
    (OUT / "leaderworkerset-v1.json").write_text(json.dumps(schema, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main(*sys.argv[1:3])
