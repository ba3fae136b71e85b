#!/usr/bin/env python3
"""Regenerates crates/apiserver/data/protobuf.json.gz: the field table of every Kubernetes
protobuf message, which the API server uses to turn kubectl's protobuf request bodies into JSON.

Usage (from the workspace root):
    cargo fetch                       # puts k8s-pb in ~/.cargo/registry (it is no dependency of
                                      # rotor: add `k8s-pb = "=0.9.0"` to any scratch crate)
    python3 crates/apiserver/tools/gen_protobuf.py [-v] [K8S_PB_SRC]
K8S_PB_SRC defaults to ~/.cargo/registry/src/*/k8s-pb-0.9.0/src; -v lists what the report counts
(fields named by fallback, inline embeddings, zero-keeping fields, list wrappers, messages without
an OpenAPI definition): read it after an upgrade.

Sources of truth:
- k8s-pb (kube-rs' prost bindings of the upstream generated.proto files, Apache-2.0): each
  message's fields, their tags and wire types, from the `#[prost(...)]` attributes and the Rust
  type paths.
- crates/openapi/data/v1.NN.json.gz (the real OpenAPI definitions): each field's JSON name (the
  OpenAPI property whose name equals the proto name with punctuation removed, compared without
  case), whether it is `required`, which fields Go embeds inline (`json:",inline"`: a message
  field no property matches, all of whose own properties the parent has), and which definition
  serves which apiVersion/kind (`x-kubernetes-group-version-kind`).

Each field is [tag, jsonName, type, target, flags]: type is string/bytes/bool/int32/int64/double/
message or map<string|bytes|message> (map keys are always strings in Kubernetes); target is the
message's name for message types; flags has r (repeated), i (inline), q (required), z (an
explicit zero is meaningful: see the comment on POINTER_DOC). A message with a "special" code has a JSON form
of its own (Time, Quantity, IntOrString, RawExtension...). Output is deterministic (sorted keys,
gzip mtime 0). The script fails loudly on anything it does not understand, so a newer k8s-pb that
adds a construct needs a look rather than silently producing a wrong table.
"""
import glob, gzip, json, os, pathlib, re, sys

ROOT = pathlib.Path(__file__).resolve().parents[3]
OPENAPI = ROOT / "crates" / "openapi" / "data"
OUT = ROOT / "crates" / "apiserver" / "data" / "protobuf.json.gz"
K8S_PB_VERSION = "0.9.0"

# Messages whose JSON form is not an object of their fields (Go types with MarshalJSON).
SPECIAL = {
    "io.k8s.apimachinery.pkg.apis.meta.v1.Time": "time",
    "io.k8s.apimachinery.pkg.apis.meta.v1.MicroTime": "microtime",
    "io.k8s.apimachinery.pkg.apis.meta.v1.Duration": "duration",
    "io.k8s.apimachinery.pkg.apis.meta.v1.FieldsV1": "raw",
    "io.k8s.apimachinery.pkg.api.resource.Quantity": "quantity",
    "io.k8s.apimachinery.pkg.util.intstr.IntOrString": "intorstring",
    "io.k8s.apimachinery.pkg.runtime.RawExtension": "raw",
    "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.JSON": "raw",
    "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1beta1.JSON": "raw",
    "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.JSONSchemaPropsOrArray": "orarray",
    "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1beta1.JSONSchemaPropsOrArray": "orarray",
    "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.JSONSchemaPropsOrBool": "orbool",
    "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1beta1.JSONSchemaPropsOrBool": "orbool",
    "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.JSONSchemaPropsOrStringArray": "orstringarray",
    "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1beta1.JSONSchemaPropsOrStringArray": "orstringarray",
}
SPECIAL_LOWER = {k.lower(): v for k, v in SPECIAL.items()}
# The wire layout each special decoder in protobuf/decode.rs relies on: (tag, rust name, attribute).
SPECIAL_LAYOUT = {
    "time": [(1, "seconds", "int64, optional"), (2, "nanos", "int32, optional")],
    "microtime": [(1, "seconds", "int64, optional"), (2, "nanos", "int32, optional")],
    "duration": [(1, "duration", "int64, optional")],
    "quantity": [(1, "string", "string, optional")],
    "intorstring": [(1, "type", "int64, optional"), (2, "int_val", "int32, optional"), (3, "str_val", "string, optional")],
    "raw": [(1, "raw", 'bytes = "vec", optional')],
    "orarray": [(1, "schema", "message, optional"), (2, "j_son_schemas", "message, repeated")],
    "orbool": [(1, "allows", "bool, optional"), (2, "schema", "message, optional")],
    "orstringarray": [(1, "schema", "message, optional"), (2, "property", "string, repeated")],
}

