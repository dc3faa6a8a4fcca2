"""A local Kubernetes API server and Job runner for tests and `make demo` (DESIGN.md §6).

Never used by the production operator (an import-linter contract enforces it).
"""
