#!/usr/bin/env python3
"""Regenerates crates/openapi/data/v1.NN.json.gz from PyPI kubernetes-validate.

Usage: python3 tools/gen.py DIR   where DIR is the unpacked wheel's
kubernetes_validate/kubernetes-json-schema (pip download --no-deps kubernetes-validate; unzip).
Turns the JSON-Schema-ified definitions back into OpenAPI form (single types, refs as
#/definitions/NAME, IntOrString/Quantity as kube-apiserver publishes them), strips descriptions,
keeps every x-kubernetes-* extension. Output is deterministic (gzip mtime 0, sorted keys)."""
import gzip, json, pathlib, sys

SPECIAL = {
    "io.k8s.apimachinery.pkg.util.intstr.IntOrString": {"type": "string", "format": "int-or-string", "x-kubernetes-int-or-string": True},
    "io.k8s.apimachinery.pkg.api.resource.Quantity": {"type": "string", "format": "quantity"},
}

def norm(x, top_gvk=False):
    if isinstance(x, list):
        return [norm(v) for v in x]
    if not isinstance(x, dict):
        return x
    out = {}
    for k, v in x.items():
        if k == "description":
            continue
        if k == "type" and isinstance(v, list):
            types = [t for t in v if t != "null"]
            v = types[0] if types else "object"
        elif k == "$ref" and isinstance(v, str):
            v = "#/definitions/" + v.split("/")[-1]
        elif k == "properties" and isinstance(v, dict):
            props = {}
            for pk, pv in v.items():
                pv = norm(pv)
                if top_gvk and pk in ("apiVersion", "kind") and isinstance(pv, dict):
                    pv.pop("enum", None)
                props[pk] = pv
            out[k] = props
            continue
        else:
            v = norm(v)
        out[k] = v
    return out

def main():
    root = pathlib.Path(sys.argv[1])
    outdir = pathlib.Path(__file__).resolve().parent.parent / "data"
    for minor in range(25, 38):
        src = root / f"v1.{minor}.0-local" / "_definitions.json"
        defs = json.loads(src.read_text())["$defs"]
        result = {}
        for name, schema in defs.items():
            result[name] = SPECIAL.get(name) or norm(schema, top_gvk="x-kubernetes-group-version-kind" in schema)
        data = json.dumps({"definitions": result}, sort_keys=True, separators=(",", ":")).encode()
        path = outdir / f"v1.{minor}.json.gz"
        with open(path, "wb") as f:
            with gzip.GzipFile(fileobj=f, mode="wb", mtime=0, filename="", compresslevel=9) as g:
                g.write(data)
        print(f"{path.name}: {len(defs)} definitions, {path.stat().st_size} bytes")

if __name__ == "__main__":
    main()
