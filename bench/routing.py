"""Routing decisions per second: BENCH_ROUTING_LEADS (50,000) leads against a configuration of
BENCH_ROUTING_RULES (200) rules over five brands, and the p99 latency of one decision.

A decision is what the service computes inside its transaction: the rules in order (those
the rule index leaves, with the CEL context built when one needs it; consent gate, duplicate
check) up to the first STOP, owner selection with the brands' turn and load state carried
from decision to decision, the trace, and the audit record the service stores with each
decision (api/audit.py: the snapshot, the notable rules and the owner choice), serialized. A
third figure makes the whole trace with every explanation instead (what ExplainRoute
answers). The rules mix score, grade, temperature, segment, stage, trait, event-count and
trigger conditions; most leads are routed by a rule late in the list, so a decision
typically evaluates well over 100 rules.
`routing_decision_cpu` is the CPU time of one decision (process_time, the same span as the
latency), far less sensitive to the load of a shared machine than the wall-clock figures.

Baseline (same run, same rules, BENCH_ROUTING_BASELINE_LEADS leads): the straightforward way,
each condition compiled as written and evaluated on a context holding the whole lead
(every trait, count and score field converted), built once per decision.
"""

from __future__ import annotations

import os
import random
import statistics
import sys
import time
from datetime import UTC, datetime

import cel
from _common import Progress, bench_line

from leadflow_routing.api.audit import compact_record
from leadflow_routing.api.mapping import decision_to_proto
from leadflow_routing.domain.config import (
    Brand,
    Continuation,
    Owner,
    RoutingConfig,
    Rule,
    Strategy,
    with_defaults,
)
from leadflow_routing.domain.decision import Trigger, compile_config, decide
from leadflow_routing.domain.snapshot import (
    EVENT_TYPES,
    FULL_CONTEXT,
    Grade,
    LeadConsents,
    LeadScore,
    LeadSnapshot,
    LifecycleStage,
    Segment,
    Temperature,
    cel_context,
)
from leadflow_routing.domain.strategies import BrandState

LEADS = int(os.environ.get("BENCH_ROUTING_LEADS", "50000"))
RULES = int(os.environ.get("BENCH_ROUTING_RULES", "200"))
BASELINE_LEADS = int(os.environ.get("BENCH_ROUTING_BASELINE_LEADS", "5000"))
BRANDS = ("modumind", "stacksense", "epicquest", "ikid", "vision2results")
STRATEGIES = (Strategy.ROUND_ROBIN, Strategy.WEIGHTED, Strategy.LEAST_LOADED)
INDUSTRIES = ("saas", "education", "retail", "finance", "health", "media", "games")
NOW = datetime(2025, 6, 2, 15, 0, tzinfo=UTC)


def condition(i: int, rng: random.Random) -> str:
    brand = BRANDS[i % len(BRANDS)]
    kind = i % 8
    if kind == 0:
        return f'lead.home_brand_id == "{brand}" && lead.score.total >= {90 + rng.randint(0, 9)}'
    if kind == 1:
        return f'lead.grade == "a_plus" && lead.segment == "{rng.choice(["smb", "startup"])}"'
    if kind == 2:
        industry = rng.choice(INDUSTRIES)
        return (
            f'has(lead.traits.industry) && lead.traits.industry == "{industry}"'
            " && lead.score.intent > 95"
        )
    if kind == 3:
        return f'lead.recent_event_counts["meeting_scheduled"] > {3 + rng.randint(0, 3)}'
    if kind == 4:
        return (
            'lead.temperature == "hot" && lead.stage == "customer"'
            f' && lead.home_brand_id == "{brand}"'
        )
    if kind == 5:
        return (
            f'trigger == "stage_changed" && trigger_detail == "{rng.choice(["churned", "lost"])}"'
        )
    if kind == 6:
        replies = rng.randint(3, 6)
        return (
            f"lead.score.engagement > 97.5 && lead.recent_event_counts.email_replied >= {replies}"
        )
    return (
        "lead.consents.portfolio_sharing && lead.score.firmographic > 98"
        f' && lead.home_brand_id != "{brand}"'
    )


def build_config(rng: random.Random) -> RoutingConfig:
    brands = tuple(
        Brand(
            id=b,
            owners=tuple(
                Owner(id=f"{b}-{k}", weight=1 + k % 3, daily_capacity=0 if k % 4 else 5000)
                for k in range(10)
            ),
            fallback_owner_id=f"{b}-0",
        )
        for b in BRANDS
    )
    rules = [
        Rule(
            id=f"rule-{i:03d}",
            condition=condition(i, rng),
            target_brand_id=BRANDS[i % len(BRANDS)],
            strategy=STRATEGIES[i % len(STRATEGIES)],
            nurture_by_segment=i % 3 == 0,
            continuation=Continuation.ALSO_ROUTE if i % 10 == 0 else Continuation.STOP,
        )
        for i in range(RULES - len(BRANDS))
    ]
    # the home-brand catch-alls most leads end at
    rules += [
        Rule(
            id=f"home-{b}",
            condition=f'lead.home_brand_id == "{b}"',
            target_brand_id=b,
            strategy=STRATEGIES[j % len(STRATEGIES)],
            nurture_by_segment=True,
        )
        for j, b in enumerate(BRANDS)
    ]
    return with_defaults(RoutingConfig(brands=brands, rules=tuple(rules), version=1))


