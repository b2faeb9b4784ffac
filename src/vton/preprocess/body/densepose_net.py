"""DensePose R-CNN `densepose_rcnn_R_50_FPN_s1x` (detectron2 + projects/DensePose), inference only.

Reproduces, op for op, what detectron2's `GeneralizedRCNN` with `DensePoseROIHeads` computes for
one image at test time: normalisation and padding to a multiple of 32, the MSRA ResNet-50 (stride
in the 1x1 conv, FrozenBN) with FPN p2..p6, the RPN (unrounded anchors, per-level top 1000 by
logit, clip, per-level NMS 0.7, top 1000), the box head (ROIAlign aligned=False, background last,
score > 0.8, NMS 0.5, top 100), the Panoptic-FPN decoder and the DensePose head and predictor.
Module and parameter names are detectron2's, so `state_dict()` keys equal the model-zoo pickle's.

`width_divisor` divides every hidden channel count (1 = the real model); a larger divisor gives a
tiny stand-in with the same graph.

Deliberate deviations (none affects fp32 results):
- batch size 1 only (the service runs one photo at a time);
- in fp16/bf16 the box decoding, scores, top-k, NMS and both ROIAligns run in fp32 (detectron2
  casts the pooling boxes to the feature dtype, which in fp16 rounds coordinates above 1024 to
  whole pixels);
- division by PIXEL_STD is left out (it is 1.0, so the division is exact).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops import batched_nms, roi_align

PIXEL_MEAN = (103.530, 116.280, 123.675)  # BGR
SIZE_DIVISIBILITY = 32
ANCHOR_SIZES = (32, 64, 128, 256, 512)  # one per level, p2..p6
ANCHOR_RATIOS = (0.5, 1.0, 2.0)  # h / w
STRIDES = (4, 8, 16, 32, 64)
RPN_PRE_NMS_TOPK = 1000
RPN_POST_NMS_TOPK = 1000
RPN_NMS_THRESH = 0.7
SCORE_THRESH = 0.8
BOX_NMS_THRESH = 0.5
DETECTIONS_PER_IMAGE = 100
SCALE_CLAMP = math.log(1000.0 / 16)
RPN_BOX_WEIGHTS = (1.0, 1.0, 1.0, 1.0)
ROI_BOX_WEIGHTS = (10.0, 10.0, 5.0, 5.0)
NUM_PATCHES = 24

Trace = dict[str, Tensor] | None


def record(trace: Trace, name: str, value: Tensor) -> None:
    """Keeps `value` under `name` when tracing (the tests' view of the intermediates)."""
    if trace is not None:
        trace[name] = value


@dataclass
class Detections:
    """Detections in the network input frame, with their DensePose outputs (112x112 per box)."""

    boxes: Tensor  # (n, 4) xyxy, float32
    scores: Tensor  # (n,)
    classes: Tensor  # (n,) int64, always 0 (person)
    coarse_segm: Tensor  # (n, 2, 112, 112)
    fine_segm: Tensor  # (n, 25, 112, 112)
    u: Tensor  # (n, 25, 112, 112)
    v: Tensor  # (n, 25, 112, 112)


class FrozenBatchNorm2d(nn.Module):
    """detectron2's FrozenBN as it runs without autograd: `F.batch_norm(training=False)`."""

    weight: Tensor
    bias: Tensor
    running_mean: Tensor
    running_var: Tensor

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.register_buffer("weight", torch.ones(channels))
        self.register_buffer("bias", torch.zeros(channels))
        self.register_buffer("running_mean", torch.zeros(channels))
        self.register_buffer("running_var", torch.ones(channels))

    def forward(self, x: Tensor) -> Tensor:
        return F.batch_norm(
            x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, 1e-5
        )


class ConvNorm(nn.Conv2d):
    """Bias-free convolution followed by FrozenBN held as `.norm` (detectron2's Conv2d)."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1) -> None:
        super().__init__(cin, cout, kernel, stride, padding=kernel // 2, bias=False)
        self.norm = FrozenBatchNorm2d(cout)

    def forward(self, x: Tensor) -> Tensor:
        return self.norm(super().forward(x))


class ConvReLU(nn.Conv2d):
    """Convolution with bias followed by ReLU (detectron2's Conv2d with `activation=F.relu`)."""

    def __init__(self, cin: int, cout: int, kernel: int) -> None:
        super().__init__(cin, cout, kernel, padding=kernel // 2)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(super().forward(x))


class Bottleneck(nn.Module):
    """MSRA/caffe2 bottleneck: the stride sits in the first 1x1 conv."""

    def __init__(self, cin: int, width: int, cout: int, stride: int) -> None:
        super().__init__()
        self.shortcut = ConvNorm(cin, cout, 1, stride) if cin != cout else None
        self.conv1 = ConvNorm(cin, width, 1, stride)
        self.conv2 = ConvNorm(width, width, 3)
        self.conv3 = ConvNorm(width, cout, 1)

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu_(self.conv1(x))
        out = F.relu_(self.conv2(out))
        out = self.conv3(out)
        out += x if self.shortcut is None else self.shortcut(x)
        return F.relu_(out)


class Stem(nn.Module):
    def __init__(self, cout: int) -> None:
        super().__init__()
        self.conv1 = ConvNorm(3, cout, 7, 2)

    def forward(self, x: Tensor) -> Tensor:
        return F.max_pool2d(F.relu_(self.conv1(x)), kernel_size=3, stride=2, padding=1)


class ResNet50(nn.Module):
    """Stem + res2..res5 (3, 4, 6, 3 blocks); returns the four stage outputs."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.stem = Stem(64 // d)
        cin = 64 // d
        for stage, blocks in zip(range(2, 6), (3, 4, 6, 3), strict=True):
            width, cout = (64 << (stage - 2)) // d, (256 << (stage - 2)) // d
            stride = 1 if stage == 2 else 2
            layers = [
                Bottleneck(cin if i == 0 else cout, width, cout, stride if i == 0 else 1)
                for i in range(blocks)
            ]
            self.add_module(f"res{stage}", nn.Sequential(*layers))
            cin = cout

    def forward(self, x: Tensor) -> list[Tensor]:
        x = self.stem(x)
        outs = []
        for stage in range(2, 6):
            x = getattr(self, f"res{stage}")(x)
            outs.append(x)
        return outs


class FPN(nn.Module):
    """ResNet + FPN (sum fusion, nearest top-down, p6 = max_pool(p5, 1, 2))."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.bottom_up = ResNet50(d)
        for stage in range(2, 6):
            cin = (256 << (stage - 2)) // d
            self.add_module(f"fpn_lateral{stage}", nn.Conv2d(cin, 256 // d, 1))
            self.add_module(f"fpn_output{stage}", nn.Conv2d(256 // d, 256 // d, 3, padding=1))

    def forward(self, x: Tensor, trace: Trace) -> list[Tensor]:
        res = self.bottom_up(x)
        for stage, r in zip(range(2, 6), res, strict=True):
            record(trace, f"backbone.res{stage}", r)
        prev = self.get_submodule("fpn_lateral5")(res[3])
        outs = [self.get_submodule("fpn_output5")(prev)]
        for stage in (4, 3, 2):
            top_down = F.interpolate(prev, scale_factor=2.0, mode="nearest")
            prev = getattr(self, f"fpn_lateral{stage}")(res[stage - 2]) + top_down
            outs.insert(0, getattr(self, f"fpn_output{stage}")(prev))
        outs.append(F.max_pool2d(outs[-1], kernel_size=1, stride=2, padding=0))
        for level, p in enumerate(outs, start=2):
            record(trace, f"fpn.p{level}", p)
        return outs


class RPNHead(nn.Module):
    def __init__(self, d: int) -> None:
        super().__init__()
        self.conv = ConvReLU(256 // d, 256 // d, 3)
        self.objectness_logits = nn.Conv2d(256 // d, len(ANCHOR_RATIOS), 1)
        self.anchor_deltas = nn.Conv2d(256 // d, 4 * len(ANCHOR_RATIOS), 1)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        t = self.conv(x)
        return self.objectness_logits(t), self.anchor_deltas(t)


class ProposalGenerator(nn.Module):
    def __init__(self, d: int) -> None:
        super().__init__()
        self.rpn_head = RPNHead(d)

    def forward(
        self, features: list[Tensor], image_hw: tuple[int, int], trace: Trace
    ) -> tuple[Tensor, Tensor]:
        """Proposal boxes (k, 4) and their logits (k,), sorted by logit, k <= 1000."""
        boxes, logits, levels = [], [], []
        for level, (x, size, stride) in enumerate(
            zip(features, ANCHOR_SIZES, STRIDES, strict=True)
        ):
            logit_map, delta_map = self.rpn_head(x)
            record(trace, f"rpn.objectness_logits.p{level + 2}", logit_map)
            record(trace, f"rpn.anchor_deltas.p{level + 2}", delta_map)
            n, _, h, w = delta_map.shape
            level_logits = logit_map.float().permute(0, 2, 3, 1).flatten(1)  # (1, H*W*A)
            deltas = delta_map.float().view(n, -1, 4, h, w).permute(0, 3, 4, 1, 2).flatten(1, -2)
            anchors = grid_anchors(size, stride, (h, w), x.device)
            proposals = apply_deltas(deltas.reshape(-1, 4), anchors, RPN_BOX_WEIGHTS).view(n, -1, 4)
            k = min(level_logits.shape[1], RPN_PRE_NMS_TOPK)
            top_logits, top_idx = level_logits.topk(k, dim=1)
            boxes.append(proposals[0, top_idx[0]])
            logits.append(top_logits[0])
            levels.append(torch.full((k,), level, dtype=torch.int64, device=x.device))
        boxes_t, logits_t, levels_t = torch.cat(boxes), torch.cat(logits), torch.cat(levels)
        valid = torch.isfinite(boxes_t).all(dim=1) & torch.isfinite(logits_t)
        boxes_t = clip_boxes(boxes_t[valid], image_hw)
        logits_t, levels_t = logits_t[valid], levels_t[valid]
        nonempty = (boxes_t[:, 2] - boxes_t[:, 0] > 0) & (boxes_t[:, 3] - boxes_t[:, 1] > 0)
        boxes_t, logits_t, levels_t = boxes_t[nonempty], logits_t[nonempty], levels_t[nonempty]
        keep = batched_nms(boxes_t, logits_t, levels_t, RPN_NMS_THRESH)[:RPN_POST_NMS_TOPK]
        record(trace, "rpn.proposal_boxes", boxes_t[keep])
        record(trace, "rpn.proposal_objectness_logits", logits_t[keep])
        return boxes_t[keep], logits_t[keep]


class BoxHead(nn.Sequential):
    def __init__(self, d: int) -> None:
        super().__init__()
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(256 // d * 7 * 7, 1024 // d)
        self.fc_relu1 = nn.ReLU()
        self.fc2 = nn.Linear(1024 // d, 1024 // d)
        self.fc_relu2 = nn.ReLU()


class BoxPredictor(nn.Module):
    def __init__(self, d: int) -> None:
        super().__init__()
        self.cls_score = nn.Linear(1024 // d, 2)  # person, background (last)
        self.bbox_pred = nn.Linear(1024 // d, 4)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self.cls_score(x), self.bbox_pred(x)


class Decoder(nn.Module):
    """Panoptic-FPN semantic head: every level brought to stride 4 and summed, then a 1x1 conv."""

    def __init__(self, d: int) -> None:
        super().__init__()
        c = 256 // d
        for stage in range(2, 6):
            ops: list[nn.Module] = []
            for _ in range(max(1, stage - 2)):
                ops.append(ConvReLU(c, c, 3))
                if stage > 2:
                    ops.append(nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False))
            self.add_module(f"p{stage}", nn.Sequential(*ops))
        self.predictor = nn.Conv2d(c, c, 1)

    def forward(self, features: list[Tensor]) -> Tensor:
        x = self.get_submodule("p2")(features[0])
        for stage, f in zip(range(3, 6), features[1:4], strict=True):
            x = x + getattr(self, f"p{stage}")(f)
        return self.predictor(x)


class DensePoseHead(nn.Sequential):
    def __init__(self, d: int) -> None:
        super().__init__()
        for i in range(8):
            self.add_module(
                f"body_conv_fcn{i + 1}", ConvReLU(256 // d if i == 0 else 512 // d, 512 // d, 3)
            )


class DensePosePredictor(nn.Module):
    """Four stride-2 deconvolutions (56x56 per box), each upsampled x2 bilinearly to 112x112."""

    def __init__(self, d: int) -> None:
        super().__init__()
        for name, cout in (
            ("ann_index_lowres", 2),
            ("index_uv_lowres", NUM_PATCHES + 1),
            ("u_lowres", NUM_PATCHES + 1),
            ("v_lowres", NUM_PATCHES + 1),
        ):
            self.add_module(name, nn.ConvTranspose2d(512 // d, cout, 4, stride=2, padding=1))

    def forward(self, x: Tensor, trace: Trace) -> list[Tensor]:
        outs = []
        for name, key in (
            ("ann_index_lowres", "coarse_segm"),
            ("index_uv_lowres", "fine_segm"),
            ("u_lowres", "u"),
            ("v_lowres", "v"),
        ):
            low = getattr(self, name)(x).float()
            record(trace, f"dp.lowres.{key}", low)
            outs.append(F.interpolate(low, scale_factor=2, mode="bilinear", align_corners=False))
            record(trace, f"dp.{key}", outs[-1])
        return outs


class ROIHeads(nn.Module):
    def __init__(self, d: int) -> None:
        super().__init__()
        self.box_head = BoxHead(d)
        self.box_predictor = BoxPredictor(d)
        self.decoder = Decoder(d)
        self.densepose_head = DensePoseHead(d)
        self.densepose_predictor = DensePosePredictor(d)

    def detect(
        self, features: list[Tensor], proposals: Tensor, image_hw: tuple[int, int], trace: Trace
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Box head + Fast R-CNN inference: boxes (n, 4), scores (n,), classes (n,)."""
        levels = pooler_levels(proposals)
        pooled = torch.zeros((len(proposals), features[0].shape[1], 7, 7), device=proposals.device)
        for level, (x, stride) in enumerate(zip(features[:4], STRIDES[:4], strict=True)):
            inds = torch.nonzero(levels == level, as_tuple=True)[0]
            pooled.index_put_((inds,), pool(x, proposals[inds], 7, 1.0 / stride))
        record(trace, "box.pooler_level", levels)
        record(trace, "box.pooled", pooled)
        hidden = self.box_head(pooled.to(features[0].dtype))
        record(trace, "box.head_fc2", hidden)
        logits, deltas = (t.float() for t in self.box_predictor(hidden))
        boxes = apply_deltas(deltas, proposals, ROI_BOX_WEIGHTS)
        scores = F.softmax(logits, dim=-1)
        record(trace, "box.cls_logits", logits)
        record(trace, "box.softmax_scores", scores)
        record(trace, "box.bbox_deltas", deltas)
        record(trace, "box.decoded_boxes", boxes)
        valid = torch.isfinite(boxes).all(dim=1) & torch.isfinite(scores).all(dim=1)
        boxes, scores = clip_boxes(boxes[valid], image_hw), scores[valid, :-1]
        passing = torch.nonzero(scores > SCORE_THRESH)  # (k, 2): proposal, class
        boxes, scores = boxes[passing[:, 0]], scores[passing[:, 0], passing[:, 1]]
        keep = batched_nms(boxes, scores, passing[:, 1], BOX_NMS_THRESH)[:DETECTIONS_PER_IMAGE]
        record(trace, "box.kept_proposal_index", torch.nonzero(valid)[passing[keep, 0], 0])
        return boxes[keep], scores[keep], passing[keep, 1]

    def densepose(self, features: list[Tensor], boxes: Tensor, trace: Trace) -> list[Tensor]:
        """Coarse, fine segmentation and U, V (n, C, 112, 112) for the detected boxes."""
        decoded = self.decoder(features[:4])
        record(trace, "dp.decoder_out", decoded)
        pooled = pool(decoded, boxes, 28, 1.0 / STRIDES[0])
        record(trace, "dp.pooled", pooled)
        hidden = self.densepose_head(pooled.to(decoded.dtype))
        record(trace, "dp.head_out", hidden)
        return self.densepose_predictor(hidden, trace)


class DensePoseNet(nn.Module):
    """The whole model for one image; `state_dict()` keys are detectron2's."""

    def __init__(self, width_divisor: int = 1) -> None:
        super().__init__()
        if width_divisor < 1 or 64 % width_divisor:
            raise ValueError(f"width_divisor must divide 64, got {width_divisor}")
        self.width_divisor = width_divisor
        self.backbone = FPN(width_divisor)
        self.proposal_generator = ProposalGenerator(width_divisor)
        self.roi_heads = ROIHeads(width_divisor)

    def forward(self, image: Tensor, trace: Trace = None) -> Detections:
        """`image`: (3, H, W) BGR 0..255, already resized (ResizeShortestEdge); float32.

        `trace`, when given, receives the intermediates under the reference's names.
        """
        h, w = image.shape[-2:]
        mean = torch.tensor(PIXEL_MEAN, device=image.device).view(3, 1, 1)
        pad_h, pad_w = (-h) % SIZE_DIVISIBILITY, (-w) % SIZE_DIVISIBILITY
        x = F.pad(image.float() - mean, [0, pad_w, 0, pad_h], value=0.0).unsqueeze(0)
        dtype = self.backbone.bottom_up.stem.conv1.weight.dtype
        features = self.backbone(x.to(dtype), trace)
        proposals, _ = self.proposal_generator(features, (h, w), trace)
        boxes, scores, classes = self.roi_heads.detect(features, proposals, (h, w), trace)
        record(trace, "det.resized.boxes", boxes)
        record(trace, "det.resized.scores", scores)
        record(trace, "det.resized.classes", classes)
        if len(boxes):
            charts = self.roi_heads.densepose(features, boxes, trace)
        else:
            charts = [torch.zeros((0, c, 112, 112), device=boxes.device) for c in (2, 25, 25, 25)]
        return Detections(boxes, scores, classes, *charts)


def grid_anchors(size: int, stride: int, hw: tuple[int, int], device: torch.device) -> Tensor:
    """(H*W*A, 4) anchors, location-major then ratio; centres at k*stride (offset 0)."""
    shifts_x = torch.arange(0.0, hw[1] * stride, step=stride, dtype=torch.float32, device=device)
    shifts_y = torch.arange(0.0, hw[0] * stride, step=stride, dtype=torch.float32, device=device)
    shift_y, shift_x = torch.meshgrid(shifts_y, shifts_x, indexing="ij")
    shift_x, shift_y = shift_x.reshape(-1), shift_y.reshape(-1)
    shifts = torch.stack((shift_x, shift_y, shift_x, shift_y), dim=1)
    return (shifts.view(-1, 1, 4) + cell_anchors(size).to(device).view(1, -1, 4)).reshape(-1, 4)


def cell_anchors(size: int) -> Tensor:
    """(A, 4) anchors of one size centred at 0; w = sqrt(size^2 / ratio), h = ratio * w."""
    anchors = []
    for ratio in ANCHOR_RATIOS:
        w = math.sqrt(size**2.0 / ratio)
        h = ratio * w
        anchors.append([-w / 2.0, -h / 2.0, w / 2.0, h / 2.0])
    return torch.tensor(anchors)


def apply_deltas(
    deltas: Tensor, boxes: Tensor, weights: tuple[float, float, float, float]
) -> Tensor:
    """detectron2's Box2BoxTransform.apply_deltas for one class: (R, 4) deltas on (R, 4) boxes."""
    widths = boxes[:, 2] - boxes[:, 0]
    heights = boxes[:, 3] - boxes[:, 1]
    ctr_x = boxes[:, 0] + 0.5 * widths
    ctr_y = boxes[:, 1] + 0.5 * heights
    wx, wy, ww, wh = weights
    dx = deltas[:, 0::4] / wx
    dy = deltas[:, 1::4] / wy
    dw = torch.clamp(deltas[:, 2::4] / ww, max=SCALE_CLAMP)
    dh = torch.clamp(deltas[:, 3::4] / wh, max=SCALE_CLAMP)
    pred_ctr_x = dx * widths[:, None] + ctr_x[:, None]
    pred_ctr_y = dy * heights[:, None] + ctr_y[:, None]
    pred_w = torch.exp(dw) * widths[:, None]
    pred_h = torch.exp(dh) * heights[:, None]
    x1 = pred_ctr_x - 0.5 * pred_w
    y1 = pred_ctr_y - 0.5 * pred_h
    x2 = pred_ctr_x + 0.5 * pred_w
    y2 = pred_ctr_y + 0.5 * pred_h
    return torch.stack((x1, y1, x2, y2), dim=-1).reshape(deltas.shape)


def clip_boxes(boxes: Tensor, hw: tuple[int, int]) -> Tensor:
    h, w = hw
    return torch.stack(
        (
            boxes[:, 0].clamp(min=0, max=w),
            boxes[:, 1].clamp(min=0, max=h),
            boxes[:, 2].clamp(min=0, max=w),
            boxes[:, 3].clamp(min=0, max=h),
        ),
        dim=-1,
    )


def pooler_levels(boxes: Tensor) -> Tensor:
    """FPN level index (0 = p2 .. 3 = p5) of each box: canonical size 224 at level 4."""
    sizes = torch.sqrt((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))
    levels = torch.floor(4 + torch.log2(sizes / 224 + 1e-8))
    return torch.clamp(levels, min=2, max=5).to(torch.int64) - 2


def pool(features: Tensor, boxes: Tensor, size: int, scale: float) -> Tensor:
    """Legacy ROIAlign (aligned=False, sampling ratio 2) of one image's boxes, in fp32."""
    rois = torch.cat([torch.zeros_like(boxes[:, :1]), boxes], dim=1)
    return roi_align(features.float(), rois, (size, size), scale, 2, aligned=False)
