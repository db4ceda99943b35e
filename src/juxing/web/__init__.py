"""Server-rendered web UI (Jinja2 templates, assets shipped in the package)."""
