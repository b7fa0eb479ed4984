"""Lead quality and the lifecycle funnel: pure functions over the latest scores and the
stage transitions scoring published. Times are microseconds since the epoch."""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

# leadflow.common.v1.Grade, A+ first; Temperature, hot first; LifecycleStage.
GRADES = (1, 2, 3, 4, 5, 6, 7)
TEMPERATURES = (3, 2, 1)
NEW, CONTACTED, QUALIFIED, ENGAGED, OPPORTUNITY, CUSTOMER, CHURNED, LOST = range(1, 9)
MAIN_STAGES = (NEW, CONTACTED, QUALIFIED, ENGAGED, OPPORTUNITY, CUSTOMER)
STAGES = (*MAIN_STAGES, CHURNED, LOST)


@dataclass(frozen=True)
class LeadScoreRow:
    brand_id: str
    total: float | None  # None: never scored
    grade: int = 0
    temperature: int = 0


@dataclass
class Quality:
    brand_id: str
    lead_count: int
    scored_count: int
    grades: list[tuple[int, int, float]]  # (grade, count, share)
    temperatures: list[tuple[int, int, float]]
    average_score: float
    median_score: float
    histogram: list[int]  # ten buckets of width 10; 100 in the last


def quality(brand_id: str, leads: Sequence[LeadScoreRow]) -> Quality:
    scored = [r for r in leads if r.total is not None]
    totals = [float(r.total) for r in scored if r.total is not None]
    grades = Counter(r.grade for r in scored)
    temps = Counter(r.temperature for r in scored)
    n = len(scored)
    histogram = [0] * 10
    for t in totals:
        histogram[min(max(int(t // 10), 0), 9)] += 1
    return Quality(
        brand_id=brand_id,
        lead_count=len(leads),
        scored_count=n,
        grades=[(g, grades[g], grades[g] / n if n else 0.0) for g in GRADES],
        temperatures=[(t, temps[t], temps[t] / n if n else 0.0) for t in TEMPERATURES],
        average_score=statistics.fmean(totals) if totals else 0.0,
        median_score=statistics.median(totals) if totals else 0.0,
        histogram=histogram,
    )


def by_brand(leads: Sequence[LeadScoreRow]) -> list[Quality]:
    """One breakdown per home brand, most leads first (then by brand id)."""
    groups: dict[str, list[LeadScoreRow]] = defaultdict(list)
    for r in leads:
        groups[r.brand_id].append(r)
    ordered = sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0]))
    return [quality(brand, rows) for brand, rows in ordered]


@dataclass(frozen=True)
class Transition:
    lead_id: str
    from_stage: int  # 0 for the initial entry into new
    to_stage: int
    time_us: int
    time_in_previous_us: int
    event_id: str = ""


@dataclass
class StageStat:
    stage: int
    current: int = 0
    entered: int = 0
    reached: int = 0
    from_previous: float = 0.0
    from_first: float = 0.0
    median_in_stage_us: float | None = None
    exited: int = 0


@dataclass
class LifecycleAnswer:
    stages: list[StageStat]
    transitions: list[tuple[int, int, int]]  # (from, to, count), most first
    cohort_size: int


def current_stage(rows: Sequence[Transition]) -> int:
    """The stage the lead is in: its transitions followed as a chain (each leaves the stage
    the previous one entered), not by time alone, since a rule's transition is dated by its
    triggering event, which may be older than the lead's entry into new."""
    left = sorted(rows, key=lambda c: (c.time_us, c.event_id))
    stage = 0
    while left:
        step = next((c for c in left if c.from_stage == stage), None)
        if step is None and stage in MAIN_STAGES:
            # The chain breaks where scoring replayed a lifecycle after a late event: a
            # change made again keeps its id and is not announced again, so the one stored
            # here may name the stage it left before the replay. Rules only move a lead
            # forward: go on with the earliest change to a later main stage.
            step = next((c for c in left if c.to_stage in MAIN_STAGES and c.to_stage > stage), None)
        if step is None:
            return left[-1].to_stage if stage == 0 else stage
        left.remove(step)
        stage = step.to_stage
    return stage


def lifecycle(changes: Iterable[Transition], start_us: int, end_us: int) -> LifecycleAnswer:
    """The cohort is the leads whose initial entry into new lies in [start, end); reached
    counts follow them up to now (a later main stage counts as passing the earlier ones);
    entered, exited, median time in stage and transitions are of changes within the range;
    current counts are every lead's latest stage."""
    per_lead: dict[str, list[Transition]] = defaultdict(list)
    for c in changes:
        per_lead[c.lead_id].append(c)
    current: Counter[int] = Counter()
    cohort: set[str] = set()
    highest: dict[str, int] = {}
    side: dict[int, set[str]] = {CHURNED: set(), LOST: set()}
    entered: Counter[int] = Counter()
    exits: dict[int, list[int]] = defaultdict(list)
    pairs: Counter[tuple[int, int]] = Counter()
    for lead, rows in per_lead.items():
        rows.sort(key=lambda c: (c.time_us, c.event_id))
        current[current_stage(rows)] += 1
        if any(c.from_stage == 0 and start_us <= c.time_us < end_us for c in rows):
            cohort.add(lead)
        for c in rows:
            if c.to_stage in MAIN_STAGES:
                rank = MAIN_STAGES.index(c.to_stage)
                highest[lead] = max(highest.get(lead, -1), rank)
            elif c.to_stage in side:
                side[c.to_stage].add(lead)
            if start_us <= c.time_us < end_us:
                entered[c.to_stage] += 1
                if c.from_stage:
                    exits[c.from_stage].append(c.time_in_previous_us)
                    pairs[(c.from_stage, c.to_stage)] += 1
    size = len(cohort)
    stats: list[StageStat] = []
    previous = size
    for stage in STAGES:
        if stage in MAIN_STAGES:
            rank = MAIN_STAGES.index(stage)
            reached = sum(1 for lead in cohort if highest.get(lead, 0) >= rank)
            from_previous = 1.0 if stage == NEW else (reached / previous if previous else 0.0)
            previous = reached
        else:
            reached = len(side[stage] & cohort)
            from_previous = reached / size if size else 0.0
        gaps = exits.get(stage, [])
        stats.append(
            StageStat(
                stage=stage,
                current=current[stage],
                entered=entered[stage],
                reached=reached,
                from_previous=from_previous,
                from_first=reached / size if size else 0.0,
                median_in_stage_us=statistics.median(gaps) if gaps else None,
                exited=len(gaps),
            )
        )
    transitions = sorted(
        ((a, b, n) for (a, b), n in pairs.items()), key=lambda t: (-t[2], t[0], t[1])
    )
    return LifecycleAnswer(stats, transitions, size)
