"""L0 data: pydantic models of every CRD's spec and status, constants, conditions. No I/O.

Filled by the Templates and Executions work (DESIGN.md §2); nothing here yet.
"""
