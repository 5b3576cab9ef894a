"""Scoring: pure functions of (prediction, reference, contexts) (placeholder until the Arena issue lands)."""
