#!/usr/bin/env python3
"""PyTorch twin of the engine benchmark networks (scripts/bench/networks.ts), for speed ratios.

Mirrors layer for layer: U-Net blocks of two [Conv3d 3x3x3 (bias, pad 1) -> InstanceNorm3d (affine,
eps 1e-5) -> LeakyReLU 0.01], MaxPool3d 2 down, nearest x2 up, cat([up, skip]), 1x1x1 head; soft
Dice + cross-entropy; the registration net (widths 16-32-32-32 over cat([atlas, target])) with a
trilinear warp, 1 - LNCC (9^3 window) + smoothness. AdamW (lr 1e-3, weight decay 1e-4).

Prints a table and writes JSON: per config the train-step and forward medians (ms, CUDA-synchronised),
the peak CUDA memory (MiB) and the parameter count (to check it matches the engine's).

  python3 scripts/device/torch_reference.py --configs unet-b8-64,unet-b16-128,reg-128 --json out.json
"""
import argparse
import json
import math
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def widths(base, levels, max_width=None):
    return [min(base * 2**l, max_width or 10**9) for l in range(levels)]


class Block(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.c0 = nn.Conv3d(cin, cout, 3, padding=1)
        self.n0 = nn.InstanceNorm3d(cout, affine=True, eps=1e-5)
        self.c1 = nn.Conv3d(cout, cout, 3, padding=1)
        self.n1 = nn.InstanceNorm3d(cout, affine=True, eps=1e-5)

    def forward(self, x):
        x = F.leaky_relu(self.n0(self.c0(x)), 0.01)
        return F.leaky_relu(self.n1(self.c1(x)), 0.01)


class UNet(nn.Module):
    def __init__(self, cin, cout, base, levels, max_width=None, head_std=None):
        super().__init__()
        w = widths(base, levels, max_width)
        self.levels = levels
        self.enc = nn.ModuleList()
        c = cin
        for l in range(levels):
            self.enc.append(Block(c, w[l]))
            c = w[l]
        self.dec = nn.ModuleList()
        for l in range(levels - 2, -1, -1):
            self.dec.append(Block(c + w[l], w[l]))
            c = w[l]
        self.head = nn.Conv3d(c, cout, 1)
        if head_std is not None:
            nn.init.normal_(self.head.weight, std=head_std)
            nn.init.zeros_(self.head.bias)

    def forward(self, x):
        skips = []
        for l, blk in enumerate(self.enc):
            x = blk(x)
            if l < self.levels - 1:
                skips.append(x)
                x = F.max_pool3d(x, 2)
        for blk in self.dec:
            x = F.interpolate(x, scale_factor=2, mode="nearest")
            x = blk(torch.cat([x, skips.pop()], 1))
        return self.head(x)


def dice_ce(logits, target):
    p = torch.softmax(logits, 1)
    axes = (0, 2, 3, 4)
    inter = (p * target).sum(axes)
    denom = p.sum(axes) + target.sum(axes)
    dice = (2 * inter + 1e-5) / (denom + 1e-5)
    voxels = logits.shape[2] * logits.shape[3] * logits.shape[4]
    ce = -(target * torch.log_softmax(logits, 1)).sum() / voxels
    return (1 - dice.mean()) + ce


def lncc(a, b, win=9):
    ones = torch.ones(1, 1, win, win, win, device=a.device)
    pad = win // 2
    box = lambda v: F.conv3d(v, ones, padding=pad)
    n = win**3
    sa, sb, saa, sbb, sab = box(a), box(b), box(a * a), box(b * b), box(a * b)
    cross = sab - sa * sb / n
    va = saa - sa * sa / n
    vb = sbb - sb * sb / n
    cc = cross * cross / (va * vb + 1e-5)
    return 1 - cc.mean()


def smoothness(disp):
    t = 0
    for axis in (2, 3, 4):
        d = disp.narrow(axis, 1, disp.shape[axis] - 1) - disp.narrow(axis, 0, disp.shape[axis] - 1)
        t = t + (d * d).mean()
    return t / 3


def warp3d(vol, disp):
    """Trilinear sampling of vol at grid + disp (voxels; channel 0 along D, 1 H, 2 W), border clamp."""
    n, c, d, h, w = vol.shape
    zz, yy, xx = torch.meshgrid(
        torch.arange(d, device=vol.device, dtype=vol.dtype),
        torch.arange(h, device=vol.device, dtype=vol.dtype),
        torch.arange(w, device=vol.device, dtype=vol.dtype),
        indexing="ij",
    )
    z = (zz + disp[:, 0]).clamp(0, d - 1)
    y = (yy + disp[:, 1]).clamp(0, h - 1)
    x = (xx + disp[:, 2]).clamp(0, w - 1)
    # grid_sample wants (x, y, z) in [-1, 1] with align_corners=True
    grid = torch.stack([x / (w - 1) * 2 - 1, y / (h - 1) * 2 - 1, z / (d - 1) * 2 - 1], -1)
    return F.grid_sample(vol, grid, mode="bilinear", padding_mode="border", align_corners=True)


def smooth_volume(shape, phase, device):
    n, c, d, h, w = shape
    z = torch.arange(d, device=device).view(d, 1, 1) / d
    y = torch.arange(h, device=device).view(1, h, 1) / h
    x = torch.arange(w, device=device).view(1, 1, w) / w
    v = torch.sin(x * 6.1 + phase) * torch.cos(y * 4.3) + torch.sin(z * 5.2 - phase)
    return v.expand(n, c, d, h, w).contiguous().float()


def make(config, device):
    if config.startswith("unet"):
        base = int(config.split("-")[1][1:])
        size = int(config.split("-")[2])
        net = UNet(1, 3, base, 3).to(device)
        img = smooth_volume((1, 1, size, size, size), 0, device)
        lab = torch.where(img < -0.5, 1, torch.where(img > 0.5, 2, 0))[:, 0]
        tgt = F.one_hot(lab, 3).permute(0, 4, 1, 2, 3).float()
        loss_fn = lambda: dice_ce(net(img), tgt)
        fwd = lambda: net(img)
    else:
        size = int(config.split("-")[1])
        net = UNet(2, 3, 16, 4, max_width=32, head_std=1e-5).to(device)
        atlas = smooth_volume((1, 1, size, size, size), 0, device)
        target = smooth_volume((1, 1, size, size, size), 0.3, device)
        x = torch.cat([atlas, target], 1)

        def loss_fn():
            disp = net(x)
            return lncc(warp3d(atlas, disp), target) + 1.0 * smoothness(disp)

        fwd = lambda: net(x)
    return net, loss_fn, fwd


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def bench(config, device, warmup, steps):
    torch.manual_seed(0)
    net, loss_fn, fwd = make(config, device)
    params = sum(p.numel() for p in net.parameters())
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=1e-4)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times, losses = [], []
    for i in range(warmup + steps):
        sync(device)
        t = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = loss_fn()
        loss.backward()
        opt.step()
        losses.append(loss.item())  # also synchronises
        sync(device)
        if i >= warmup:
            times.append((time.perf_counter() - t) * 1000)
    ftimes = []
    with torch.no_grad():
        for i in range(warmup + steps):
            sync(device)
            t = time.perf_counter()
            fwd()
            sync(device)
            if i >= warmup:
                ftimes.append((time.perf_counter() - t) * 1000)
    peak = torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else None
    return {
        "config": config,
        "params": params,
        "trainMedianMs": statistics.median(times),
        "forwardMedianMs": statistics.median(ftimes),
        "peakCudaMiB": peak,
        "firstLoss": losses[0],
        "lastLoss": losses[-1],
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--configs", default="unet-b8-64,unet-b16-128,reg-128")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--cudnn-benchmark", action="store_true", help="let cuDNN autotune (off by default)")
    ap.add_argument("--json")
    a = ap.parse_args()
    device = torch.device(a.device)
    torch.backends.cudnn.benchmark = a.cudnn_benchmark
    out = {"torch": torch.__version__, "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu", "results": []}
    print(f"PyTorch {torch.__version__} on {out['device']}, {a.warmup} warm-up + {a.steps} timed steps, AdamW")
    print("| network | params | train step ms (median) | forward ms (median) | peak CUDA MiB | loss |")
    print("| --- | --- | --- | --- | --- | --- |")
    for config in [c for c in a.configs.split(",") if c]:
        try:
            r = bench(config, device, a.warmup, a.steps)
        except Exception as e:  # report and go on with the next network
            r = {"config": config, "error": str(e).splitlines()[0][:300]}
            print(f"| {config} | error: {r['error']} |")
        else:
            peak = "—" if r["peakCudaMiB"] is None else f"{r['peakCudaMiB']:.0f}"
            print(
                f"| {config} | {r['params'] / 1000:.1f}k | {r['trainMedianMs']:.1f} | {r['forwardMedianMs']:.1f} | {peak} "
                f"| {r['firstLoss']:.4f} -> {r['lastLoss']:.4f} |"
            )
        out["results"].append(r)
        sys.stdout.flush()
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=2)


if __name__ == "__main__":
    main()
