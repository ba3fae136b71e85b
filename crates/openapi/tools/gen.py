#!/usr/bin/env python3
"""Regenerates crates/openapi/data/v1.NN.json.gz from PyPI kubernetes-validate.

Usage: python3 tools/gen.py DIR   where DIR is the unpacked wheel's
kubernetes_validate/kubernetes-json-schema (pip download --no-deps kubernetes-validate; unzip).
Turns the JSON-Schema-ified definitions back into OpenAPI form (single types, refs as
#/definitions/NAME, IntOrString/Quantity as kube-apiserver publishes them), strips descriptions,
keeps every x-kubernetes-* extension. Output is deterministic (gzip mtime 0, sorted keys).

The stripped descriptions go to data/descriptions.json.gz, loaded only when an OpenAPI document is
served: {"strings": [each distinct text once], "releases": [one map per release from 1.25 on,
definition -> {"" (the definition's own) or property name -> index into strings}]}. 1.25 holds
every entry; each later release only the entries whose text differs from the last one set, so a
release's description of an entry is the one in the newest map at or below it that has it."""
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

# Upstream publishes IntOrString with this description; the JSON Schema form above dropped it.
INT_OR_STRING_DESCRIPTION = ("IntOrString is a type that can hold an int32 or a string.  When used in JSON or "
    "YAML marshalling and unmarshalling, it produces or consumes the inner type.  This allows you to have, "
    "for example, a JSON field that can accept a name or number.")

def entries(name, schema):
    out = {}
    if name == "io.k8s.apimachinery.pkg.util.intstr.IntOrString":
        out[""] = INT_OR_STRING_DESCRIPTION
    if "description" in schema:
        out[""] = schema["description"]
    for prop, ps in (schema.get("properties") or {}).items():
        if isinstance(ps, dict) and "description" in ps:
            out[prop] = ps["description"]
    return out

def descriptions(root, outdir):
    strings, releases, last = {}, [], {}
    for minor in range(25, 38):
        defs = json.loads((root / f"v1.{minor}.0-local" / "_definitions.json").read_text())["$defs"]
        delta = {}
        for name in sorted(defs):
            for key, text in entries(name, defs[name]).items():
                if last.get((name, key)) != text:
                    last[(name, key)] = text
                    delta.setdefault(name, {})[key] = strings.setdefault(text, len(strings))
        releases.append(delta)
    data = json.dumps({"strings": list(strings), "releases": releases}, sort_keys=True, separators=(",", ":")).encode()
    path = outdir / "descriptions.json.gz"
    with open(path, "wb") as f:
        with gzip.GzipFile(fileobj=f, mode="wb", mtime=0, filename="", compresslevel=9) as g:
            g.write(data)
    print(f"{path.name}: {len(strings)} texts, {path.stat().st_size} bytes")

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
    descriptions(root, outdir)

if __name__ == "__main__":
    main()
