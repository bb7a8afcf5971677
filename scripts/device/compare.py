#!/usr/bin/env python3
"""Prints the engine-vs-PyTorch ratios from the JSON files of scripts/bench/engine.ts and
scripts/device/torch_reference.py:  python3 compare.py ort.json torch.json"""
import json
import sys


def main():
    if len(sys.argv) != 3:
        print(__doc__)
        sys.exit(2)
    with open(sys.argv[1]) as f:
        ort = json.load(f)
    with open(sys.argv[2]) as f:
        torch = json.load(f)
    ref = {r["config"]: r for r in torch["results"] if "error" not in r}
    print(f"PyTorch {torch.get('torch')} on {torch.get('device')}")
    print("| provider | network | params engine / torch | train ms engine | train ms torch | ratio | forward ms engine | forward ms torch | ratio |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in ort["results"]:
        t = ref.get(r["config"])
        if t is None or "error" in r or "skipped" in r:
            why = r.get("error") or r.get("skipped") or "no PyTorch result"
            print(f"| {r['provider']} | {r['config']} | {why} |")
            continue
        tr = r.get("trainMedianMs")
        fw = r.get("forwardMedianMs")
        ratio = lambda a, b: "—" if a is None or not b else f"{a / b:.1f}×"
        num = lambda a: "—" if a is None else f"{a:.1f}"
        print(
            f"| {r['provider']} | {r['config']} | {r.get('params')} / {t['params']} | {num(tr)} | {t['trainMedianMs']:.1f} | "
            f"{ratio(tr, t['trainMedianMs'])} | {num(fw)} | {t['forwardMedianMs']:.1f} | {ratio(fw, t['forwardMedianMs'])} |"
        )
        for op in r.get("topOps") or []:
            print(f"|   | op {op['op']} | | {op['msPerStep']:.1f} ms/step ({op['share'] * 100:.0f}%) | | | | | |")


if __name__ == "__main__":
    main()
