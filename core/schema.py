"""Names fixed by the schema that code above the store refers to."""

from core.migrations.m002_models_generations_jobs import GEMMA_LOCAL, GEMMA_LOCAL_ID

__all__ = ["GEMMA_LOCAL", "GEMMA_LOCAL_ID"]
