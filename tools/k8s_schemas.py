#!/usr/bin/env python3
"""Writes the schemas kube/tests validate the exported manifests against.

Usage: python3 tools/k8s_schemas.py KUBERNETES_VALIDATE_DIR LWS_CRD_YAML [ASCEND_OPERATOR_YAML]

KUBERNETES_VALIDATE_DIR is the unpacked wheel of the PyPI package kubernetes-validate 1.37.0
(`pip download kubernetes-validate==1.37.0 --no-deps`, then unzip); its
kubernetes-json-schema/v1.37.0-local-strict/ holds the strict standalone schemas of
Kubernetes 1.37 (every object closed with additionalProperties: false). LWS_CRD_YAML is
config/crd/bases/leaderworkerset.x-k8s.io_leaderworkersets.yaml of kubernetes-sigs/lws.
ASCEND_OPERATOR_YAML is component/ascend-operator/build/ascend-operator.yaml of Ascend/mind-cluster
(the operator's install manifest, which holds the AscendJob CRD, ascendjobs.mindxdl.gitee.com).

Only what the tests need is kept: the top-level schemas of the kinds inferkit writes, the
definitions they reach, and the v1 openAPIV3Schema of LeaderWorkerSet and AscendJob; descriptions are dropped
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


def crd_schema(documents, name):
    """The v1 openAPIV3Schema of the CustomResourceDefinition `name` among `documents`."""
    (crd,) = [d for d in documents if d and d.get("kind") == "CustomResourceDefinition"
              and d["metadata"]["name"] == name]
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
    return strip(version["schema"]["openAPIV3Schema"])


def write(name, schema):
    (OUT / name).write_text(json.dumps(schema, indent=1, sort_keys=True) + "\n")


def main(validate_dir, crd_path, ascend_operator=None):
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
    lws = yaml.safe_load_all(pathlib.Path(crd_path).read_text())
    write("leaderworkerset-v1.json", crd_schema(lws, "leaderworkersets.leaderworkerset.x-k8s.io"))
    if ascend_operator:
        documents = yaml.safe_load_all(pathlib.Path(ascend_operator).read_text())
        write("ascendjob-v1.json", crd_schema(documents, "ascendjobs.mindxdl.gitee.com"))


if __name__ == "__main__":
    main(*sys.argv[1:4])
