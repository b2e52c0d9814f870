#!/usr/bin/env python3
"""Trains PtqTool's bundled sample models on Fashion-MNIST and exports them to ONNX with
BatchNormalization kept, then writes the bundled calibration and evaluation images.

Run with Debian's interpreter (the packages live there):
    apt-get install python3-torch python3-torchvision python3-onnx dataset-fashion-mnist
    /usr/bin/python3 models/train.py            # from the repository root

Outputs: models/fmnist_cnn.onnx, models/fmnist_resnet.onnx, models/fmnist_mobilenetv2.onnx, their .json sidecars,
models/metrics.json, calibration/fashion-mnist/{calib,eval}/.

    /usr/bin/python3 models/train.py --mobilenet

trains only the MobileNetV2-style model (ReLU6, depthwise convolutions, linear bottlenecks; BatchNormalization folded
into the convolutions at export, as in a deployed ImageNet MobileNetV2), leaving the other two and the images alone.

    /usr/bin/python3 models/train.py --export-test DIR

trains nothing: it writes the whole 10,000-image test split as a labelled ImageFolder in DIR (same layout as the
bundled eval folder), for evaluations that need more than the bundled 2,000 images.
"""
import gzip
import json
import os
import struct
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

DATA = "/usr/share/datasets/fashion-mnist"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MEAN, STD = 0.2860, 0.3530  # Fashion-MNIST training-set pixel mean/std (on [0,1])
CLASSES = ["tshirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "boot"]
CALIB_COUNT = 500
EVAL_PER_CLASS = 200
SEED = 0


def read_idx(name):
    with gzip.open(os.path.join(DATA, name), "rb") as f:
        magic = struct.unpack(">I", f.read(4))[0]
        ndim = magic & 0xFF
        dims = struct.unpack(">" + "I" * ndim, f.read(4 * ndim))
        return np.frombuffer(f.read(), dtype=np.uint8).reshape(dims)


def normalize(u8):
    x = torch.from_numpy(u8.astype(np.float32) / 255.0).unsqueeze(1)
    return (x - MEAN) / STD


def conv_bn(cin, cout, k=3, stride=1, groups=1):
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class PlainCnn(nn.Module):
    """Conv-BN-ReLU blocks, two MaxPools, global average pool, Gemm."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            conv_bn(1, 16), conv_bn(16, 32), nn.MaxPool2d(2),
            conv_bn(32, 64), conv_bn(64, 64), nn.MaxPool2d(2),
            conv_bn(64, 128),
        )
        self.fc = nn.Linear(128, 10)

    def forward(self, x):
        x = self.features(x)
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return self.fc(x)


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.c1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.b1 = nn.BatchNorm2d(cout)
        self.c2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.b2 = nn.BatchNorm2d(cout)
        self.proj = None
        if stride != 1 or cin != cout:
            self.proj = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = F.relu(self.b1(self.c1(x)))
        y = self.b2(self.c2(y))
        skip = x if self.proj is None else self.proj(x)
        return F.relu(y + skip)


class DepthwiseSeparableBlock(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.dw = nn.Conv2d(c, c, 3, 1, 1, groups=c, bias=False)
        self.b1 = nn.BatchNorm2d(c)
        self.pw = nn.Conv2d(c, c, 1, bias=False)
        self.b2 = nn.BatchNorm2d(c)

    def forward(self, x):
        y = F.relu(self.b1(self.dw(x)))
        y = self.b2(self.pw(y))
        return F.relu(y + x)


class SmallResNet(nn.Module):
    """Stem, residual blocks with Add skips (one strided with a 1x1 projection), a depthwise-separable block."""

    def __init__(self):
        super().__init__()
        self.stem = conv_bn(1, 32)
        self.block1 = BasicBlock(32, 32, 1)
        self.block2 = BasicBlock(32, 64, 2)
        self.dws = DepthwiseSeparableBlock(64)
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(64, 10)

    def forward(self, x):
        x = self.block2(self.block1(self.stem(x)))
        x = self.pool(self.dws(x))
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return self.fc(x)


class InvertedResidual(nn.Module):
    """MobileNetV2's block: 1x1 expand -> BN -> ReLU6, 3x3 depthwise -> BN -> ReLU6, 1x1 project -> BN (linear), Add skip when shapes match."""

    def __init__(self, cin, cout, stride, expand):
        super().__init__()
        hidden = cin * expand
        layers = []
        if expand != 1:
            layers += [nn.Conv2d(cin, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU6(inplace=True)]
        layers += [nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False), nn.BatchNorm2d(hidden), nn.ReLU6(inplace=True),
                   nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout)]
        self.body = nn.Sequential(*layers)
        self.skip = stride == 1 and cin == cout

    def forward(self, x):
        y = self.body(x)
        return x + y if self.skip else y


