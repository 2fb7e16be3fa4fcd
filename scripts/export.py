"""Export GoogLeNet to ONNX from a clone: `semdict export` under its script name.

    python scripts/export.py                      # download InceptionV1.pb, export it
    python scripts/export.py --graphdef FILE.pb   # a local GraphDef; never touches the network
    python scripts/export.py --replica            # random-weight replica, no network needed

The export itself is the subpackage semdict_onnx.export (see docs/export.md).
"""

import sys

from semdict_onnx.export import main

if __name__ == "__main__":
    sys.exit(main(prog="python scripts/export.py"))
