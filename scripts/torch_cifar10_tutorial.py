"""PyTorch CIFAR-10 CNN tutorial (shared/seeds/001_78364955a950f568.txt), run as written.

Code is the tutorial's: the training/test loops and data pipeline from its
"Code" section (MLP example, lines ~135-230) with the model replaced by its
"Model Definition" CNN (lines ~355-400). The CNN takes images as
(N, 3, 32, 32), so the MLP-only `images.reshape(-1, input_size)` is dropped.

Changes from the tutorial, nothing else:
  * dataset: torchvision.datasets.ImageFolder on the offline JPEG copy of
    CIFAR-10 (../shared/datasets/cifar10-jpg.tar.gz, extracted once to
    /tmp/cifar10-jpg) instead of torchvision.datasets.CIFAR10(download=True).
    Class folders sort alphabetically, which is CIFAR-10's label order.
  * flags --epochs (default 10), --seed, --threads, --eval-every-epoch,
    --limit-steps (smoke tests only), --data.
  * timing, and one final JSON line on stdout.

Runs in an environment with torch and torchvision (jaxdl's has none); the time-to-accuracy
comparison of ``cifar10-speedrun`` (docs/guides/speedrun.md):

    PYTHON_WITH_TORCH scripts/torch_cifar10_tutorial.py --epochs 10 --eval-every-epoch
"""
import argparse
import json
import os
import tarfile
import time

import sys

try:
    import torch
    import torch.nn as nn
    from torch.utils.data import DataLoader
except ModuleNotFoundError:
    sys.exit("torch_cifar10_tutorial.py: needs PyTorch; run it with a Python that has it (jaxdl's environment has none)")
try:
    import torchvision
    import torchvision.transforms as transforms
except ModuleNotFoundError:
    sys.exit("torch_cifar10_tutorial.py: needs torchvision beside PyTorch; run it with a Python that has both")

ARCHIVE = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "datasets", "cifar10-jpg.tar.gz")
CLASSES = ["airplane", "automobile", "bird", "cat", "deer",
           "dog", "frog", "horse", "ship", "truck"]

parser = argparse.ArgumentParser()
parser.add_argument("--epochs", type=int, default=10)
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--threads", type=int, default=2)
parser.add_argument("--eval-every-epoch", action="store_true")
parser.add_argument("--limit-steps", type=int, default=0,
                    help="stop each epoch after N steps (smoke tests only; 0 = full epoch)")
parser.add_argument("--data", default="/tmp/cifar10-jpg")
args = parser.parse_args()

torch.set_num_threads(args.threads)
torch.manual_seed(args.seed)


## Offline dataset: extract once (not timed)
def ensure_extracted(root):
    if os.path.isdir(os.path.join(root, "train")) and os.path.isdir(os.path.join(root, "test")):
        return
    tmp = root + ".partial"
    with tarfile.open(ARCHIVE) as t:
        t.extractall(tmp, filter="data")
    os.rename(tmp, root)


ensure_extracted(args.data)


## Model (tutorial, "Model Definition")
class CNN(nn.Module):
    def __init__(self, num_classes):
        super(CNN, self).__init__()
        self.conv1 = nn.Conv2d(3, 32, kernel_size=3, stride=1, padding=1)
        self.bn1 = nn.BatchNorm2d(32)
        self.relu1 = nn.LeakyReLU()

        self.conv2 = nn.Conv2d(32, 32, kernel_size=3, stride=2, padding=1)
        self.bn2 = nn.BatchNorm2d(32)
        self.relu2 = nn.LeakyReLU()

        self.conv3 = nn.Conv2d(32, 64, kernel_size=3, stride=1, padding=1)
        self.bn3 = nn.BatchNorm2d(64)
        self.relu3 = nn.LeakyReLU()

        self.conv4 = nn.Conv2d(64, 64, kernel_size=3, stride=2, padding=1)
        self.bn4 = nn.BatchNorm2d(64)
        self.relu4 = nn.LeakyReLU()

        self.flatten = nn.Flatten()

        self.fc1 = nn.Linear(64 * 8 * 8, 128)
        self.bn5 = nn.BatchNorm1d(128)
        self.relu5 = nn.LeakyReLU()
        self.dropout = nn.Dropout(0.5)

        self.fc2 = nn.Linear(128, num_classes)

    def forward(self, x):
        x = self.relu1(self.bn1(self.conv1(x)))
        x = self.relu2(self.bn2(self.conv2(x)))
        x = self.relu3(self.bn3(self.conv3(x)))
        x = self.relu4(self.bn4(self.conv4(x)))
        x = self.flatten(x)
        x = self.relu5(self.bn5(self.fc1(x)))
        x = self.dropout(x)
        x = self.fc2(x)
        return x