class MobileNetV2Small(nn.Module):
    """MobileNetV2 (Sandler et al. 2018) scaled to 28x28 inputs: ReLU6 stem, 7 inverted-residual blocks (expansion 1 and 6,
    depthwise 3x3, linear bottlenecks, Add skips), 1x1 head conv with ReLU6, global average pool, Linear."""

    # (expansion, channels, repeats, first stride), as in the paper's Table 2 with the width and depth cut down.
    SETTINGS = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 2, 2), (6, 64, 2, 1)]

    def __init__(self):
        super().__init__()
        layers = [nn.Conv2d(1, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU6(inplace=True)]
        cin = 16
        for t, c, n, s in self.SETTINGS:
            for i in range(n):
                layers.append(InvertedResidual(cin, c, s if i == 0 else 1, t))
                cin = c
        layers += [nn.Conv2d(cin, 256, 1, bias=False), nn.BatchNorm2d(256), nn.ReLU6(inplace=True)]
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(256, 10)

    def forward(self, x):
        x = self.features(x)
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return self.fc(x)


def evaluate(model, x, y):
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(x), 1000):
            correct += (model(x[i:i + 1000]).argmax(1) == y[i:i + 1000]).sum().item()
    return 100.0 * correct / len(x)


def train(model, x, y, epochs, lr):
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    steps = epochs * ((len(x) + 127) // 128)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
    gen = torch.Generator().manual_seed(SEED)
    for epoch in range(epochs):
        model.train()
        perm = torch.randperm(len(x), generator=gen)
        total = 0.0
        for i in range(0, len(x), 128):
            idx = perm[i:i + 128]
            xb = x[idx]
            # light augmentation: random horizontal flip
            flip = torch.rand(len(idx), generator=gen) < 0.5
            xb = torch.where(flip[:, None, None, None], xb.flip(3), xb)
            loss = F.cross_entropy(model(xb), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
        print(f"  epoch {epoch + 1}/{epochs} loss {total / len(x):.4f}", flush=True)


def export(model, path, fold_bn=False):
    """Exports with BatchNormalization kept, or with fold_bn folded into the convolutions (Conv with bias, ReLU6 as Clip),
    the form a deployed ImageNet MobileNetV2 export has."""
    model.eval()
    dummy = torch.zeros(1, 1, 28, 28)
    torch.onnx.export(
        model, dummy, path, opset_version=13,
        input_names=["input"], output_names=["logits"],
        dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
        training=torch.onnx.TrainingMode.EVAL if fold_bn else torch.onnx.TrainingMode.PRESERVE,
        do_constant_folding=fold_bn)


def write_images(train_x, test_x, test_y):
    rng = np.random.default_rng(SEED)
    calib_dir = os.path.join(ROOT, "calibration", "fashion-mnist", "calib")
    os.makedirs(calib_dir, exist_ok=True)
    for i, idx in enumerate(sorted(rng.choice(len(train_x), CALIB_COUNT, replace=False))):
        Image.fromarray(train_x[idx], mode="L").save(os.path.join(calib_dir, f"train-{idx:05d}.png"), optimize=True)
    eval_root = os.path.join(ROOT, "calibration", "fashion-mnist", "eval")
    chosen = []
    for c, name in enumerate(CLASSES):
        d = os.path.join(eval_root, f"{c}-{name}")
        os.makedirs(d, exist_ok=True)
        idxs = np.nonzero(test_y == c)[0][:EVAL_PER_CLASS]
        for idx in idxs:
            Image.fromarray(test_x[idx], mode="L").save(os.path.join(d, f"test-{idx:05d}.png"), optimize=True)
        chosen.extend(idxs.tolist())
    return np.array(sorted(chosen))


def bundled_eval_indices(test_y):
    """The test-split indices of the bundled eval folder (the first EVAL_PER_CLASS of each class), without writing images."""
    return np.array(sorted(i for c in range(len(CLASSES)) for i in np.nonzero(test_y == c)[0][:EVAL_PER_CLASS].tolist()))


def export_test(out_dir):
    test_x = read_idx("t10k-images-idx3-ubyte.gz")
    test_y = read_idx("t10k-labels-idx1-ubyte.gz")
    for c, name in enumerate(CLASSES):
        d = os.path.join(out_dir, f"{c}-{name}")
        os.makedirs(d, exist_ok=True)
        for idx in np.nonzero(test_y == c)[0]:
            Image.fromarray(test_x[idx], mode="L").save(os.path.join(d, f"test-{idx:05d}.png"))
    print(f"wrote {len(test_y)} test images to {out_dir}")


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--export-test":
        return export_test(sys.argv[2])
    mobilenet = len(sys.argv) == 2 and sys.argv[1] == "--mobilenet"
    torch.manual_seed(SEED)
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    train_x = read_idx("train-images-idx3-ubyte.gz")
    train_y = read_idx("train-labels-idx1-ubyte.gz")
    test_x = read_idx("t10k-images-idx3-ubyte.gz")
    test_y = read_idx("t10k-labels-idx1-ubyte.gz")
    eval_idx = write_images(train_x, test_x, test_y) if not mobilenet else bundled_eval_indices(test_y)

    xt, yt = normalize(train_x), torch.from_numpy(train_y.astype(np.int64))
    xs, ys = normalize(test_x), torch.from_numpy(test_y.astype(np.int64))
    epochs = int(os.environ.get("EPOCHS", "6"))
    metrics_path = os.path.join(ROOT, "models", "metrics.json")
    metrics = {}
    models = [("fmnist_cnn", PlainCnn(), False), ("fmnist_resnet", SmallResNet(), False), ("fmnist_mobilenetv2", MobileNetV2Small(), True)]
    if mobilenet:
        # Only the MobileNetV2-style model; the other two and the images stay as they are.
        with open(metrics_path) as f:
            metrics = json.load(f)
        models = models[2:]
    for name, model, fold_bn in models:
        print(f"training {name}", flush=True)
        train(model, xt, yt, epochs, 3e-3)
        acc_test = evaluate(model, xs, ys)
        acc_eval = evaluate(model, xs[eval_idx], ys[eval_idx])
        print(f"  {name}: test top-1 {acc_test:.2f}%  bundled eval top-1 {acc_eval:.2f}%", flush=True)
        path = os.path.join(ROOT, "models", name + ".onnx")
        export(model, path, fold_bn)
        params = sum(p.numel() for p in model.parameters())
        metrics[name] = {"test_top1": round(acc_test, 2), "eval_top1": round(acc_eval, 2), "params": params, "epochs": epochs}
        if fold_bn:
            metrics[name]["batchnorm"] = "folded at export"
        sidecar = {
            "description": f"{model.__class__.__name__} trained on Fashion-MNIST by models/train.py"
                           + (" (BatchNormalization folded at export)" if fold_bn else ""),
            "input": "input", "width": 28, "height": 28, "channels": "gray", "layout": "nchw",
            "scale": 255, "mean": [MEAN], "std": [STD], "resize": "none",
            "labels": CLASSES,
        }
        with open(os.path.join(ROOT, "models", name + ".json"), "w") as f:
            json.dump(sidecar, f, indent=2)
            f.write("\n")
    with open(metrics_path, "w") as f:
        json.dump(metrics, f, indent=2)
        f.write("\n")


if __name__ == "__main__":
    sys.exit(main())
