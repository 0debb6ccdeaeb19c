#!/usr/bin/env python3
"""Generates every driver's flag table from the JSON its backend's argument parser was dumped to.

For each driver with a `drivers/<driver>/data/flags.json`, reads the backend dumps that file
names (copies of /work/shared/reference/backend-flags/*.json, kept in the same `data/`
directory), applies the driver's corrections and marks, and writes
`drivers/<driver>/src/flags/table.rs` in the model of `inferkit_core::flags`. Each driver's
tests compare that table with the same JSON (`inferkit_core::flags::source::compare`).

    python3 tools/gen_flags.py            # rewrite every table and the fuzz dictionary
    python3 tools/gen_flags.py --check    # exit 1 if a table or the dictionary is stale

It also writes `fuzz/backend_params.dict`, the libFuzzer dictionary of the `backend_params`
target: every spelling of every table and every choice of their flags, so that the fuzzer
writes real flags and values (fuzz/README.md).

`flags.json` holds:
  tables          [{"source": "<dump>.json", "static": "<Rust name>"}], one per version
  order           "source" (the dump's order) or "name" (sorted by canonical name)
  types           dump type name -> ValueKind, where the default mapping (KINDS) is not right;
                  an override's type "int_or:W1|W2" is an integer or one of the words W1, W2
  overrides       flag -> fields replacing the dump's, each a correction of the extraction
  platform_owned  flag -> why the platform sets it (a user value is refused)
  secret          flags whose value is a credential (kept out of plans)
"""

import json
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent

# Dump type name (after an "optional:" prefix) -> ValueKind.
KINDS = {
    "int": "Int",
    "uint": "UInt",
    "float": "Float",
    "string": "Text",
    "str": "Text",
    "float_list": "FloatList",
}


def value_kind(type_name, types):
    bare = type_name.removeprefix("optional:")
    if bare in types:
        return types[bare]
    if bare in KINDS:
        return KINDS[bare]
    if bare.startswith("int_human"):
        return "HumanIntOrAuto" if "or_auto" in bare else "HumanInt"
    if bare.startswith("json"):
        return "Json"
    if bare.startswith("int_or:"):
        # "int_or:auto|all": an integer or one of the words (llama.cpp's `-ngl`).
        return f"IntOr({rust_strs(bare.removeprefix('int_or:').split('|'))})"
    # Parser callables (vLLM's lambdas, parse_reasoning_parser) read text.
    return "Text"


def arity(flag, types):
    if not flag["takes_value"]:
        return "Arity::Switch"
    nargs = flag.get("nargs")
    if nargs == 2:
        # "FILE SCALE" pairs a path with a number, "START END" two numbers.
        second = value_kind(flag["value_types"][0], types)
        first = "Text" if (flag.get("metavar") or "").startswith("FILE") else second
        return f"Arity::Two(ValueKind::{first}, ValueKind::{second})"
    kind = f"ValueKind::{value_kind(flag['type'], types)}"
    shape = {"?": "Optional", "+": "Many"}.get(nargs, "One")
    return f"Arity::{shape}({kind})"


def default_text(flag):
    value = flag.get("default")
    if value is None or isinstance(value, (dict, list)) or flag["type"].startswith("json"):
        return None
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def rust_str(text):
    out = []
    for c in text:
        if c in '\\"':
            out.append("\\" + c)
        elif c == "\n":
            out.append("\\n")
        elif c == "\t":
            out.append("\\t")
        elif ord(c) < 0x20 or c == "\x7f":
            out.append(f"\\u{{{ord(c):x}}}")
        else:
            out.append(c)
    return '"' + "".join(out) + '"'


def rust_strs(items):
    return "&[" + ", ".join(rust_str(i) for i in items) + "]"


def rust_f64(value):
    text = repr(float(value))
    return text if any(c in text for c in ".e") else text + ".0"


def range_expr(flag):
    r = flag.get("range") or {}
    fields = []
    for key in ("min", "min_exclusive", "max", "min_if_nonzero"):
        if r.get(key) is not None:
            fields.append(f"{key}: Some({rust_f64(r[key])})")
    if r.get("multiple_of") is not None:
        fields.append(f"multiple_of: Some({int(r['multiple_of'])})")
    if r.get("power_of_2"):
        fields.append("power_of_two: PowerOfTwo::Required")
    elif r.get("power_of_2_or_-1"):
        fields.append("power_of_two: PowerOfTwo::OrMinusOne")
    if not fields:
        return None
    return "Range { " + ", ".join(fields) + ", ..Range::NONE }"


def spec_fields(flag, config):
    """The fields of one FlagSpec that differ from FlagSpec::BLANK."""
    name = flag["name"]
    choices = [("None" if c is None else str(c)) for c in (flag.get("choices") or [])]
    fields = [
        ("name", rust_str(name)),
        ("aliases", rust_strs(flag.get("aliases") or [])),
        ("negatives", rust_strs(flag.get("negative_forms") or [])),
        ("arity", arity(flag, config.get("types", {}))),
        ("choices", rust_strs(choices)),
        ("range", range_expr(flag)),
        ("default", default_text(flag)),
        ("env", flag.get("env")),
        ("repeatable", bool(flag.get("repeatable")) or flag.get("action") == "_AppendAction"),
        ("deprecated", bool(flag.get("deprecated"))),
        ("exits", bool(flag.get("exits"))),
        ("requires_before", flag.get("requires_before")),
        ("platform_owned", config.get("platform_owned", {}).get(name)),
        ("secret", name in config.get("secret", [])),
        ("section", flag.get("section") or flag.get("group") or ""),
        ("help", flag.get("help") or flag.get("description") or ""),
    ]
    out = []
    for key, value in fields:
        # Fields equal to FlagSpec::BLANK's are left to it.
        if value is None or value is False or value in ("&[]", "Arity::Switch"):
            continue
        if key in ("section", "help") and value == "":
            continue
        if key in ("default", "env", "requires_before", "platform_owned"):
            value = f"Some({rust_str(value)})"
        elif key in ("section", "help"):
            value = rust_str(value)
        elif value is True:
            value = "true"
        out.append((key, value))
    return out