## Device configuration
device = torch.device('cuda' if torch.cuda.is_available() else 'cpu')

## Hyperparameters
num_classes = 10
learning_rate = 0.001
num_epochs = args.epochs
batch_size = 100

## Load CIFAR-10 dataset (offline ImageFolder copy instead of CIFAR10(download=True))
transform = transforms.Compose([
    transforms.ToTensor(),
    transforms.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
])

train_dataset = torchvision.datasets.ImageFolder(root=os.path.join(args.data, 'train'), transform=transform)
train_loader = DataLoader(dataset=train_dataset, batch_size=batch_size, shuffle=True)

test_dataset = torchvision.datasets.ImageFolder(root=os.path.join(args.data, 'test'), transform=transform)
test_loader = DataLoader(dataset=test_dataset, batch_size=batch_size, shuffle=False)

assert train_dataset.classes == CLASSES and test_dataset.classes == CLASSES, train_dataset.classes
assert len(train_dataset) == 50000 and len(test_dataset) == 10000

## Initialize the model
model = CNN(num_classes=num_classes).to(device)

## Loss and optimizer
criterion = nn.CrossEntropyLoss()
optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)


## Test the model (tutorial's loop)
def evaluate():
    model.eval()
    with torch.no_grad():
        correct = 0
        total = 0
        for images, labels in test_loader:
            images = images.to(device)
            labels = labels.to(device)
            outputs = model(images)
            _, predicted = torch.max(outputs.data, 1)
            total += labels.size(0)
            correct += (predicted == labels).sum().item()

        print('Accuracy of the network on the 10000 test images: {} %'.format(100 * correct / total))
    return 100 * correct / total


## Training the model
epoch_s, epoch_accuracy, eval_s, steps_run = [], [], [], []
total_step = len(train_loader)
for epoch in range(num_epochs):
    model.train()  # the tutorial never switches back; needed once evaluate() has run
    t0 = time.perf_counter()
    correct = 0
    total = 0
    steps = 0
    for i, (images, labels) in enumerate(train_loader):
        # Move tensors to the configured device
        images = images.to(device)
        labels = labels.to(device)

        # Forward pass
        outputs = model(images)
        loss = criterion(outputs, labels)

        # Backward pass and optimize
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

        # Track the accuracy
        _, predicted = torch.max(outputs.data, 1)
        total += labels.size(0)
        correct += (predicted == labels).sum().item()
        steps += 1

        if (i+1) % 100 == 0:
            print ('Epoch [{}/{}], Step [{}/{}], Loss: {:.4f}, Accuracy: {:.2f} %'
                   .format(epoch+1, num_epochs, i+1, total_step, loss.item(), (correct/total)*100), flush=True)

        if args.limit_steps and steps >= args.limit_steps:
            break
    epoch_s.append(time.perf_counter() - t0)
    steps_run.append(steps)

    if args.eval_every_epoch or epoch == num_epochs - 1:
        t1 = time.perf_counter()
        acc = evaluate()
        eval_s.append(time.perf_counter() - t1)
        if args.eval_every_epoch:
            epoch_accuracy.append(acc)

wall_s = sum(epoch_s)
result = {
    "epochs": num_epochs,
    "seed": args.seed,
    "wall_s": round(wall_s, 3),
    "epoch_s": [round(s, 3) for s in epoch_s],
    "test_accuracy": acc,
    "torch": torch.__version__,
    "threads": torch.get_num_threads(),
    "steps_per_epoch": steps_run,
    "s_per_step": round(wall_s / sum(steps_run), 4),
    "eval_s": [round(s, 3) for s in eval_s],
}
if args.eval_every_epoch:
    result["epoch_accuracy"] = epoch_accuracy
if args.limit_steps:
    result["limit_steps"] = args.limit_steps
print(json.dumps(result), flush=True)
