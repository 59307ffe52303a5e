#!/usr/bin/env python3
"""Requirement index and id check for the Tether specification.

Scans spec/*.md (all chapters except the generated index) and enforces:

  1. A requirement is a paragraph or list item that starts with a marker
     `**[PREFIX-N]**`. PREFIX is one of KNOWN_PREFIXES; N is a decimal number
     without leading zeros. A marker anywhere else (mid-sentence, in a table,
     in a heading) is an error.
  2. Every id is defined once across all chapters.
  3. Every line outside code blocks and tables that uses MUST, MUST NOT, SHALL,
     SHALL NOT, REQUIRED, SHOULD, SHOULD NOT, RECOMMENDED or NOT RECOMMENDED
     belongs to a marked requirement. A keyword in double quotes ("MUST") or in
     inline code is a mention, not a use.
  4. Every requirement uses at least one RFC 2119 keyword (MAY and OPTIONAL
     count). Its level is MUST if it uses MUST/MUST NOT/SHALL/REQUIRED, else
     SHOULD if it uses SHOULD/SHOULD NOT/RECOMMENDED, else MAY.
  5. A reference to an id (`CHAN-12`, with a known prefix) names a defined id,
     when the chapter that owns that prefix exists; when it does not exist yet
     the reference is reported as a note only.
  6. Ids listed under "Retired requirement ids" in spec/README.md are never
     defined again and never referenced.
  7. An id listed in the committed index is not dropped unless it is retired.

It writes spec/08-requirements.md: counts per prefix and level, then per
chapter a table of id, level, chapter file and a one-line summary.

  --check  regenerate in memory; exit 1 if any rule is broken or the committed
           index differs from the regenerated one.
  --write  rewrite the index (refused if any rule is broken).

Standard library only.
"""

from __future__ import annotations

import argparse
import difflib
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SPEC_DIR = ROOT / "spec"
INDEX_NAME = "08-requirements.md"
README_NAME = "README.md"

# Prefix -> the chapter that owns it, in index order.
KNOWN_PREFIXES: dict[str, str] = {
    "TOKEN": "02-pairing-token.md",
    "LINK": "03-relay-link.md",
    "CHAN": "04-secure-channel.md",
    "CMD": "05-command-protocol.md",
    "REG": "06-registries.md",
    "SEC": "07-security-considerations.md",
}
LEVELS = ("MUST", "SHOULD", "MAY")
SUMMARY_MAX = 120

PREFIX_ALT = "|".join(KNOWN_PREFIXES)
MARKER_START = re.compile(r"^\*\*\[([A-Z]+)-(0|[1-9][0-9]*)\]\*\*")
MARKER_ANY = re.compile(r"\*\*\[[^\]]*\]\*\*")
REFERENCE = re.compile(rf"\b(?:{PREFIX_ALT})-[0-9]+\b")
LIST_ITEM = re.compile(r"^( *)([-*+]|[0-9]+[.)])( +|$)(.*)$")
HEADING = re.compile(r"^ {0,3}#{1,6}(\s|$)")
FENCE = re.compile(r"^ *(`{3,}|~{3,})")
INLINE_CODE = re.compile(r"`+[^`]*`+")
QUOTED_MENTION = re.compile(r"[\"\u201c][A-Z][A-Z ]*[\"\u201d]")
KW_MUST = re.compile(r"\b(?:MUST|SHALL|REQUIRED)\b")
KW_SHOULD = re.compile(r"\b(?:SHOULD|RECOMMENDED)\b")
KW_MAY = re.compile(r"\b(?:MAY|OPTIONAL)\b")
NON_SENTENCE_END = ("e.g", "i.e", "etc", "cf", "vs", "resp")


@dataclass
class Requirement:
    rid: str
    prefix: str
    number: int
    file: str
    line: int
    text: list[str] = field(default_factory=list)

    @property
    def body(self) -> str:
        return " ".join(t.strip() for t in self.text if t.strip())

    @property
    def level(self) -> str | None:
        words = normative_view(self.body)
        if KW_MUST.search(words):
            return "MUST"
        if KW_SHOULD.search(words):
            return "SHOULD"
        if KW_MAY.search(words):
            return "MAY"
        return None


@dataclass
class Report:
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def error(self, where: str, message: str) -> None:
        self.errors.append(f"{where}: {message}")


