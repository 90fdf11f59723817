"""The README's list of operations is generated from the declarations: the public names
(`declaration.PUBLIC`), grouped by the file that declares each. The test fails when an op is
added, renamed or removed without the list; `python tests/test_readme_ops.py` rewrites it.
"""
from __future__ import annotations

import re
import sys
import textwrap
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if __name__ == "__main__":  # as a script, tests/ comes first on sys.path: tests/autograd_lite would shadow the package
    sys.path[0] = str(ROOT)

import autograd_lite  # noqa: E402,F401  (declares everything)
from autograd_lite import primitives  # noqa: E402
from autograd_lite.declaration import PUBLIC, Primitive  # noqa: E402

README = ROOT / "README.md"
START, END = "<!-- ops:start -->", "<!-- ops:end -->"
# the table's files in the order primitives/__init__.py imports them; others (creation) after
ORDER = ["elementwise", "shape", "reductions", "linalg", "contractions", "scans"]


def declaring_module(name: str) -> str:
    """The module that declares the public function `name`. Functions made by
    `declaration.expose` (elementwise ops, the operators) live in declaration.py; theirs is the
    table file that holds the primitive of their name."""
    fn = PUBLIC[name]
    if fn.__module__ != "autograd_lite.declaration":
        return fn.__module__
    for module in vars(primitives).values():
        if getattr(module, "__name__", "").startswith("autograd_lite.primitives."):
            for value in vars(module).values():
                if isinstance(value, Primitive) and value.name == fn.__name__:
                    return module.__name__
    raise LookupError(f"ag.{name}: no file of autograd_lite/primitives/ declares a primitive "
                      f"named {fn.__name__!r}")


def groups() -> dict:
    """{module name: sorted public names}, the table's files first."""
    found = defaultdict(list)
    for name in PUBLIC:
        found[declaring_module(name)].append(name)
    short = {m: m.rpartition(".")[2] for m in found}
    rank = {m: (ORDER.index(short[m]) if short[m] in ORDER else len(ORDER), m) for m in found}
    return {m: sorted(found[m]) for m in sorted(found, key=rank.get)}


def render() -> str:
    """The block between the markers."""
    lines = [START]
    for module, names in groups().items():
        path = module.replace(".", "/") + ".py"
        head = f"- **{module.rpartition('.')[2]}** (`{path}`): "
        body = " ".join(f"`{n}`" for n in names)
        lines.append(textwrap.fill(head + body, width=100, subsequent_indent="  ",
                                   break_long_words=False, break_on_hyphens=False))
    lines.append(END)
    return "\n".join(lines)


def readme_block(text: str) -> str:
    start, end = text.find(START), text.find(END)
    if start < 0 or end < start:
        raise AssertionError(f"README.md has no op list between {START} and {END}")
    return text[start:end + len(END)]


def _names_by_group(block: str) -> dict:
    out = {}
    for item in re.split(r"\n(?=- )", block.replace(START, "").replace(END, "").strip()):
        label = re.match(r"- \*\*(\w+)\*\*", item)
        if label:
            out[label.group(1)] = set(re.findall(r"`([A-Za-z_]\w*)`", item))
    return out


def test_readme_lists_exactly_the_public_operations_by_file():
    block = readme_block(README.read_text())
    listed = _names_by_group(block)
    declared = {m.rpartition(".")[2]: set(names) for m, names in groups().items()}
    problems = []
    for group in sorted(set(listed) | set(declared)):
        missing = sorted(declared.get(group, set()) - listed.get(group, set()))
        extra = sorted(listed.get(group, set()) - declared.get(group, set()))
        if missing:
            problems.append(f"{group}: not listed {missing}")
        if extra:
            problems.append(f"{group}: listed but not declared there {extra}")
    assert not problems, ("README.md's op list is out of date (" + "; ".join(problems) +
                          "); run `python tests/test_readme_ops.py` to regenerate it")
    assert block == render(), "README.md's op list is not in the generated form; run " \
                              "`python tests/test_readme_ops.py` to regenerate it"


def test_every_public_name_has_a_declaring_file():
    for name in PUBLIC:
        assert declaring_module(name).startswith("autograd_lite.")


def main() -> None:
    text = README.read_text()
    new = text.replace(readme_block(text), render())
    if new == text:
        print("README.md: the op list is up to date")
        return
    README.write_text(new)
    print(f"README.md: op list rewritten ({len(PUBLIC)} public names)")


if __name__ == "__main__":
    sys.exit(main())