def corrected_flags(dump, config):
    flags = []
    for flag in dump["flags"]:
        flag = dict(flag)
        flag.update(config.get("overrides", {}).get(flag["name"], {}))
        flags.append(flag)
    if config.get("order") == "name":
        flags.sort(key=lambda f: f["name"])
    return flags


def spellings(flags):
    rows = []
    for index, flag in enumerate(flags):
        for text in [flag["name"], *(flag.get("aliases") or [])]:
            rows.append((text, index, False))
        for text in flag.get("negative_forms") or []:
            rows.append((text, index, True))
    rows.sort()
    texts = [text for text, _, _ in rows]
    duplicates = {t for t in texts if texts.count(t) > 1}
    if duplicates:
        sys.exit(f"spellings belong to several flags: {sorted(duplicates)}")
    return rows


def load_json(path):
    """Reads a JSON file, refusing an object with a key twice: a merge can leave both copies,
    and json.loads would keep the second one without a word."""

    def refuse_duplicates(pairs):
        keys = [key for key, _ in pairs]
        twice = sorted({key for key in keys if keys.count(key) > 1})
        if twice:
            sys.exit(f"{path.relative_to(ROOT)}: key(s) {twice} appear twice in one object")
        return dict(pairs)

    return json.loads(path.read_text(), object_pairs_hook=refuse_duplicates)


def render_table(driver, table, config):
    source = ROOT / "drivers" / driver / "data" / table["source"]
    dump = load_json(source)
    flags = corrected_flags(dump, config)
    lines = [
        f"/// {dump['backend']} {dump['version']}: every flag of `{table['source']}`.",
        f"pub(crate) static {table['static']}: FlagTable = FlagTable {{",
        f"    backend: {rust_str(dump['backend'])},",
        f"    version: {rust_str(dump['version'])},",
        "    flags: &[",
    ]
    for flag in flags:
        lines.append("        FlagSpec {")
        lines += [f"            {key}: {value}," for key, value in spec_fields(flag, config)]
        lines += ["            ..FlagSpec::BLANK", "        },"]
    lines += ["    ],", "    spellings: &["]
    for text, index, negative in spellings(flags):
        lines.append(
            f"        Spelling {{ text: {rust_str(text)}, flag: {index}, "
            f"negative: {str(negative).lower()} }},"
        )
    lines += ["    ],", "};"]
    return "\n".join(lines)


def render(driver, config):
    bodies = [render_table(driver, table, config) for table in config["tables"]]
    used = ["FlagSpec", "FlagTable", "Spelling"]
    text = "\n".join(bodies)
    for name in ("Arity", "PowerOfTwo", "Range", "ValueKind"):
        if f"{name}::" in text:
            used.append(name)
    sources = ", ".join(f"data/{t['source']}" for t in config["tables"])
    header = [
        f"// @generated by tools/gen_flags.py from drivers/{driver}/data/flags.json and {sources}.",
        "// Do not edit: change the data and run `python3 tools/gen_flags.py`.",
        "",
        f"use inferkit_core::flags::{{{', '.join(sorted(used))}}};",
        "",
    ]
    return "\n".join(header) + "\n" + "\n\n".join(bodies) + "\n"


def dict_entry(text):
    """One libFuzzer dictionary entry: a quoted string, `\\`, `"` and bytes outside printable
    ASCII escaped as libFuzzer's ParseDictionaryFile reads them (`\\xNN`)."""
    out = []
    for byte in text.encode():
        if byte in (0x5C, 0x22):
            out.append("\\" + chr(byte))
        elif 0x20 <= byte < 0x7F:
            out.append(chr(byte))
        else:
            out.append(f"\\x{byte:02X}")
    return '"' + "".join(out) + '"'


def render_dict(configs):
    """The `backend_params` dictionary: every spelling and every choice of every table."""
    words = set()
    for driver, config in configs:
        for table in config["tables"]:
            dump = load_json(ROOT / "drivers" / driver / "data" / table["source"])
            for flag in corrected_flags(dump, config):
                words.update(text for text, _, _ in spellings([flag]))
                words.update(str(c) for c in (flag.get("choices") or []) if c is not None)
    words.discard("")
    header = [
        "# @generated by tools/gen_flags.py from drivers/*/data: every flag spelling and every",
        "# choice of every driver's flag tables. Do not edit: run `python3 tools/gen_flags.py`.",
    ]
    return "\n".join(header + [dict_entry(w) for w in sorted(words)]) + "\n"


def write_or_check(target, text, check, stale):
    if check:
        if not target.exists() or target.read_text() != text:
            stale.append(str(target.relative_to(ROOT)))
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)
    print(f"wrote {target.relative_to(ROOT)}")


def main():
    check = "--check" in sys.argv[1:]
    stale = []
    configs = []
    for config_path in sorted(ROOT.glob("drivers/*/data/flags.json")):
        driver = config_path.parent.parent.name
        config = load_json(config_path)
        configs.append((driver, config))
        target = ROOT / "drivers" / driver / "src" / "flags" / "table.rs"
        write_or_check(target, render(driver, config), check, stale)
    write_or_check(ROOT / "fuzz" / "backend_params.dict", render_dict(configs), check, stale)
    if stale:
        sys.exit(f"stale: {', '.join(stale)}; run python3 tools/gen_flags.py")


if __name__ == "__main__":
    main()