def normative_view(text: str) -> str:
    """Text with inline code and quoted keyword mentions removed."""
    return QUOTED_MENTION.sub(" ", INLINE_CODE.sub(" ", text))


@dataclass
class Item:
    marker_indent: int
    content_indent: int
    owner: str | None


@dataclass
class Chapter:
    name: str
    title: str
    requirements: list[Requirement]
    references: list[tuple[int, str]]


def parse_chapter(path: Path, report: Report) -> Chapter:
    """Finds requirement blocks, normative lines outside them, and id references."""
    name = path.name
    title = name
    requirements: list[Requirement] = []
    references: list[tuple[int, str]] = []
    by_id: dict[str, Requirement] = {}

    fence: str | None = None
    in_comment = False
    blank = True  # the start of a file behaves like a blank line
    items: list[Item] = []
    owner: str | None = None  # owner of the block the current line belongs to

    def start_block(text: str, lineno: int, inherited: str | None) -> tuple[str | None, str]:
        """Returns the owner of a block starting with `text` and the text without its marker."""
        m = MARKER_START.match(text)
        if not m:
            return inherited, text
        prefix, number = m.group(1), int(m.group(2))
        rid = f"{prefix}-{number}"
        where = f"spec/{name}:{lineno}"
        if prefix not in KNOWN_PREFIXES:
            report.error(where, f"unknown requirement prefix {prefix!r} in {rid}")
        req = Requirement(rid, prefix, number, name, lineno)
        if rid in by_id:
            report.error(where, f"{rid} defined twice in this chapter (first at line {by_id[rid].line})")
        else:
            by_id[rid] = req
            requirements.append(req)
        return rid, text[m.end():]

    def scan(text: str, lineno: int, current: str | None) -> None:
        where = f"spec/{name}:{lineno}"
        if MARKER_ANY.search(INLINE_CODE.sub(" ", text)):
            report.error(where, "requirement marker not at the start of a paragraph or list item")
        words = normative_view(text)
        found = KW_MUST.findall(words) + KW_SHOULD.findall(words)
        if current is None and found:
            report.error(where, f"normative keyword {found[0]} outside a marked requirement")
        if current is not None and current in by_id:
            by_id[current].text.append(text)

    lines = path.read_text(encoding="utf-8").splitlines()
    for lineno, raw in enumerate(lines, start=1):
        line = raw.expandtabs(4).rstrip()
        for ref in REFERENCE.findall(line if fence is None else ""):
            references.append((lineno, ref))

        if fence is not None:
            if line.strip().startswith(fence) and line.strip().strip(fence[0]) == "":
                fence = None
            continue
        if in_comment:
            if "-->" in line:
                in_comment = False
            continue
        stripped = line.strip()
        if stripped.startswith("<!--"):
            in_comment = "-->" not in stripped
            continue
        fm = FENCE.match(line)
        if fm:
            fence = fm.group(1)
            continue
        if not stripped:
            blank = True
            continue
        if stripped.startswith(">"):
            line = re.sub(r"^\s*(>\s?)+", "", line)
            stripped = line.strip()
        if stripped.startswith("|"):
            if MARKER_ANY.search(INLINE_CODE.sub(" ", stripped)):
                report.error(f"spec/{name}:{lineno}", "requirement marker inside a table")
            blank = False
            continue
        if HEADING.match(line):
            items.clear()
            owner = None
            if title == name and stripped.startswith("# "):
                title = stripped[2:].strip()
            scan(stripped.lstrip("#").strip(), lineno, None)
            blank = True  # a heading ends the block
            continue

        indent = len(line) - len(line.lstrip(" "))
        lm = LIST_ITEM.match(line)
        if lm:
            marker_indent = len(lm.group(1))
            content_indent = marker_indent + len(lm.group(2)) + max(len(lm.group(3)), 1)
            while items and marker_indent < items[-1].content_indent:
                items.pop()
            inherited = items[-1].owner if items else None
            owner, text = start_block(lm.group(4), lineno, inherited)
            items.append(Item(marker_indent, content_indent, owner))
            scan(text, lineno, owner)
        elif blank:
            while items and indent < items[-1].content_indent:
                items.pop()
            inherited = items[-1].owner if items else None
            owner, text = start_block(stripped, lineno, inherited)
            scan(text, lineno, owner)
        else:
            scan(stripped, lineno, owner)
        blank = False

    return Chapter(name, title, requirements, references)


