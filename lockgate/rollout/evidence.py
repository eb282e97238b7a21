"""How long a spec needs, at a given traffic, before each stage has its evidence.

A stage of the default policy advances once every guardrail's always-valid interval is inside its
margin. For a candidate as good as the baseline, the interval's upper end is the estimate plus a
radius that shrinks as requests accumulate (the evidence of all stages adds up), so the time at
which it crosses the margin can be planned before any traffic: :func:`evidence_plan` steps the
spec's stages second by second at ``requests_per_s`` and reports, per stage, when the evidence is
there with probability ``power`` (the estimate ``z_power`` standard errors on the wrong side), and
whether that is before the stage's ``max_duration_s``. Pure: no clock, no I/O.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scipy.stats import norm

from lockgate.errors import ValidationError
from lockgate.rollout.controller import Stage, candidate_share, is_comparable, plan
from lockgate.rollout.policy import SequentialRolloutPolicy, ThresholdPolicy, policy_for
from lockgate.rollout.router import BUCKETS
from lockgate.rollout.spec import DeploymentSpec
from lockgate.stats.sequential import one_sided_radius

__all__ = ["StageEvidence", "evidence_plan", "stage_warnings"]


@dataclass(frozen=True)
class StageEvidence:
    """One stage: its share, how long it lasts at least and at most, and when evidence comes.

    ``evidence_s`` is the time since the stage began at which every guardrail is shown within its
    margin (None: not within ``horizon_s``); ``ends_s`` when the stage ends (advances), or None
    when it would end as ``on_inconclusive`` says.
    """

    index: int
    candidate_share: float
    min_duration_s: float
    max_duration_s: float | None
    evidence_s: float | None
    ends_s: float | None


def _radius_ok(variance: float, tau2: float, alpha: float, margin: float, z_power: float) -> bool:
    return one_sided_radius(variance, tau2, alpha) + z_power * math.sqrt(variance) < margin


def evidence_plan(
    spec: DeploymentSpec,
    requests_per_s: float,
    *,
    baseline_error_rate: float = 0.01,
    latency_log_sd: float = 0.5,
    design_effect: float = 1.0,
    power: float = 0.8,
    horizon_s: float = 7 * 24 * 3600.0,
) -> tuple[StageEvidence, ...]:
    """Each stage's evidence time for a candidate as good as the baseline (see the module)."""
    if requests_per_s <= 0 or not 0 < baseline_error_rate < 1 or latency_log_sd <= 0 or design_effect < 1:
        raise ValidationError(
            "requests_per_s, latency_log_sd must be above 0, baseline_error_rate in (0, 1), "
            "design_effect at least 1",
            hint="e.g. 1000/s, error rate 0.01, log-latency sd 0.5, design effect 1.5 for sticky users",
        )
    if not 0.5 <= power < 1:
        raise ValidationError(f"power {power} is outside [0.5, 1)", hint="e.g. 0.8")
    policy = policy_for(spec)
    if not isinstance(policy, SequentialRolloutPolicy):
        raise ValidationError(
            "only the sequential policy advances on evidence",
            hint="a threshold policy advances on time: its stages last their min_duration_s",
        )
    z_power = float(norm.ppf(power))
    alpha = policy.alpha_each
    rate, p = requests_per_s, baseline_error_rate
    out: list[StageEvidence] = []
    n_b = n_c = 0.0
    for index, stage in enumerate(plan(spec)):
        share = candidate_share(stage)
        limit = stage.max_duration_s if stage.max_duration_s is not None else horizon_s
        evidence = None
        elapsed = 0
        per_b, per_c = _per_second(stage, rate)
        while elapsed < limit and elapsed < horizon_s:
            elapsed += 1
            n_b, n_c = n_b + per_b, n_c + per_c
            if not is_comparable(stage):
                continue
            if _has_evidence(policy, n_b, n_c, p, latency_log_sd, design_effect, alpha, z_power):
                evidence = float(elapsed)
                break
        if not is_comparable(stage):
            ends = stage.min_duration_s
            evidence = 0.0
        elif evidence is None:
            ends = None
        else:
            ends = max(evidence, stage.min_duration_s)
            # the stage keeps collecting until its minimum duration
            extra = max(stage.min_duration_s - evidence, 0.0)
            n_b, n_c = n_b + per_b * extra, n_c + per_c * extra
        out.append(
            StageEvidence(index + 1, share, stage.min_duration_s, stage.max_duration_s, evidence, ends)
        )
        if ends is None:
            break
    return tuple(out)


def _per_second(stage: Stage, rate: float) -> tuple[float, float]:
    """Requests a second to the baseline and the candidate: routed by weight, or all to the
    baseline with a mirrored fraction copied to the candidate."""
    if stage.candidate_bp == 0 and stage.shadow_fraction > 0:
        return rate, rate * stage.shadow_fraction
    weight = stage.candidate_bp / BUCKETS
    return rate * (1 - weight), rate * weight


def _has_evidence(
    policy: SequentialRolloutPolicy,
    n_b: float,
    n_c: float,
    p: float,
    log_sd: float,
    design_effect: float,
    alpha: float,
    z_power: float,
) -> bool:
    if n_b < policy.min_samples or n_c < policy.min_samples:
        return False
    if policy.error_margin is not None:
        margin = policy.error_margin
        factor = 1.0 + margin.value if margin.kind == "relative" else 1.0
        variance = design_effect * p * (1 - p) * (1 / n_c + factor * factor / n_b)
        allowed = margin.value * p if margin.kind == "relative" else margin.value
        if not _radius_ok(variance, policy.error_scale**2, alpha, allowed, z_power):
            return False
    if policy.latency_margin is not None:
        margin = policy.latency_margin
        # an absolute margin is read at a 10 ms typical latency for planning
        log_margin = math.log1p(margin.value if margin.kind == "relative" else margin.value / 10.0)
        variance = design_effect * log_sd * log_sd * (1 / n_c + 1 / n_b)
        if not _radius_ok(variance, policy.latency_scale**2, alpha, log_margin, z_power):
            return False
    return True


def stage_warnings(spec: DeploymentSpec) -> list[str]:
    """What a spec's stages ask for that its policy overrides, in words (empty: nothing).

    A stage's ``min_requests`` below the policy's own minimum does not make the stage shorter: the
    default policy judges nothing until both arms have ``min_samples`` requests (so the stage
    waits for them), and the threshold policy advances on time with no verdict at all.
    """
    policy = policy_for(spec)
    if isinstance(policy, SequentialRolloutPolicy):
        floor, what, name = policy.min_samples, "min_samples", "sequential"
    elif isinstance(policy, ThresholdPolicy):
        floor, what, name = policy.min_requests, "min_requests", "threshold"
    else:
        return []
    out = []
    for index, stage in enumerate(plan(spec)):
        if is_comparable(stage) and 0 < stage.min_requests < floor:
            then = (
                f"the stage waits until both arms have {floor:,} requests since the rollout began"
                if isinstance(policy, SequentialRolloutPolicy)
                else "the stage can end on time with no verdict at all"
            )
            out.append(
                f"stage {index + 1} asks for {stage.min_requests:,} requests, but the {name} "
                f"policy judges nothing before {floor:,} per arm (analysis {what}): {then}; "
                f"set the stage's min_requests to at least {floor:,} or lower analysis.{what}"
            )
    return out
