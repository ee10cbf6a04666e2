"""Solve: every question of a dataset answered by a registered model, through the cached engine
(solve.py). Mining and evaluation build on its requests; it has no page of its own."""

from __future__ import annotations

from core.steps import Step

STEP = Step(
    name="solve", title="Solve", order=15, page=False,
    help="Solve every question of a dataset with a registered model.",
    tables=("generations", "generation_refs", "batch_requests", "provider_batches"),
)
