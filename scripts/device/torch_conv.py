#!/usr/bin/env python3
"""PyTorch + cuDNN per 3-D convolution layer (3x3x3, pad 1, stride 1, batch 1, no bias): forward,
input gradient and weight gradient, CUDA-synchronised medians, beside the engine's WGSL kernels
(scripts/bench/gpu-conv.ts --json) when given, with the ratios engine / PyTorch.

  python3 scripts/device/torch_conv.py --layers 8x8@64,16x16@128,32x32@64,64x64@32 --ours wgsl.json
"""
import argparse
import json
import re
import statistics
import time

import torch
import torch.nn.functional as F

from torch_reference import sync  # the same folder: run as python3 scripts/device/torch_conv.py


def parse_layer(text):
    m = re.fullmatch(r"(\d+)x(\d+)@(\d+)(?:x(\d+)x(\d+))?", text.strip())
    if not m:
        raise SystemExit(f"--layers: '{text}' is not CINxCOUT@SIZE")
    d = int(m.group(3))
    return int(m.group(1)), int(m.group(2)), (d, int(m.group(4) or d), int(m.group(5) or d))


def timed(fn, device, warmup, runs):
    for _ in range(warmup):
        fn()
    sync(device)
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        sync(device)
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--layers", default="8x8@64,16x16@128,32x32@64,64x64@32")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--ours", help="scripts/bench/gpu-conv.ts --json output, for the ratio table")
    ap.add_argument("--json")
    a = ap.parse_args()
    dev = torch.device(a.device)
    torch.backends.cudnn.benchmark = False
    rows = []
    for text in a.layers.split(","):
        cin, cout, (d, h, w) = parse_layer(text)
        x = torch.randn(1, cin, d, h, w, device=dev)
        wt = torch.randn(cout, cin, 3, 3, 3, device=dev)
        dy = torch.randn(1, cout, d, h, w, device=dev)

        def backward(mask):
            return torch.ops.aten.convolution_backward(
                dy, x, wt, None, [1, 1, 1], [1, 1, 1], [1, 1, 1], False, [0, 0, 0], 1, mask
            )

        with torch.no_grad():
            fwd = timed(lambda: F.conv3d(x, wt, padding=1), dev, a.warmup, a.runs)
            gin = timed(lambda: backward([True, False, False]), dev, a.warmup, a.runs)
            gw = timed(lambda: backward([False, True, False]), dev, a.warmup, a.runs)
        rows.append({"layer": f"{cin}→{cout} @ {d}×{h}×{w}", "forward": fwd, "gradInput": gin, "gradWeight": gw})
        print(f"{rows[-1]['layer']}: PyTorch forward {fwd:.3f} ms, input grad {gin:.3f} ms, weight grad {gw:.3f} ms", flush=True)
    name = torch.cuda.get_device_name() if dev.type == "cuda" else "cpu"
    print(f"\nPyTorch {torch.__version__} on {name}, cuDNN autotuning off")
    ours = {}
    if a.ours:
        try:
            with open(a.ours) as f:
                for r in json.load(f)["results"]:
                    ours[r["layer"]] = r["ms"]
        except (OSError, ValueError, KeyError) as e:
            print(f"(no WGSL results to compare: {a.ours}: {e})")
    print("| layer (3³, pad 1) | fwd ms WGSL / PyTorch | ratio | grad-input ms | ratio | grad-weight ms | ratio |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        o = ours.get(r["layer"])
        cells = []
        for k in ("forward", "gradInput", "gradWeight"):
            if o:
                cells += [f"{o[k]:.2f} / {r[k]:.3f}", f"{o[k] / r[k]:.0f}×"]
            else:
                cells += [f"— / {r[k]:.3f}", "—"]
        print(f"| {r['layer']} | " + " | ".join(cells) + " |")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"torch": torch.__version__, "device": name, "results": rows}, f, indent=2)


if __name__ == "__main__":
    main()
