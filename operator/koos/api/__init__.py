"""L0 data: pydantic models of every CRD's spec and status, constants, conditions. No I/O.

The models are the single source of truth of the CRDs (`make crds` writes `crds/` from
them); `koos.engine` gives them meaning.
"""