def first_sentence(text: str) -> str:
    """The first sentence of `text`, not split inside inline code or after e.g./i.e."""
    in_code = False
    for i, ch in enumerate(text):
        if ch == "`":
            in_code = not in_code
        elif ch == "." and not in_code:
            nxt = text[i + 1 : i + 2]
            if nxt and not nxt.isspace():
                continue
            word = re.split(r"[\s(]", text[:i])[-1].lower()
            if word in NON_SENTENCE_END or re.fullmatch(r"[0-9]+", word):
                continue
            return text[: i + 1]
    return text


def summarize(req: Requirement) -> str:
    text = MARKER_START.sub("", req.body).strip()
    text = first_sentence(text)
    text = text.replace("**", "")
    text = re.sub(r"\s+", " ", text).strip()
    if len(text) > SUMMARY_MAX:
        cut = text[: SUMMARY_MAX - 3]
        if " " in cut:
            cut = cut[: cut.rfind(" ")]
        # Do not leave an inline code span open.
        if cut.count("`") % 2:
            cut = cut[: cut.rfind("`")].rstrip()
        text = cut.rstrip(" ,;:") + "..."
    return text.replace("|", "\\|")


def retired_ids(readme: Path, report: Report) -> dict[str, int]:
    """Ids listed under the README's "Retired requirement ids" heading."""
    if not readme.exists():
        return {}
    retired: dict[str, int] = {}
    inside = False
    for lineno, line in enumerate(readme.read_text(encoding="utf-8").splitlines(), start=1):
        if HEADING.match(line):
            inside = line.strip().lstrip("#").strip().lower() == "retired requirement ids"
            continue
        if inside and LIST_ITEM.match(line):
            m = re.match(r"^\s*[-*+]\s+`([A-Z]+-[0-9]+)`", line)
            if m:
                retired[m.group(1)] = lineno
            else:
                report.error(f"spec/{README_NAME}:{lineno}", "retired id entries look like: - `LINK-99`: reason")
    return retired


def committed_ids(index: Path) -> set[str]:
    if not index.exists():
        return set()
    return set(re.findall(r"^\| ([A-Z]+-[0-9]+) \|", index.read_text(encoding="utf-8"), re.M))


def sort_key(req: Requirement) -> tuple[int, str, int]:
    prefixes = list(KNOWN_PREFIXES)
    order = prefixes.index(req.prefix) if req.prefix in prefixes else len(prefixes)
    return (order, req.prefix, req.number)


def render(chapters: list[Chapter]) -> str:
    reqs = [r for c in chapters for r in c.requirements]
    out: list[str] = []
    out.append("# 8. Requirement index")
    out.append("")
    out.append("<!-- Generated by ci/spec-index.py from the other chapters. Do not edit by hand:")
    out.append("     run `python3 ci/spec-index.py --write` after changing a requirement. -->")
    out.append("")
    out.append("This chapter is informative and generated. It lists every requirement of the other")
    out.append("chapters with its level (the strongest RFC 2119 keyword it uses) and the first")
    out.append("sentence of its text. The chapter that defines a requirement is authoritative; the")
    out.append("summary here may be cut short.")
    out.append("")
    out.append("## Counts")
    out.append("")
    out.append("| prefix | chapter | MUST | SHOULD | MAY | total |")
    out.append("|---|---|---:|---:|---:|---:|")
    prefixes = sorted({r.prefix for r in reqs}, key=lambda p: sort_key(Requirement("", p, 0, "", 0)))
    totals = dict.fromkeys(LEVELS, 0)
    for prefix in prefixes:
        counts = dict.fromkeys(LEVELS, 0)
        for r in reqs:
            if r.prefix == prefix and r.level in counts:
                counts[r.level] += 1
        for level in LEVELS:
            totals[level] += counts[level]
        home = KNOWN_PREFIXES.get(prefix, "")
        chapter = f"[{home}]({home})" if home else ""
        out.append(
            f"| {prefix} | {chapter} | {counts['MUST']} | {counts['SHOULD']} | {counts['MAY']} "
            f"| {sum(counts.values())} |"
        )
    out.append(
        f"| all | | {totals['MUST']} | {totals['SHOULD']} | {totals['MAY']} | {sum(totals.values())} |"
    )
    for chapter in chapters:
        if not chapter.requirements:
            continue
        out.append("")
        out.append(f"## {chapter.title}")
        out.append("")
        out.append("| id | level | chapter | summary |")
        out.append("|---|---|---|---|")
        for r in sorted(chapter.requirements, key=sort_key):
            out.append(f"| {r.rid} | {r.level} | [{r.file}]({r.file}) | {summarize(r)} |")
    out.append("")
    return "\n".join(out)


