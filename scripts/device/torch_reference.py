#!/usr/bin/env python3
"""PyTorch twin of the engine benchmark networks (models/src/engine/nn/bench.ts, which uses the engine's
models/src/engine/nn), for speed ratios.

Mirrors layer for layer: the reference U-Net (4 scales, widths base*2^l, one block per level of
[Conv3d 3x3x3 (bias, pad 1) -> InstanceNorm3d (affine, eps 1e-5) -> LeakyReLU 0.01], MaxPool3d 2,
nearest x2 up, cat([skip, up]), 1x1x1 head, soft Dice over the foreground classes); the
registration net (the same U-Net over cat([moving, fixed]) with base 16, LeakyReLU 0.2, a
16-channel output -> LeakyReLU -> 1x1x1 conv to 3 (init N(0, 1e-5)), trilinear warp,
-LNCC (9^3 window, average pools) + smoothness). AdamW (lr 1e-3, weight decay 1e-4).

Prints a table and writes JSON: per config the train-step and forward medians (ms, CUDA-synchronised),
the peak CUDA memory (MiB) and the parameter count (it must match the engine's).

  python3 scripts/device/torch_reference.py --configs unet-b8-64,unet-b16-128,reg-128 --json out.json
"""
import argparse
import json
import math
import resource
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, cin, cout, slope):
        super().__init__()
        self.conv = nn.Conv3d(cin, cout, 3, padding=1)
        self.norm = nn.InstanceNorm3d(cout, affine=True, eps=1e-5)
        self.slope = slope

    def forward(self, x):
        return F.leaky_relu(self.norm(self.conv(x)), self.slope)


class UNet(nn.Module):
    """models/src/engine/nn/unet.ts#unet3d: convsPerLevel blocks per level, MaxPool down, nearest up."""

    def __init__(self, cin, cout, base, depth=4, convs=1, slope=0.01):
        super().__init__()
        w = [base * 2**l for l in range(depth)]
        self.depth = depth
        self.enc = nn.ModuleList()
        c = cin
        for l in range(depth):
            self.enc.append(nn.Sequential(*[Block(c if i == 0 else w[l], w[l], slope) for i in range(convs)]))
            c = w[l]
        self.dec = nn.ModuleList()
        for l in range(depth - 2, -1, -1):
            self.dec.append(nn.Sequential(*[Block(w[l] + c if i == 0 else w[l], w[l], slope) for i in range(convs)]))
            c = w[l]
        self.head = nn.Conv3d(c, cout, 1)

    def forward(self, x):
        skips = []
        for l, blk in enumerate(self.enc):
            x = blk(x)
            if l < self.depth - 1:
                skips.append(x)
                x = F.max_pool3d(x, 2)
        for blk in self.dec:
            x = F.interpolate(x, scale_factor=2, mode="nearest")
            x = blk(torch.cat([skips.pop(), x], 1))
        return self.head(x)


class RegNet(nn.Module):
    """models/src/engine/nn/registration.ts#registrationNet with its defaults."""

    def __init__(self, base=16, depth=4, slope=0.2):
        super().__init__()
        self.unet = UNet(2, base, base, depth, 1, slope)
        self.flow = nn.Conv3d(base, 3, 1)
        nn.init.normal_(self.flow.weight, std=1e-5)
        nn.init.zeros_(self.flow.bias)
        self.slope = slope

    def forward(self, moving, fixed):
        feat = F.leaky_relu(self.unet(torch.cat([moving, fixed], 1)), self.slope)
        return self.flow(feat)


def soft_dice(logits, target, smooth=1e-5):
    """models/src/engine/losses/losses.ts#softDiceLoss (foreground classes only)."""
    p = torch.softmax(logits, 1)
    axes = (0, 2, 3, 4)
    inter = (p * target).sum(axes)[1:]
    denom = (p.sum(axes) + target.sum(axes))[1:]
    dice = (2 * inter + smooth) / (denom + smooth)
    return 1 - dice.mean()


def lncc(a, b, win=9, eps=1e-5):
    """losses.ts#lnccLoss: window means with zero padding (count_include_pad), returns -mean(cc)."""
    pool = lambda v: F.avg_pool3d(v, win, stride=1, padding=win // 2, count_include_pad=True)
    ma, mb, maa, mbb, mab = pool(a), pool(b), pool(a * a), pool(b * b), pool(a * b)
    cross = mab - ma * mb
    va = maa - ma * ma
    vb = mbb - mb * mb
    cc = cross * cross / (va * vb + eps)
    return -cc.mean()


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
        net = UNet(1, 3, base).to(device)
        img = smooth_volume((1, 1, size, size, size), 0, device)
        lab = torch.where(img < -0.5, 1, torch.where(img > 0.5, 2, 0))[:, 0]
        tgt = F.one_hot(lab, 3).permute(0, 4, 1, 2, 3).float()
        loss_fn = lambda: soft_dice(net(img), tgt)
        fwd = lambda: net(img)
    else:
        size = int(config.split("-")[1])
        net = RegNet().to(device)
        moving = smooth_volume((1, 1, size, size, size), 0, device)
        fixed = smooth_volume((1, 1, size, size, size), 0.3, device)

        def loss_fn():
            disp = net(moving, fixed)
            return lncc(warp3d(moving, disp), fixed) + 1.0 * smoothness(disp)

        fwd = lambda: net(moving, fixed)
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
        "threads": torch.get_num_threads(),
        # The process's RSS high-water mark (Linux: KiB); per network when run one per process.
        "peakRssMiB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
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
    ap.add_argument("--threads", type=int, help="intra-op threads on the CPU (default: PyTorch's)")
    ap.add_argument("--json")
    a = ap.parse_args()
    device = torch.device(a.device)
    if a.threads:
        torch.set_num_threads(a.threads)
        torch.set_num_interop_threads(1)
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
