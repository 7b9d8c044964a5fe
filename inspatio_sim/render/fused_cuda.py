"""Fused CUDA render kernel (placeholder until written)."""
from __future__ import annotations


def cuda_unavailable() -> str | None:
    return "not yet"