def build(report: Report) -> tuple[str, set[str]]:
    """Parses every chapter, applies the rules, and returns the index text and the ids."""
    files = sorted(p for p in SPEC_DIR.glob("*.md") if p.name != INDEX_NAME)
    chapters = [parse_chapter(p, report) for p in files]

    defined: dict[str, Requirement] = {}
    for chapter in chapters:
        for req in chapter.requirements:
            if req.rid in defined and defined[req.rid].file != req.file:
                first = defined[req.rid]
                report.error(
                    f"spec/{req.file}:{req.line}",
                    f"{req.rid} already defined at spec/{first.file}:{first.line}",
                )
            defined.setdefault(req.rid, req)
            if req.level is None:
                report.error(f"spec/{req.file}:{req.line}", f"{req.rid} uses no RFC 2119 keyword")

    retired = retired_ids(SPEC_DIR / README_NAME, report)
    for rid, lineno in retired.items():
        if rid in defined:
            req = defined[rid]
            report.error(
                f"spec/{req.file}:{req.line}",
                f"{rid} is retired (spec/{README_NAME}:{lineno}) and may not be defined again",
            )

    present = {p.name for p in files}
    missing: dict[str, int] = {}
    for chapter in chapters:
        for lineno, ref in chapter.references:
            if ref in retired and chapter.name != README_NAME:
                report.error(f"spec/{chapter.name}:{lineno}", f"reference to retired id {ref}")
            elif ref not in defined and ref not in retired:
                prefix = ref.split("-")[0]
                if KNOWN_PREFIXES[prefix] in present:
                    report.error(f"spec/{chapter.name}:{lineno}", f"reference to undefined id {ref}")
                else:
                    missing[prefix] = missing.get(prefix, 0) + 1
    for prefix, count in sorted(missing.items()):
        report.notes.append(
            f"{count} reference(s) to {prefix}-* not checked: spec/{KNOWN_PREFIXES[prefix]} is absent"
        )

    for rid in sorted(committed_ids(SPEC_DIR / INDEX_NAME) - set(defined) - set(retired)):
        report.error(
            f"spec/{INDEX_NAME}",
            f"{rid} is in the committed index but no longer defined; ids are never removed "
            f"silently: restore it or list it under 'Retired requirement ids' in spec/{README_NAME}",
        )

    return render(chapters), set(defined)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--check", action="store_true", help="fail if a rule is broken or the index is stale")
    mode.add_argument("--write", action="store_true", help="rewrite spec/08-requirements.md")
    args = parser.parse_args(argv)

    report = Report()
    text, ids = build(report)
    index = SPEC_DIR / INDEX_NAME

    for note in report.notes:
        print(f"note: {note}", file=sys.stderr)
    for err in report.errors:
        print(f"error: {err}", file=sys.stderr)

    if args.write:
        if report.errors:
            print(f"spec-index: {len(report.errors)} error(s); index not written", file=sys.stderr)
            return 1
        index.write_text(text, encoding="utf-8")
        print(f"spec-index: wrote spec/{INDEX_NAME} ({len(ids)} requirements)")
        return 0

    current = index.read_text(encoding="utf-8") if index.exists() else ""
    stale = current != text
    if stale:
        diff = difflib.unified_diff(
            current.splitlines(), text.splitlines(), f"spec/{INDEX_NAME} (committed)",
            f"spec/{INDEX_NAME} (regenerated)", lineterm="", n=1,
        )
        print("\n".join(list(diff)[:60]), file=sys.stderr)
        print(f"error: spec/{INDEX_NAME} is stale: run python3 ci/spec-index.py --write", file=sys.stderr)
    if report.errors or stale:
        print(f"spec-index: {len(report.errors) + int(stale)} problem(s)", file=sys.stderr)
        return 1
    print(f"spec-index: ok ({len(ids)} requirements)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
