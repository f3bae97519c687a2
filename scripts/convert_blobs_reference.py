"""Writes jaxdl/resources/blobs_tutorial_init.json from the shared PyTorch reference.

The shared file (../shared/reference/blobs_tutorial_init.json) holds the 21
initial parameters that the blob tutorial's PyTorch code draws with
torch.manual_seed(2024), in PyTorch layout, and the tutorial's ten log lines.
This converts them to BlobClassifier's Flax layout:

    model.0.weight (5, 2)  -> hidden.kernel (2, 5)   (transposed: Flax computes x @ kernel)
    model.0.bias   (5,)    -> hidden.bias   (5,)
    model.1.weight (1, 5)  -> output.kernel (5, 1)   (transposed)
    model.1.bias   (1,)    -> output.bias   (1,)

Usage: python scripts/convert_blobs_reference.py [PATH_TO_SHARED_JSON]
"""

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT.parent / "shared" / "reference" / "blobs_tutorial_init.json"
TARGET = ROOT / "jaxdl" / "resources" / "blobs_tutorial_init.json"


def transpose(matrix):
    return [list(row) for row in zip(*matrix, strict=True)]


def main(source: Path = SOURCE) -> None:
    ref = json.loads(Path(source).read_text())
    p = ref["params"]
    out = {
        "about": (
            "Initial parameters of tutorial 0's blob classifier as its PyTorch code draws them "
            "(torch.manual_seed(2024), nn.Sequential(nn.Linear(2,5), nn.Linear(5,1), "
            "nn.Sigmoid())), converted to jaxdl.models.BlobClassifier's Flax layout by "
            "scripts/convert_blobs_reference.py: kernels are PyTorch weights transposed. "
            "tutorial_log: the tutorial's printed log (loss and accuracy in percent, computed "
            "before each epoch's update)."
        ),
        "params": {
            "hidden": {"kernel": transpose(p["model.0.weight"]), "bias": p["model.0.bias"]},
            "output": {"kernel": transpose(p["model.1.weight"]), "bias": p["model.1.bias"]},
        },
        "tutorial_log": ref["tutorial_log"],
    }
    TARGET.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {TARGET}")


if __name__ == "__main__":
    main(*(Path(a) for a in sys.argv[1:]))
