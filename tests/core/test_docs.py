"""Comments cite documents that are in the repository: every `docs/<name>.md` a file names exists, and
every section it names in quotes (`docs/decisions.md, "Late acks and a long visibility timeout"`) is a
heading of that document, so a renamed section or a citation of a document kept elsewhere fails here."""

import re
import subprocess

from tests.helpers import ROOT

CITATION = re.compile(r"docs/([\w-]+)\.md(?:,\s*(?:#\s*)?\"([^\"\n]+)\")?")
# Text this repository did not write, and binary files.
SKIPPED = ("static/vendor/",)
SUFFIXES = {".py", ".html", ".js", ".css", ".md", ".toml", ".yml", ".yaml", ".sh", ".txt", ".in", ""}


def _sources():
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    for name in tracked.splitlines():
        path = ROOT / name
        if name.startswith(SKIPPED) or path.suffix not in SUFFIXES or not path.is_file():
            continue
        yield name, path.read_text(errors="replace")


def _headings(document) -> set[str]:
    return {line.lstrip("#").strip() for line in document.read_text().splitlines() if line.startswith("#")}


def test_every_cited_document_and_section_is_in_the_repository():
    headings, problems, cited = {}, [], 0
    for name, text in _sources():
        for match in CITATION.finditer(text):
            cited += 1
            document, section = ROOT / "docs" / f"{match[1]}.md", match[2]
            line = text.count("\n", 0, match.start()) + 1
            if not document.is_file():
                problems.append(f"{name}:{line}: docs/{match[1]}.md is not in the repository")
            elif section and section not in headings.setdefault(document, _headings(document)):
                problems.append(f"{name}:{line}: docs/{match[1]}.md has no section {section!r}")
    assert cited > 50, "the citation pattern no longer finds the code's citations"
    assert not problems, "\n".join(problems)
