"""The CIFAR-10 CNN's four convolutions in PyTorch, each timed alone: forward pass and gradients at batch 100.

Runs in an environment with torch (jaxdl's has none):
    PYTHON_WITH_TORCH scripts/torch_conv_layers.py
    ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 PYTHON_WITH_TORCH scripts/torch_conv_layers.py
The same work as scripts/bench_conv.py's per-layer rows (the first layer's
input needs no gradient), for comparing layer by layer; median of 15 calls.
"""

import statistics
import sys
import time

try:
    import torch
except ModuleNotFoundError:
    sys.exit("torch_conv_layers.py: needs PyTorch; run it with a Python that has it (jaxdl's environment has none)")

LAYERS = {  # name: (input channels, size, features, stride, does the CNN need its input's gradient)
    "conv1 3->32 s1": (3, 32, 32, 1, False),
    "conv2 32->32 s2": (32, 32, 32, 2, True),
    "conv3 32->64 s1": (32, 16, 64, 1, True),
    "conv4 64->64 s2": (64, 16, 64, 2, True),
}


def main():
    torch.manual_seed(0)
    for name, (c, size, features, stride, needs_input_grad) in LAYERS.items():
        conv = torch.nn.Conv2d(c, features, 3, stride, 1)
        x = torch.randn(100, c, size, size, requires_grad=needs_input_grad)
        with torch.no_grad():
            cotangent = torch.randn_like(conv(x))

        for _ in range(3):
            conv(x).backward(cotangent)
        times = []
        for _ in range(15):
            start = time.perf_counter()
            conv(x).backward(cotangent)
            times.append(time.perf_counter() - start)
        print(f"{name:<18} {1e3 * statistics.median(times):7.2f} ms")


if __name__ == "__main__":
    main()
