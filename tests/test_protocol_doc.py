"""docs/protocol.md is what the code cites: every citation names one of its sections, and
every ctx_tf symbol it names is defined somewhere in the package (found by name, so the
check survives a module move)."""

import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "protocol.md"
THIS = pathlib.Path(__file__).resolve()
# "docs/protocol.md §7.2", "§6.3-6.4", "§2.3–2.5" and a following ", §7.3".
CITATION = re.compile(r"docs/protocol\.md §(\d+(?:\.\d+)?)(?:\s*[-–]\s*(\d+(?:\.\d+)?))?"
                      r"((?:,\s*§\d+(?:\.\d+)?)*)")


def doc_sections():
    numbers = set()
    for line in DOC.read_text(encoding="utf-8").splitlines():
        match = re.match(r"#{2,3} (\d+(?:\.\d+)?)\.? ", line)
        if match:
            numbers.add(match.group(1))
    return numbers


def citing_files():
    for folder in ("ctx_tf", "tests", "benchmarks", "tools", "gin"):
        for path in sorted((ROOT / folder).rglob("*")):
            if path.suffix in (".py", ".gin", ".md") and path.is_file():
                yield path
    yield ROOT / "README.md"
    yield ROOT / "BUILD_NOTES.md"


def test_every_citation_names_a_section():
    sections = doc_sections()
    assert {"1", "2", "3", "4", "5", "6", "7", "8", "3.2", "6.3", "8.2"} <= sections
    cited, missing = 0, []
    for path in citing_files():
        if not path.exists():
            continue
        text = path.read_text(encoding="utf-8")
        for match in CITATION.finditer(text):
            numbers = [match.group(1)] + ([match.group(2)] if match.group(2) else [])
            numbers += re.findall(r"§(\d+(?:\.\d+)?)", match.group(3) or "")
            for number in numbers:
                cited += 1
                if number not in sections:
                    line = text.count("\n", 0, match.start()) + 1
                    missing.append(f"{path.relative_to(ROOT)}:{line}: §{number}")
    assert cited > 20, "the citations of docs/protocol.md were not found"
    assert not missing, "citations of sections docs/protocol.md does not have: " + "; ".join(
        missing)


def test_no_citation_of_documents_outside_the_repository():
    stale = re.compile(r"protocol spec, section|of the protocol document|"
                       r"meta-dataset protocol §|\(protocol §")
    found = [f"{path.relative_to(ROOT)}:{text.count(chr(10), 0, m.start()) + 1}"
             for path in citing_files() if path.exists() and path not in (DOC, THIS)
             for text in [path.read_text(encoding="utf-8")]
             for m in stale.finditer(text)]
    assert not found, "cite docs/protocol.md instead: " + ", ".join(found)


def defined_names():
    names = set()
    for path in (ROOT / "ctx_tf").rglob("*.py"):
        names.add(path.stem)
        names.add(path.parent.name)
        text = path.read_text(encoding="utf-8")
        names.update(re.findall(r"^\s*(?:def|class)\s+(\w+)", text, flags=re.M))
        names.update(re.findall(r"^(\w+)\s*=", text, flags=re.M))
    return names


def test_named_symbols_exist():
    names = defined_names()
    symbols = set(re.findall(r"`(ctx_tf(?:\.\w+)+)", DOC.read_text(encoding="utf-8")))
    assert len(symbols) > 40
    unknown = sorted(s for s in symbols if s.rsplit(".", 1)[-1] not in names)
    assert not unknown, f"docs/protocol.md names symbols that ctx_tf does not define: {unknown}"
