"""docs/ and deploy/README.md say what the code does: the event catalogue lists exactly the
subjects the protos declare, with the producers and durable consumers the services wire;
every benchmark is in the results table; links resolve; settings named exist."""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

from leadflow_platform.nats.registry import all_subjects
from leadflow_platform.nats.streams import producer_of, stream_for
from leadflow_platform.service import discover_services

ROOT = Path(__file__).resolve().parents[3]
DOCS = ROOT / "docs"
EVENTS = DOCS / "events.md"
PAGES = [*sorted(DOCS.glob("*.md")), ROOT / "deploy" / "README.md"]
ENV_NAME = re.compile(r"\bLEADFLOW_[A-Z0-9_]*[A-Z0-9]\b")


def section(text: str, heading: str) -> str:
    """The text under a `## heading`, up to the next heading of that level."""
    start = text.index(f"\n## {heading}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else None]


def table_rows(text: str) -> list[list[str]]:
    """Body rows of the first markdown table in the text, cells stripped."""
    rows = [line for line in text.splitlines() if line.startswith("|")]
    return [[c.strip() for c in row.strip("|").split("|")] for row in rows[2:]]


def ticked(cell: str) -> list[str]:
    return re.findall(r"`([^`]+)`", cell)


def test_catalogue_lists_exactly_the_subjects_the_protos_declare():
    rows = table_rows(section(EVENTS.read_text(), "Subjects"))
    subjects = [ticked(r[0])[0] for r in rows]
    # The contracts' subjects (tests register the probe's own beside them).
    declared = {s: m for s, m in all_subjects().items() if m.__module__.startswith("leadflow.")}
    assert sorted(subjects) == sorted(declared)
    assert len(subjects) == len(set(subjects))
    for subject, payload, producer, _ in rows:
        name = ticked(subject)[0]
        assert ticked(payload) == [declared[name].DESCRIPTOR.full_name], name
        assert producer == f"{producer_of(name)} (`{stream_for(producer_of(name)).name}`)", name


def test_catalogue_names_the_durable_consumers_of_each_subject(registered):
    expected: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for service in registered.values():
        for consumer in service.consumers:
            for subject in consumer.filter_subjects:
                expected[subject].add((service.service, consumer.durable))
    for row in table_rows(section(EVENTS.read_text(), "Subjects")):
        subject = ticked(row[0])[0]
        listed = set(re.findall(r"(\w+) \(`([\w-]+)`\)", row[3]))
        assert listed == expected.get(subject, set()), subject


def test_durable_table_matches_what_the_services_register(registered):
    expected = {
        c.durable: (s.service, c.stream, frozenset(c.filter_subjects))
        for s in registered.values()
        for c in s.consumers
    }
    rows = table_rows(section(EVENTS.read_text(), "Durable consumers"))
    listed = {ticked(r[0])[0]: (r[1], ticked(r[2])[0], frozenset(ticked(r[3]))) for r in rows}
    assert listed == expected


def test_stream_table_matches_the_producers():
    rows = table_rows(section(EVENTS.read_text(), "Streams"))
    listed = {ticked(r[0])[0]: (tuple(ticked(r[1])), r[2]) for r in rows}
    expected = {
        spec.stream.name: (spec.stream.subjects, name)
        for name, spec in discover_services().items()
        if spec.stream is not None
    }
    assert listed == expected


def test_benchmark_table_has_every_make_target():
    targets = {p.stem for p in (ROOT / "bench").glob("*.py") if not p.stem.startswith("_")}
    assert targets
    text = (DOCS / "benchmarks.md").read_text()
    listed = set(re.findall(r"^\| `make bench-(\w+)` \|", text, re.M))
    assert listed == targets


def test_links_between_pages_resolve():
    for page in PAGES:
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", page.read_text()):
            assert (page.parent / target).exists(), f"{page.relative_to(ROOT)} -> {target}"


def test_anchors_between_pages_resolve():
    def anchors(page: Path) -> set[str]:
        headings = re.findall(r"^#+ (.+)$", page.read_text(), re.M)
        return {re.sub(r"[^\w\- ]", "", h).strip().lower().replace(" ", "-") for h in headings}

    for page in PAGES:
        for target, anchor in re.findall(r"\]\(([^)#:]*)#([^)]+)\)", page.read_text()):
            linked = (page.parent / target) if target else page
            assert anchor in anchors(linked), f"{page.relative_to(ROOT)} -> {target}#{anchor}"


def test_settings_named_in_the_docs_exist(declared):
    # Besides settings, the docs name the benchmarks' server variables (bench/_common.py).
    readers = "\n".join(p.read_text() for p in (ROOT / "bench").glob("*.py"))
    known = set(declared) | set(ENV_NAME.findall(readers))
    for page in PAGES:
        unknown = set(ENV_NAME.findall(page.read_text())) - known
        assert not unknown, f"{page.relative_to(ROOT)}: {sorted(unknown)}"
