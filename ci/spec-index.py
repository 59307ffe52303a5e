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
     inline code is a mention, not a use, and so is every keyword of the key-word
     boilerplate paragraph (the one that cites RFC 2119 or BCP 14).
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
  --self-test  run the rules on small made-up chapters.

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
BOILERPLATE = re.compile(r"\b(?:RFC ?2119|BCP ?14)\b")
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

    def sorted_errors(self) -> list[str]:
        """Errors by file, then line (stable for errors on the same line)."""

        def key(err: str) -> tuple[str, int]:
            m = re.match(r"^([^:]+)(?::([0-9]+))?:", err)
            return (m.group(1), int(m.group(2) or 0)) if m else (err, 0)

        return sorted(self.errors, key=key)


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
    # A list that directly follows a requirement paragraph ending in ":" belongs to it.
    para_owner: str | None = None  # owner of the last plain paragraph, if it ended in ":"
    list_owner: str | None = None  # owner inherited by the top-level items of this list
    prev_kind = ""  # "para", "item" or "" (heading, start of file)

    # Unmarked keyword uses, per block, reported at the end unless the block is the
    # RFC 2119 / BCP 14 key-word boilerplate.
    blocks: list[str] = []
    unmarked: list[tuple[int, str, str]] = []

    def start_block(text: str, lineno: int, inherited: str | None) -> tuple[str | None, str]:
        """Returns the owner of a block starting with `text` and the text without its marker."""
        blocks.append("")
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
            report.error(
                where,
                "requirement marker not at the start of a paragraph or list item "
                "(a numbered step is written `1. **[ID]** Step name. ...`)",
            )
        words = normative_view(text)
        found = KW_MUST.findall(words) + KW_SHOULD.findall(words)
        if blocks:
            blocks[-1] += " " + text
        if current is None and found:
            unmarked.append((len(blocks) - 1, where, found[0]))
        if current is not None and current in by_id:
            by_id[current].text.append(text)

    lines = path.read_text(encoding="utf-8").splitlines()
    for lineno, raw in enumerate(lines, start=1):
        line = raw.expandtabs(4).rstrip()
        for ref in REFERENCE.findall(MARKER_ANY.sub(" ", line) if fence is None else ""):
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
            owner = para_owner = list_owner = None
            prev_kind = ""
            if title == name and stripped.startswith("# "):
                title = stripped[2:].strip()
            blocks.append("")
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
            if not items and prev_kind == "para":
                list_owner = para_owner
            inherited = items[-1].owner if items else list_owner
            owner, text = start_block(lm.group(4), lineno, inherited)
            items.append(Item(marker_indent, content_indent, owner))
            scan(text, lineno, owner)
            prev_kind = "item"
        elif blank:
            while items and indent < items[-1].content_indent:
                items.pop()
            inherited = items[-1].owner if items else None
            owner, text = start_block(stripped, lineno, inherited)
            scan(text, lineno, owner)
            if not items:
                prev_kind, list_owner = "para", None
        else:
            scan(stripped, lineno, owner)
        if prev_kind == "para":
            para_owner = owner if stripped.endswith(":") else None
        blank = False

    for block, where, keyword in unmarked:
        if not BOILERPLATE.search(blocks[block]):
            report.error(where, f"normative keyword {keyword} outside a marked requirement")
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


def build(report: Report, spec_dir: Path = SPEC_DIR) -> tuple[str, dict[str, Requirement]]:
    """Parses every chapter, applies the rules, and returns the index text and the
    requirements by id (the first definition of an id defined twice)."""
    files = sorted(p for p in spec_dir.glob("*.md") if p.name != INDEX_NAME)
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

    retired = retired_ids(spec_dir / README_NAME, report)
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

    for rid in sorted(committed_ids(spec_dir / INDEX_NAME) - set(defined) - set(retired)):
        report.error(
            f"spec/{INDEX_NAME}",
            f"{rid} is in the committed index but no longer defined; ids are never removed "
            f"silently: restore it or list it under 'Retired requirement ids' in spec/{README_NAME}",
        )

    return render(chapters), defined