# Rust module root → OpenAPI package prefix.
ROOTS = {
    "api": "io.k8s.api",
    "apimachinery": "io.k8s.apimachinery",
    "apiextensions_apiserver": "io.k8s.apiextensions-apiserver",
    "kube_aggregator": "io.k8s.kube-aggregator",
    "metrics": "io.k8s.metrics",
}
SKIP_PACKAGES = ("io.k8s.apimachinery.pkg.apis.testapigroup",)

SCALARS = {"string", "bytes", "bool", "int32", "int64", "double"}

# An explicit zero of a scalar cannot be told from "unset" on the wire: Go's marshaller writes
# non-pointer fields always and pointer fields when set, both as the same bytes. Kubernetes knows
# the Go types; this table does not, so the decoder drops zero scalars (what `omitempty` does for
# the many non-pointer fields) except where the upstream documentation, which k8s-pb carries as
# doc comments, says a zero differs from unset (flag z):
# - the field "is a pointer to distinguish between explicit zero and not specified", or gives
#   zero a meaning of its own ("If this field is set to zero, ...");
# - it defaults to something other than zero/false ("Defaults to 1"): an unset non-pointer field
#   would be defaulted from zero anyway, so a zero on the wire was asked for;
# - it marks zero as its default (`+default=0`): keeping it changes nothing, and the scale
#   handler then sees Scale.spec.replicas = 0;
# unless the documentation rules zero out ("Minimum value is 1": Probe's thresholds, non-pointer
# fields a client leaves at zero to get the default). `-v` lists the fields this marks.
POINTER_DOC = re.compile(
    r"pointer to distinguish|\+default=(?:0|false)\b|set to zero|zero and negative values|if this value is zero|the value zero indicates",
    re.I,
)
NONZERO_DEFAULT = re.compile(
    r"\b(?:defaults? (?:to|is)|if unspecified, defaults to|default value is)\s+[`\"]?(?:true|0?[1-9][0-9]*)",
    re.I,
)
ZERO_INVALID = re.compile(r"minimum value is 1", re.I)

ATTR = re.compile(r"#\[prost\((.*)\)\]\s*$")
FIELD = re.compile(r"^\s*pub (r#)?([a-z0-9_]+):\s*(.*)$")


def norm(name):
    return re.sub(r"[^a-z0-9]", "", name.lower())


def load_openapi():
    """Every definition of every release: the newest release's form, with the properties and the
    `required` of all releases (a field a later release dropped still has its JSON name; 1.37
    stopped listing some status fields as required that Go still prints at zero)."""
    defs = {}
    for path in sorted(OPENAPI.glob("v1.*.json.gz"), key=lambda p: int(p.name.split(".")[1])):
        for name, schema in json.loads(gzip.open(path).read())["definitions"].items():
            old = defs.get(name, {})
            props = dict(old.get("properties", {}))
            props.update(schema.get("properties", {}))
            required = sorted(set(old.get("required", [])) | set(schema.get("required", [])))
            defs[name] = dict(schema, properties=props, required=required)
    return defs


