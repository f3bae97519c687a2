"""The blob tutorial's PyTorch training loop (tutorial 0), timed, for side-by-side comparison.

Runs in a separate environment that has torch and scikit-learn (jaxdl's own
environment has no PyTorch):  PYTHON_WITH_TORCH scripts/torch_blobs_baseline.py
Prints one JSON line: per-epoch seconds (median of repeats) and the final log figures.
"""

import argparse
import json
import statistics
import sys
import time

try:
    import torch
    import torch.nn as nn
except ModuleNotFoundError:
    sys.exit("torch_blobs_baseline.py: needs PyTorch; run it with a Python that has it (jaxdl's environment has none)")
from sklearn.datasets import make_blobs


def train(x, y, epochs, lr):
    torch.manual_seed(2024)
    model = nn.Sequential(nn.Linear(2, 5), nn.Linear(5, 1), nn.Sigmoid())
    criterion = nn.BCELoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    start = time.perf_counter()
    for _ in range(epochs):  # the tutorial's loop body, verbatim but for printing
        model.train()
        output_prob = model(x).squeeze()
        pred = (output_prob >= 0.5).float()
        loss = criterion(output_prob, y)
        loss.item()
        (pred == y).sum().item()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return time.perf_counter() - start, loss.item(), (pred == y).float().mean().item()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    x, y = make_blobs(n_samples=1000, n_features=2, centers=2, cluster_std=3, random_state=1)
    x, y = torch.Tensor(x), torch.Tensor(y)
    train(x, y, 50, 5e-4)  # warm-up
    runs = [train(x, y, args.epochs, 5e-4) for _ in range(args.repeats)]
    seconds = statistics.median(r[0] for r in runs)
    print(
        json.dumps(
            {
                "framework": f"torch {torch.__version__}",
                "threads": torch.get_num_threads(),
                "seconds_per_epoch": seconds / args.epochs,
                "final_loss": runs[-1][1],
                "final_accuracy": runs[-1][2],
            }
        )
    )


if __name__ == "__main__":
    main()