def self_test() -> int:
    """Runs the rules on small made-up chapters; returns the number of failed cases."""
    import tempfile

    cases: list[tuple[str, dict[str, str], list[str], dict[str, str | None]]] = [
        # (name, files, expected error fragments (in order), expected id -> level)
        ("marked paragraph and list items", {
            "02-pairing-token.md": "# 2. T\n\n**[TOKEN-1]** Decoders MUST parse it.\n\n"
            "- **[TOKEN-2]** Hosts SHOULD do x.\n  Continued and MUST hold.\n"
            "- **[TOKEN-3]** Hosts MAY do y.\n",
        }, [], {"TOKEN-1": "MUST", "TOKEN-2": "MUST", "TOKEN-3": "MAY"}),
        ("nested items and indented paragraphs inherit the requirement", {
            "02-pairing-token.md": "- **[TOKEN-1]** The host checks:\n  - the id MUST be known;\n"
            "  - the secret MUST match.\n\n  A later paragraph of the item SHOULD stay.\n",
        }, [], {"TOKEN-1": "MUST"}),
        ("a list introduced by a requirement ending in a colon belongs to it", {
            "04-secure-channel.md": "**[CHAN-1]** The host MUST check, in order:\n\n"
            "1. the id MUST be known;\n2. the secret MUST match.\n\nAfter it, SHOULD is unmarked.\n\n"
            "Informative text:\n\n- an item that MUST be flagged.\n",
        }, ["04-secure-channel.md:6: normative keyword SHOULD",
            "04-secure-channel.md:10: normative keyword MUST"], {"CHAN-1": "MUST"}),
        ("numbered steps start requirements; a marker after the step name does not", {
            "04-secure-channel.md": "The host runs these steps in order.\n\n"
            "1. **[CHAN-1]** Rate limit. The host MUST refuse.\n"
            "2. **Session limit.** The host answers LIMIT.\n"
            "   1. **[CHAN-2]** The host MUST check x.\n"
            "   2. Go on.\n"
            "3. **Clock** (**[CHAN-3]**). The host MUST refuse.\n",
        }, ["04-secure-channel.md:7: requirement marker not at the start",
            "04-secure-channel.md:7: normative keyword MUST"],
           {"CHAN-1": "MUST", "CHAN-2": "MUST"}),
        ("the key-word boilerplate paragraph is exempt", {
            "00-introduction.md": "The key words MUST, SHOULD and MAY are to be\n"
            "interpreted as in RFC 2119.\n\nBut this MUST be flagged.\n",
        }, ["00-introduction.md:4: normative keyword MUST"], {}),
        ("unmarked keyword is reported with its line", {
            "07-security-considerations.md": "# 7\n\nIntro.\n\nThe host MUST do z.\n",
        }, ["07-security-considerations.md:5: normative keyword MUST"], {}),
        ("a new paragraph after a requirement is not part of it", {
            "07-security-considerations.md": "**[SEC-1]** Hosts MUST a.\n\nRelays SHOULD b.\n",
        }, ["07-security-considerations.md:3: normative keyword SHOULD"], {"SEC-1": "MUST"}),
        ("mentions, code, tables, comments and lower case are not requirements", {
            "00-introduction.md": 'The words "MUST" and \u201cSHOULD NOT\u201d, `MUST`.\n\n'
            "```\nMUST in code\n```\n\n| a | b |\n|---|---|\n| MUST | x |\n\n"
            "<!-- SHOULD\nMUST -->\nit must be so.\n",
        }, [], {}),
        ("duplicate ids across chapters", {
            "03-relay-link.md": "**[LINK-1]** Relays MUST a.\n",
            "07-security-considerations.md": "**[LINK-1]** Relays MUST b.\n",
        }, ["LINK-1 already defined"], {"LINK-1": "MUST"}),
        ("unknown prefix, marker mid-text, marker in a table, no keyword", {
            "07-security-considerations.md": "**[FOO-1]** Hosts MUST a.\n\n"
            "Text **[SEC-2]** MUST b.\n\n| **[SEC-3]** | x |\n|---|---|\n\n**[SEC-4]** Hosts do c.\n",
        }, ["unknown requirement prefix", "marker not at the start", "keyword MUST outside",
            "marker inside a table", "SEC-4 uses no RFC 2119 keyword"], {"SEC-4": None}),
        ("references to undefined ids, only where the owning chapter exists", {
            "03-relay-link.md": "**[LINK-1]** Relays MUST a (see LINK-2, CHAN-9).\n",
        }, ["reference to undefined id LINK-2"], {"LINK-1": "MUST"}),
        ("retired ids stay retired", {
            "README.md": "# S\n\n## Retired requirement ids\n\n- `SEC-2`: merged into SEC-1.\n",
            "07-security-considerations.md": "**[SEC-1]** A MUST b.\n\n**[SEC-2]** C MUST d.\n",
        }, ["SEC-2 is retired"], {"SEC-1": "MUST", "SEC-2": "MUST"}),
        ("an id in the committed index may not disappear", {
            "07-security-considerations.md": "**[SEC-1]** A MUST b.\n",
            INDEX_NAME: "| SEC-1 | MUST | x | y |\n| SEC-2 | MUST | x | y |\n",
        }, ["SEC-2 is in the committed index but no longer defined"], {"SEC-1": "MUST"}),
    ]
    failed = 0
    for name, files, expected, levels in cases:
        with tempfile.TemporaryDirectory() as tmp:
            spec_dir = Path(tmp)
            for fname, text in files.items():
                (spec_dir / fname).write_text(text, encoding="utf-8")
            report = Report()
            _, defined = build(report, spec_dir)
        got_levels = {rid: r.level for rid, r in defined.items() if r.prefix in KNOWN_PREFIXES}
        problems = []
        errors = report.sorted_errors()
        if len(errors) != len(expected) or not all(
            frag in err for frag, err in zip(expected, errors)
        ):
            problems.append(f"errors {errors!r}, expected {expected!r}")
        if got_levels != levels:
            problems.append(f"levels {got_levels!r}, expected {levels!r}")
        status = "ok" if not problems else "FAILED: " + "; ".join(problems)
        print(f"self-test: {name}: {status}")
        failed += bool(problems)

    summary_cases = [
        ("Hosts MUST do a, e.g. b. Then more.", "Hosts MUST do a, e.g. b."),
        ("The value `1.0` MUST stay. Next.", "The value `1.0` MUST stay."),
        ("No full stop MUST end", "No full stop MUST end"),
    ]
    for text, want in summary_cases:
        got = first_sentence(text)
        ok = got == want
        print(f"self-test: first sentence of {text!r}: {'ok' if ok else 'FAILED: ' + repr(got)}")
        failed += not ok
    long_req = Requirement("SEC-1", "SEC", 1, "x", 1, ["**[SEC-1]** " + "word " * 60 + "MUST | end."])
    summary = summarize(long_req)
    ok = len(summary) <= SUMMARY_MAX and summary.endswith("...")
    print(f"self-test: long summary is cut to {SUMMARY_MAX}: {'ok' if ok else 'FAILED: ' + summary}")
    failed += not ok
    return failed


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--check", action="store_true", help="fail if a rule is broken or the index is stale")
    mode.add_argument("--write", action="store_true", help="rewrite spec/08-requirements.md")
    mode.add_argument("--self-test", action="store_true", help="check the checker on made-up chapters")
    args = parser.parse_args(argv)

    if args.self_test:
        failed = self_test()
        print(f"spec-index: self-test {'ok' if not failed else f'{failed} case(s) failed'}")
        return 1 if failed else 0

    report = Report()
    text, defined = build(report)
    index = SPEC_DIR / INDEX_NAME

    for note in report.notes:
        print(f"note: {note}", file=sys.stderr)
    for err in report.sorted_errors():
        print(f"error: {err}", file=sys.stderr)

    if args.write:
        if report.errors:
            print(f"spec-index: {len(report.errors)} error(s); index not written", file=sys.stderr)
            return 1
        index.write_text(text, encoding="utf-8")
        print(f"spec-index: wrote spec/{INDEX_NAME} ({len(defined)} requirements)")
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
    print(f"spec-index: ok ({len(defined)} requirements)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
