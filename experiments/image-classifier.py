"""Tutorial 1's MLP or CNN on your own split/class/image folder: classes and size from the data.

    python experiments/image-classifier.py --data DIR [--set model=mlp] [--set image_size=32x32] [--out DIR]

The same as `jaxdl run image-classifier`; the experiment itself is jaxdl/experiments/image_classifier.py.
"""

from jaxdl.cli import run_script

if __name__ == "__main__":
    run_script("image-classifier")