def module_of(path, src):
    rel = pathlib.Path(path).relative_to(src).parent.parts
    return list(rel)


def package_of(module):
    pkg = ROOTS[module[0]]
    return ".".join([pkg] + list(module[1:]))


def resolve(module, rust_type):
    """(module path, struct name) of a message type written as a Rust path."""
    t = rust_type.replace(" ", "").replace(",>", ">")
    for wrapper in ("::core::option::Option<", "::prost::alloc::vec::Vec<", "::prost::alloc::boxed::Box<"):
        while t.startswith(wrapper):
            t = t[len(wrapper):-1]
    parts = t.split("::")
    here = list(module)
    while parts and parts[0] == "super":
        here.pop()
        parts.pop(0)
    if parts and parts[0] == "crate":
        here = []
        parts.pop(0)
    return here + parts[:-1], parts[-1]


def map_value_type(rust_type):
    t = rust_type.replace(" ", "").replace(",>", ">")
    m = re.match(r"^::prost::alloc::collections::BTreeMap<::prost::alloc::string::String,(.*)>$", t)
    if not m:
        sys.exit(f"unexpected map type {rust_type}")
    return m.group(1)


def parse_file(path, src):
    """Yields (module, struct name, [(attr, rust name, rust type, doc)])."""
    module = module_of(path, src)
    lines = pathlib.Path(path).read_text().splitlines()
    i = 0
    while i < len(lines):
        empty = re.match(r"^pub struct ([A-Za-z0-9_]+) \{\}$", lines[i])
        if empty:
            yield module, empty.group(1), []
            i += 1
            continue
        m = re.match(r"^pub struct ([A-Za-z0-9_]+) \{$", lines[i])
        if not m:
            if re.match(r"^pub enum |^pub mod [a-z0-9_]+ \{", lines[i]):
                sys.exit(f"{path}:{i + 1}: unexpected item {lines[i]!r}")
            i += 1
            continue
        name = m.group(1)
        fields = []
        doc = []
        attr = None
        i += 1
        while lines[i] != "}":
            line = lines[i]
            stripped = line.strip()
            if stripped.startswith("///"):
                doc.append(stripped[3:].strip())
            elif ATTR.match(stripped):
                attr = ATTR.match(stripped).group(1)
            elif FIELD.match(line):
                fm = FIELD.match(line)
                rust_type = fm.group(3)
                while rust_type.count("<") != rust_type.count(">") or not rust_type.rstrip().endswith(","):
                    i += 1
                    rust_type += lines[i].strip()
                if attr is None:
                    sys.exit(f"{path}:{i + 1}: field without #[prost]")
                fields.append((attr, fm.group(2), rust_type.rstrip().rstrip(","), " ".join(doc)))
                doc, attr = [], None
            elif stripped:
                sys.exit(f"{path}:{i + 1}: unexpected line in struct {name}: {line!r}")
            i += 1
        yield module, name, fields
        i += 1


def parse_attr(attr):
    """(type, repeated, tag, map value type or None)."""
    tag = int(re.search(r'tag = "([0-9]+)"', attr).group(1))
    m = re.match(r'btree_map = "string, (string|bytes|message)"', attr)
    if m:
        return "map", False, tag, m.group(1)
    kind = attr.split(",")[0].split("=")[0].strip()
    if kind not in SCALARS | {"message"}:
        sys.exit(f"unknown prost attribute {attr}")
    label = [p.strip() for p in attr.split(",")[1:]]
    repeated = "repeated" in label
    if not repeated and "optional" not in label:
        sys.exit(f"neither optional nor repeated: {attr}")
    return kind, repeated, tag, None


