"""Background jobs: periodic sweeps run in-process (embedded) or by ``juxing worker``."""
