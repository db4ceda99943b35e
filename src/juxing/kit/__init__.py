"""Shared plumbing: database, errors, security, idempotency, logging."""
