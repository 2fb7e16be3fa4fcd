"""`python -m semdict_onnx.export`: the export's command line (see semdict_onnx.export)."""

import sys

from ._cli import main

if __name__ == "__main__":
    sys.exit(main(prog="python -m semdict_onnx.export"))