def lead(i: int, rng: random.Random) -> LeadSnapshot:
    total = rng.uniform(0, 100)
    counts = {name: 0 for name in EVENT_TYPES}
    for name in ("page_view", "email_opened", "email_replied", "meeting_scheduled"):
        counts[name] = rng.randint(0, 6)
    return LeadSnapshot(
        lead_id=f"lead-{i}",
        home_brand_id=rng.choice(BRANDS),
        traits={
            "email": f"lead{i}@example.com",
            "first_name": "Lead",
            "company": f"Company {i % 997}",
            "industry": rng.choice(INDUSTRIES),
            "country": rng.choice(("US", "DE", "FR", "BR")),
            "interests": rng.sample(["ai", "strategy", "games", "kids", "data"], 2),
        },
        segment=rng.choice(list(Segment)),
        score=LeadScore(
            total=total,
            demographic=rng.uniform(0, 100),
            behavioural=rng.uniform(0, 100),
            firmographic=rng.uniform(0, 100),
            engagement=rng.uniform(0, 100),
            intent=rng.uniform(0, 100),
            model_version=1,
        ),
        grade=rng.choice(list(Grade)[1:]),
        temperature=rng.choice(list(Temperature)[1:]),
        stage=rng.choice(list(LifecycleStage)[1:]),
        consents=LeadConsents(tracking=True, portfolio_sharing=rng.random() < 0.5),
        recent_event_counts=counts,
        first_seen_at=NOW,
        last_activity_at=NOW,
    )


def run_decisions(
    config: RoutingConfig, leads: list[LeadSnapshot]
) -> tuple[float, list[float], int, float, float]:
    """(decisions/s, latencies, rules evaluated, decisions/s with the whole trace made, CPU
    µs per decision)."""
    compiled = compile_config(config)
    states: dict[str, BrandState] = {}
    latencies: list[float] = []
    evaluated = 0
    traced = 0.0
    progress = Progress("decisions", len(leads), "decisions")
    cpu = 0.0  # CPU seconds of the decisions alone: far less sensitive to the machine's load
    for n, snapshot in enumerate(leads):
        trigger = Trigger.IDENTIFIED if n % 2 else Trigger.THRESHOLD_CROSSED
        c0 = time.process_time()
        t0 = time.perf_counter()
        decision, states = decide(
            compiled, snapshot, trigger, NOW, trigger_detail="temperature:hot", states=states
        )
        compact_record(decision).SerializeToString()  # the stored audit record
        t1 = time.perf_counter()
        cpu += time.process_time() - c0
        latencies.append(t1 - t0)
        if n % 10 == 0:  # the whole trace (ExplainRoute's answer), on a sample
            decision_to_proto(decision).SerializeToString()
            traced += time.perf_counter() - t1
        evaluated += len(decision.evaluations)
        progress.update(n + 1)
    progress.update(len(leads), force=True)
    spent = sum(latencies)
    per_trace = traced / len(range(0, len(leads), 10))
    traced_rate = len(leads) / (spent + per_trace * len(leads))
    return len(leads) / spent, latencies, evaluated, traced_rate, cpu / len(leads) * 1e6


def run_baseline(config: RoutingConfig, leads: list[LeadSnapshot]) -> tuple[float, float]:
    """(decisions/s, CPU µs per decision)."""
    programs = [cel.compile(r.condition) for r in config.rules]
    cpu_started = time.process_time()
    started = time.perf_counter()
    for n, snapshot in enumerate(leads):
        trigger = "identified" if n % 2 else "threshold_crossed"
        ctx = cel_context(snapshot, trigger, "temperature:hot", FULL_CONTEXT)
        for rule, program in zip(config.rules, programs, strict=True):
            try:
                matched = program.execute(ctx) is True
            except Exception:
                matched = False
            if matched and rule.continuation is not Continuation.ALSO_ROUTE:
                break
    rate = len(leads) / (time.perf_counter() - started)
    return rate, (time.process_time() - cpu_started) / len(leads) * 1e6


def main() -> int:
    rng = random.Random(371)
    config = build_config(rng)
    leads = [lead(i, rng) for i in range(LEADS)]
    print(
        f"{LEADS:,} leads, {len(config.rules)} rules, {len(config.brands)} brands", file=sys.stderr
    )
    baseline, baseline_cpu = run_baseline(config, leads[:BASELINE_LEADS])
    print(
        f"baseline (whole lead per context, conditions as written, rules only):"
        f" {baseline:,.0f} decisions/s, {baseline_cpu:.1f} CPU µs/decision",
        file=sys.stderr,
    )
    rate, latencies, evaluated, traced, cpu = run_decisions(config, leads)
    latencies.sort()
    p99 = latencies[int(len(latencies) * 0.99) - 1] * 1000
    p50 = statistics.median(latencies) * 1000
    print(
        f"{rate:,.0f} decisions/s; {evaluated / LEADS:.0f} rules evaluated per decision;"
        f" p50 {p50:.3f} ms, p99 {p99:.3f} ms (audit record included); with the whole trace"
        f" made as ExplainRoute does: {traced:,.0f} decisions/s; {cpu:.1f} CPU µs/decision;"
        f" load average {os.getloadavg()[0]:.2f}",
        file=sys.stderr,
    )
    baseline_p99 = 1000 / baseline  # mean time of one baseline decision, rules only
    bench_line("routing_decisions", rate, "decisions/s", baseline, rate / baseline)
    bench_line("routing_decision_p99", p99, "ms", baseline_p99, p99 / baseline_p99)
    bench_line("routing_decisions_traced", traced, "decisions/s", baseline, traced / baseline)
    bench_line("routing_decision_cpu", cpu, "us", baseline_cpu, cpu / baseline_cpu)
    return 0


if __name__ == "__main__":
    sys.exit(main())
