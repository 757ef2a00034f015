"""Properties of the pure state machine, over snapshots hypothesis makes up."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from cloud.escalation import ladder
from cloud.escalation.policy import DEFAULT_BODY, parse

POLICY = parse(
    dict(DEFAULT_BODY, handbook={"version": "v", "article": "a", "adoption_ref": "x", "publication_ref": "y"})
)
NOW = 10_000 * ladder.DAY_MS
STEP_STATUS = st.sampled_from(["awaiting_approval", "due", "sent", "failed", "superseded"])


@st.composite
def snapshots(draw):
    level = draw(st.integers(0, 8))
    optional_ms = st.none() | st.integers(NOW - 5 * ladder.DAY_MS, NOW + 5 * ladder.DAY_MS)
    return ladder.Snapshot(
        state=ladder.STATES[level],
        level=level,
        days=draw(st.integers(0, 10)),
        consecutive=draw(st.integers(0, 10)),
        acked_until_ms=draw(optional_ms),
        ack_expired=draw(st.booleans()),
        contacted=draw(st.booleans()),
        welfare=draw(st.sampled_from(["", "open", "closed"])),
        deadline_ms=draw(optional_ms),
        union_wait_until_ms=draw(optional_ms),
        steps=draw(st.dictionaries(st.sampled_from(["L1", "L2", "L3", "L3:welfare", "L4"]), STEP_STATUS)),
        gates=draw(st.dictionaries(st.just("confirm_termination"), st.sampled_from(["open", "approved"]))),
        tasks=draw(st.dictionaries(st.just("union_reply"), st.sampled_from(["open", "done"]))),
        services=draw(
            st.dictionaries(
                st.just("cuigao"),
                st.fixed_dictionaries(
                    {"status": st.sampled_from(["sent", "served", "failed"]), "sent_ms": optional_ms},
                    optional={"served_ms": st.integers(NOW - 9 * ladder.DAY_MS, NOW)},
                ),
            )
        ),
    )


CAL = ladder.Calendar(
    union_deadline=lambda at: at + 3 * ladder.DAY_MS,
    return_deadline=lambda at: at + 3 * ladder.DAY_MS,
    workday_start=lambda at: at,
)


def _new_level(actions):
    return next((a.fields["level"] for a in actions if isinstance(a, ladder.Set) and "level" in a.fields), None)


@settings(max_examples=400, deadline=None)
@given(snapshots())
def test_no_termination_draft_without_cuigao_sent_and_deadline_passed(s):
    actions = ladder.decide(s, POLICY, NOW, CAL)
    if _new_level(actions) == 5:
        assert s.steps.get("L3") == "sent" and s.deadline_ms is not None and s.deadline_ms <= NOW
        assert ladder.served_at(s, "cuigao") is not None  # served in fact: nothing is assumed
        assert s.welfare != "open" and ladder.basis_met(s, POLICY)
        assert any(isinstance(a, ladder.OpenGate) and a.kind == "confirm_termination" for a in actions)


@settings(max_examples=400, deadline=None)
@given(snapshots())
def test_levels_move_one_rung_at_most_and_never_past_a_human_gate(s):
    actions = ladder.decide(s, POLICY, NOW, CAL)
    new = _new_level(actions)
    if new is not None and new > s.level:
        assert new == s.level + 1 or (s.level == 5 and new == 6)
        if new == 6:
            assert s.gates.get("confirm_termination") == "approved"
        acked = s.acked_until_ms is not None and s.acked_until_ms > NOW
        if new <= 3:
            assert not acked  # an acknowledgement holds the climb


@settings(max_examples=200, deadline=None)
@given(snapshots())
def test_a_resolved_case_does_nothing(s):
    resolved = ladder.Snapshot(**{**s.__dict__, "state": ladder.RESOLVED})
    assert ladder.decide(resolved, POLICY, NOW, CAL) == []


@st.composite
def runs(draw):
    """A case's first days as a runner may see them: counted days arriving in bursts (a late start, an import),
    ticks at irregular times, each step going out some hours after it is planned (quiet hours, a slow provider)."""
    events = draw(
        st.lists(
            st.tuples(st.integers(0, 40), st.integers(0, 3)),  # hours until the next tick, counted days it brings
            min_size=1,
            max_size=30,
        )
    )
    delays = draw(st.lists(st.integers(0, 30), min_size=4, max_size=4))  # hours each step takes to go out
    return draw(st.integers(1, 4)), events, delays


def _simulate(first_days: int, events, delays):  # type: ignore[no-untyped-def]
    """Apply ``decide`` as the machine does (until nothing more is due); steps go out ``delays`` hours after they
    are planned, the case climbing again when one does. Returns when each rung was climbed and sent."""
    now, days, level = NOW, first_days, 0
    steps: dict[str, str] = {}
    climbed: dict[int, int] = {}
    planned: dict[str, int] = {}
    sent: dict[str, int] = {}
    order = {st_.key: n for n, st_ in enumerate(POLICY.ladder)}

    def advance(at: int) -> None:
        nonlocal level
        for _ in range(20):
            s = ladder.Snapshot(
                state=ladder.STATES[level],
                level=level,
                days=days,
                consecutive=days,
                steps=steps,
                climbed=climbed,
                welfare="closed",
            )
            actions = ladder.decide(s, POLICY, at, CAL)
            if not actions:
                return
            for a in actions:
                if isinstance(a, ladder.Set) and "level" in a.fields:
                    level = a.fields["level"]
                elif isinstance(a, ladder.Note) and a.kind in ("L1", "L2", "L3"):
                    climbed[int(a.kind[1])] = at
                elif isinstance(a, ladder.Plan) and a.key not in steps:
                    steps[a.key], planned[a.key] = "due", at
            if level >= 3:
                return

    for hours, more in events:
        end = now + hours * 3_600_000
        while True:  # steps going out before the next tick, in time order, each advancing the case
            due = sorted((planned[k] + delays[min(order[k], 3)] * 3_600_000, k) for k, v in steps.items() if v == "due")
            if not due or due[0][0] > end:
                break
            at, key = due[0]
            steps[key], sent[key] = "sent", at
            advance(at)
        now, days = end, days + more
        advance(now)
    return climbed, planned, sent


@settings(max_examples=300, deadline=None)
@given(runs())
def test_rungs_go_out_in_order_and_never_within_the_spacing_of_the_one_below(run):
    climbed, planned, sent = _simulate(*run)
    levels = [POLICY.step(k).level for k in sorted(sent, key=lambda k: (sent[k], POLICY.step(k).level))]
    assert levels == sorted(levels)  # the sent order of levels is increasing
    for lower, upper in (("L1", "L2"), ("L2", "L3")):
        if upper in planned:
            assert lower in sent and planned[upper] >= sent[lower]  # not before the rung below went out
            rung = POLICY.step(lower).level
            gap = POLICY.step(upper).after_days - POLICY.step(lower).after_days
            assert planned[upper] >= CAL.day_start(climbed[rung], gap)  # nor within the policy's spacing of it
            assert planned[upper] // ladder.DAY_MS > planned[lower] // ladder.DAY_MS  # another (UTC) date
