"""Full-size SCHP parsing networks (ResNet-101 CE2P, random weights) exported to ONNX with the
real files' signature, to time HumanParser on models of the real size.

The architecture follows Self-Correction-Human-Parsing networks/AugmentCE2P.py (`resnet101`):
deep stem, ResNet-101 with a dilated layer4 (output stride 8 inside, stride 4 at the decoder),
PSP context encoding, decoder, edge branch and fusion head. InPlaceABNSync is written as
BatchNorm2d + LeakyReLU(0.01) (its default activation), BatchNorm2d(activation='none') as plain
BatchNorm2d; exported in eval mode, so Dropout2d is the identity and BatchNorm folds away.
Outputs in the original order: parsing, fusion, edge (HumanParser uses [1]). PSP's
AdaptiveAvgPool2d is written out as its bins (same values): the TorchScript exporter
(dynamo=False) refuses 3 x 3 and 6 x 6 bins of ATR's 32 x 32 map, and the dynamo exporter needs
onnxscript, which is not installed.

    PYTHONPATH=src:. python bench/schp_onnx.py OUT_DIR
writes OUT_DIR/parsing_atr.onnx (18 classes, input 512) and parsing_lip.onnx (20 classes, 473),
for `bench/preprocess_bench.py --schp OUT_DIR`; the bench exports them itself otherwise.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

LAYERS = (3, 4, 23, 3)  # ResNet-101
MODELS = {"parsing_atr.onnx": (18, 512), "parsing_lip.onnx": (20, 473)}


def abn(channels: int) -> nn.Sequential:
    """InPlaceABNSync(channels): batch norm then leaky ReLU (slope 0.01)."""
    return nn.Sequential(nn.BatchNorm2d(channels), nn.LeakyReLU(0.01))


def conv_abn(cin: int, cout: int, kernel: int = 1, dilation: int = 1) -> nn.Sequential:
    padding = dilation * (kernel // 2)
    conv = nn.Conv2d(cin, cout, kernel, padding=padding, dilation=dilation, bias=False)
    return nn.Sequential(conv, *abn(cout))


def upsample_to(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, size=like.shape[2:], mode="bilinear", align_corners=True)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin: int, planes: int, stride: int, dilation: int, downsample: bool):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(
            planes, planes, 3, stride=stride, padding=dilation, dilation=dilation, bias=False
        )
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.downsample = (
            nn.Sequential(
                nn.Conv2d(cin, planes * 4, 1, stride=stride, bias=False),
                nn.BatchNorm2d(planes * 4),
            )
            if downsample
            else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        residual = x if self.downsample is None else self.downsample(x)
        return F.relu(out + residual)


class AdaptiveAvgPool(nn.Module):
    """nn.AdaptiveAvgPool2d(size) written as its bins (bin i spans floor(i*n/size) to
    ceil((i+1)*n/size)): the TorchScript exporter refuses sizes that do not divide the input."""

    def __init__(self, size: int):
        super().__init__()
        self.size = size

    def bins(self, n: int) -> list[tuple[int, int]]:
        return [(i * n // self.size, -(-(i + 1) * n // self.size)) for i in range(self.size)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = int(x.shape[2]), int(x.shape[3])
        rows = [
            torch.cat(
                [x[:, :, y0:y1, x0:x1].mean((2, 3), keepdim=True) for x0, x1 in self.bins(w)], 3
            )
            for y0, y1 in self.bins(h)
        ]
        return torch.cat(rows, 2)


class PSPModule(nn.Module):
    def __init__(self, features: int = 2048, out: int = 512, sizes=(1, 2, 3, 6)):
        super().__init__()
        self.stages = nn.ModuleList(
            nn.Sequential(AdaptiveAvgPool(s), nn.Conv2d(features, out, 1, bias=False), *abn(out))
            for s in sizes
        )
        self.bottleneck = conv_abn(features + len(sizes) * out, out, 3)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        priors = [upsample_to(stage(feats), feats) for stage in self.stages]
        return self.bottleneck(torch.cat([*priors, feats], 1))


class EdgeModule(nn.Module):
    def __init__(self, in_fea=(256, 512, 1024), mid: int = 256, out: int = 2):
        super().__init__()
        self.convs = nn.ModuleList(conv_abn(c, mid) for c in in_fea)
        self.conv4 = nn.Conv2d(mid, out, 3, padding=1)
        self.conv5 = nn.Conv2d(out * 3, out, 1)

    def forward(self, *xs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feas = [conv(x) for conv, x in zip(self.convs, xs, strict=True)]
        edges = [self.conv4(f) for f in feas]
        feas = [feas[0]] + [upsample_to(f, xs[0]) for f in feas[1:]]
        edges = [edges[0]] + [upsample_to(e, xs[0]) for e in edges[1:]]
        return self.conv5(torch.cat(edges, 1)), torch.cat(feas, 1)


class Decoder(nn.Module):
    def __init__(self, classes: int):
        super().__init__()
        self.conv1 = conv_abn(512, 256)
        self.conv2 = conv_abn(256, 48)
        self.conv3 = nn.Sequential(conv_abn(304, 256), conv_abn(256, 256))
        self.conv4 = nn.Conv2d(256, classes, 1)

    def forward(self, xt: torch.Tensor, xl: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.conv3(torch.cat([upsample_to(self.conv1(xt), xl), self.conv2(xl)], 1))
        return self.conv4(x), x


class CE2P(nn.Module):
    """AugmentCE2P ResNet(Bottleneck, [3, 4, 23, 3], classes)."""

    def __init__(self, classes: int):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, 64, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(64),
            nn.ReLU(),
            nn.Conv2d(64, 64, 3, padding=1, bias=False),
            nn.BatchNorm2d(64),
            nn.ReLU(),
            nn.Conv2d(64, 128, 3, padding=1, bias=False),
            nn.BatchNorm2d(128),
            nn.ReLU(),
            nn.MaxPool2d(3, stride=2, padding=1),
        )
        self.inplanes = 128
        self.layer1 = self._layer(64, LAYERS[0])
        self.layer2 = self._layer(128, LAYERS[1], stride=2)
        self.layer3 = self._layer(256, LAYERS[2], stride=2)
        self.layer4 = self._layer(512, LAYERS[3], dilation=2)
        self.context_encoding = PSPModule()
        self.edge = EdgeModule()
        self.decoder = Decoder(classes)
        self.fushion = nn.Sequential(  # the original's spelling
            conv_abn(1024, 256), nn.Dropout2d(0.1), nn.Conv2d(256, classes, 1)
        )

    def _layer(self, planes: int, blocks: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
        downsample = stride != 1 or self.inplanes != planes * 4
        layers = [Bottleneck(self.inplanes, planes, stride, dilation, downsample)]
        self.inplanes = planes * 4
        layers += [Bottleneck(self.inplanes, planes, 1, dilation, False) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x2 = self.layer1(self.stem(x))
        x3 = self.layer2(x2)
        x4 = self.layer3(x3)
        x5 = self.layer4(x4)
        parsing, parsing_fea = self.decoder(self.context_encoding(x5), x2)
        edge, edge_fea = self.edge(x2, x3, x4)
        fusion = self.fushion(torch.cat([parsing_fea, edge_fea], 1))
        return parsing, fusion, edge


def export(path: Path, classes: int, size: int, seed: int) -> None:
    torch.manual_seed(seed)
    model = CE2P(classes).eval()
    for module in model.modules():  # non-trivial batch-norm statistics
        if isinstance(module, nn.BatchNorm2d):
            nn.init.uniform_(module.running_mean, -0.1, 0.1)
            nn.init.uniform_(module.running_var, 0.5, 1.5)
    x = torch.randn(1, 3, size, size)
    with torch.no_grad():
        torch.onnx.export(
            model,
            (x,),
            str(path),
            input_names=["input.1"],
            output_names=["parsing", "fusion", "edge"],
            opset_version=11,
            dynamo=False,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    args = parser.parse_args()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    for seed, (name, (classes, size)) in enumerate(MODELS.items()):
        path = args.out_dir / name
        started = time.perf_counter()
        export(path, classes, size, seed)
        took = time.perf_counter() - started
        print(f"{path}: {path.stat().st_size / 2**20:.1f} MiB, exported in {took:.1f} s")


if __name__ == "__main__":
    main()
