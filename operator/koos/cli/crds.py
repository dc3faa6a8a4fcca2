"""`make crds`: write `crds/*.yaml` from the pydantic models (or, with --check, fail when the
committed files differ from what the models give)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

from koos.api.crds import all_crds

HEADER = "# Generated from operator/koos/api by `make crds`. Do not edit.\n"


def render(crd: dict[str, object]) -> str:
    return HEADER + yaml.safe_dump(crd, sort_keys=False, width=100)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="crds", help="folder to write (default: crds)")
    parser.add_argument("--check", action="store_true", help="only compare, write nothing")
    args = parser.parse_args(argv)
    out = Path(args.out)
    stale = []
    for name, crd in all_crds().items():
        path = out / name
        text = render(crd)
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(str(path))
        else:
            out.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    if stale:
        print("out of date (run `make crds`): " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
