"""Write the replica GraphDef (Lucid's InceptionV1 structure, seeded RANDOM weights).

    python scripts/replica.py --output PATH [--seed N]

`semdict export --replica` builds the same file into the data folder and exports it; this
script is for the tests and benchmarks, which also want the GraphDef alone.
"""

import argparse
import sys

from semdict_onnx.export._replica import DEFAULT_SEED, write_replica


def main(argv: list[str] | None = None) -> int:
    """Command line: write a replica GraphDef."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", required=True, help="where to write the .pb")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="weight seed")
    args = parser.parse_args(argv)
    path = write_replica(args.output, args.seed)
    print(f"wrote {path}: a REPLICA of InceptionV1 with RANDOM weights (seed {args.seed})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