def main():
    args = [a for a in sys.argv[1:] if a != "-v"]
    verbose = "-v" in sys.argv[1:]
    if args:
        src = pathlib.Path(args[0])
    else:
        found = glob.glob(os.path.expanduser(f"~/.cargo/registry/src/*/k8s-pb-{K8S_PB_VERSION}/src"))
        if not found:
            sys.exit(f"k8s-pb {K8S_PB_VERSION} not found in ~/.cargo/registry; pass its src dir")
        src = pathlib.Path(found[0])
    defs = load_openapi()
    lower_defs = {}
    for name in defs:
        lower_defs.setdefault(name.lower(), name)

    # Pass 1: every struct, named as the OpenAPI definitions name it where one exists.
    structs = {}  # (module tuple, rust name) -> (message name, fields)
    for path in sorted(glob.glob(str(src / "**" / "mod.rs"), recursive=True)):
        if pathlib.Path(path).parent == src:
            continue
        for module, rust_name, fields in parse_file(path, src):
            pkg = package_of(module)
            if pkg.startswith(SKIP_PACKAGES):
                continue
            full = f"{pkg}.{rust_name}"
            structs[(tuple(module), rust_name)] = (lower_defs.get(full.lower(), full), fields)

    messages = {}
    report = {"fallback_names": [], "inline": [], "keep_zero": [], "wrappers": [], "no_definition": []}
    names_of = {key: v[0] for key, v in structs.items()}
    module_of_name = {v[0]: key[0] for key, v in structs.items()}
    # The normalised proto field names of each message (an inline candidate's fields must all be
    # properties of the parent; embedded types such as ProbeHandler have no definition of their own).
    fields_of = dict(structs.values())

    def visible(target, props, depth=0):
        """The JSON names `target` shows when inlined into an object with properties `props`
        (Go embeds recursively: NamedRuleWithOperations ⊃ RuleWithOperations ⊃ Rule)."""
        names = set()
        for attr, rust_field, rust_type, _ in fields_of[target]:
            n = norm(rust_field)
            kind = parse_attr(attr)[0]
            if n not in props and kind == "message" and depth < 4:
                sub_mod, sub = resolve(list(module_of_name[target]), rust_type)
                names |= visible(names_of[(tuple(sub_mod), sub)], props, depth + 1)
            else:
                names.add(n)
        return names

    def target_of(module, attr, rust_type):
        kind, _, _, map_value = parse_attr(attr)
        inner = map_value_type(rust_type) if kind == "map" else rust_type
        tmod, tname = resolve(list(module), inner)
        if (tuple(tmod), tname) not in names_of:
            sys.exit(f"unresolved type {rust_type} in {module}")
        return names_of[(tuple(tmod), tname)]

    # Which message fields Go embeds inline, and where each message's JSON names come from: its
    # own definition; else (an embedded-only type such as ProbeHandler) the definitions of the
    # messages that inline it; else the same-named definition in another version of its group
    # (autoscaling/v2beta1's MetricSpec is named as autoscaling/v2's).
    inline = set()
    name_source = {}
    for (module, _), (msg_name, fields) in sorted(structs.items()):
        props = defs.get(msg_name, {}).get("properties", {})
        by_norm = {norm(p) for p in props}
        for attr, rust_field, rust_type, _ in fields:
            kind, repeated, _, _ = parse_attr(attr)
            if props and kind == "message" and not repeated and norm(rust_field) not in by_norm:
                target = target_of(module, attr, rust_type)
                if visible(target, by_norm) <= by_norm:
                    inline.add((msg_name, rust_field))
                    report["inline"].append(f"{msg_name}.{rust_field} ({target})")
                    if target not in defs:
                        name_source.setdefault(target, {}).update(props)
    siblings = {}
    for name, schema in defs.items():
        group, _, short = name.rsplit(".", 2)
        siblings.setdefault((group, short.lower()), {}).update(schema.get("properties", {}))
    for msg_name, _ in structs.values():
        if msg_name not in defs and msg_name not in name_source:
            group, _, short = msg_name.rsplit(".", 2)
            if (group, short.lower()) in siblings:
                name_source[msg_name] = siblings[(group, short.lower())]

    for (module, rust_name), (msg_name, fields) in sorted(structs.items(), key=lambda kv: kv[1][0]):
        schema = defs.get(msg_name)
        props = schema.get("properties", {}) if schema else name_source.get(msg_name, {})
        required = set((schema or {}).get("required", []))
        by_norm = {norm(p): p for p in props}
        out_fields = []
        for attr, rust_field, rust_type, doc in fields:
            kind, repeated, tag, map_value = parse_attr(attr)
            target = target_of(module, attr, rust_type) if "message" in (kind, map_value) else None
            ty = f"map<{map_value}>" if kind == "map" else kind
            flags = "r" if repeated else ""
            json_name = by_norm.get(norm(rust_field))
            if (msg_name, rust_field) in inline:
                flags += "i"
                json_name = ""
            if json_name is None:
                head, *rest = rust_field.split("_")
                json_name = head + "".join(w[:1].upper() + w[1:] for w in rest)
                if props:
                    report["fallback_names"].append(f"{msg_name}.{rust_field} -> {json_name}")
            if json_name in required:
                flags += "q"
            if kind in ("int32", "int64", "double", "bool") and not repeated:
                if POINTER_DOC.search(doc) or (NONZERO_DEFAULT.search(doc) and not ZERO_INVALID.search(doc)):
                    flags += "z"
                    report["keep_zero"].append(f"{msg_name}.{json_name}")
            out_fields.append([tag, json_name, ty, target, flags])
        out_fields.sort(key=lambda f: f[0])
        entry = {"fields": out_fields}
        special = SPECIAL_LOWER.get(msg_name.lower())
        if special:
            have = sorted((parse_attr(a)[2], n, parse_attr(a)[0]) for a, n, _, _ in fields)
            want = sorted((t, n, a.split(",")[0].split("=")[0].strip()) for t, n, a in SPECIAL_LAYOUT[special])
            if sorted(have) != sorted(want):
                sys.exit(f"{msg_name}: layout {have} is not the expected {want}")
            entry["special"] = special
        elif schema is None and [f[1] for f in out_fields] == ["items"] and "r" in out_fields[0][4]:
            # Go named slice types (ExtraValue, Verbs): a message on the wire, a list in JSON.
            entry["special"] = "items"
            report["wrappers"].append(msg_name)
        elif not props:
            report["no_definition"].append(msg_name)
        messages[msg_name] = entry

    kinds = {}
    for name, schema in defs.items():
        for gvk in schema.get("x-kubernetes-group-version-kind", []):
            if name not in messages:
                continue
            gv = f"{gvk['group']}/{gvk['version']}" if gvk["group"] else gvk["version"]
            kinds[f"{gv}/{gvk['kind']}"] = name
    envelope = "io.k8s.apimachinery.pkg.runtime.Unknown"
    if [f[:3] for f in messages[envelope]["fields"]] != [
        [1, "typeMeta", "message"], [2, "raw", "bytes"], [3, "contentEncoding", "string"], [4, "contentType", "string"]
    ]:
        sys.exit(f"unexpected runtime.Unknown layout {messages[envelope]['fields']}")

    data = {"source": f"k8s-pb {K8S_PB_VERSION}", "messages": messages, "kinds": kinds}
    blob = json.dumps(data, sort_keys=True, separators=(",", ":")).encode()
    OUT.parent.mkdir(exist_ok=True)
    with open(OUT, "wb") as f:
        with gzip.GzipFile(fileobj=f, mode="wb", mtime=0, filename="", compresslevel=9) as g:
            g.write(blob)
    for k, v in report.items():
        print(f"{k}: {len(v)}")
        if verbose:
            for line in v:
                print(f"  {line}")
    print(f"{OUT.name}: {len(messages)} messages, {len(kinds)} kinds, {OUT.stat().st_size} bytes")


if __name__ == "__main__":
    main()
