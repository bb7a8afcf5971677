#!/usr/bin/env python3
"""Our own PyTorch reference of SAM's ViT image encoder (the architecture published with
segment-anything: patch embedding, absolute position embedding, windowed and global attention with
decomposed relative positions, MLP, neck), for checking the TypeScript import
(models/src/sam) against PyTorch on identical weights.

`make` builds an encoder, initialises every tensor randomly with a seed (position embeddings and
relative-position tables included, which SAM initialises to zero), saves a state dict with
`torch.save` under the official key names (`image_encoder.…`, plus a few prompt-encoder and
mask-decoder keys as in the published checkpoints), runs it on a seeded image at the requested
input size and writes the image and the embeddings as raw float32 with a JSON description.

Input sizes below the pretrained 1024: the absolute position embedding is resized bilinearly
(align_corners=False) to the token grid, the relative-position tables linearly, as SAM's own
get_rel_pos does.

  /usr/bin/python3 scripts/sam/reference.py make --variant tiny-vit-b --size 256 --out DIR
"""
import argparse
import json
import os
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

VARIANTS = {
    # name: (embed_dim, depth, heads, global_attn_indexes, window)
    "vit_b": (768, 12, 12, (2, 5, 8, 11), 14),
    "vit_l": (1024, 24, 16, (5, 11, 17, 23), 14),
    "vit_h": (1280, 32, 16, (7, 15, 23, 31), 14),
    # reduced configurations for CI: same structure, narrow and shallow
    "tiny-vit-b": (64, 4, 4, (1, 3), 14),
    "tiny-vit-b-w5": (48, 3, 3, (2,), 5),
}


class LayerNorm2d(nn.Module):
    def __init__(self, c, eps=1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(c))
        self.bias = nn.Parameter(torch.zeros(c))
        self.eps = eps

    def forward(self, x):
        u = x.mean(1, keepdim=True)
        s = (x - u).pow(2).mean(1, keepdim=True)
        x = (x - u) / torch.sqrt(s + self.eps)
        return self.weight[:, None, None] * x + self.bias[:, None, None]


def get_rel_pos(q_size, k_size, rel_pos):
    max_rel_dist = int(2 * max(q_size, k_size) - 1)
    if rel_pos.shape[0] != max_rel_dist:
        r = F.interpolate(rel_pos.reshape(1, rel_pos.shape[0], -1).permute(0, 2, 1), size=max_rel_dist, mode="linear")
        r = r.reshape(-1, max_rel_dist).permute(1, 0)
    else:
        r = rel_pos
    q = torch.arange(q_size)[:, None] * max(k_size / q_size, 1.0)
    k = torch.arange(k_size)[None, :] * max(q_size / k_size, 1.0)
    rel = (q - k) + (k_size - 1) * max(q_size / k_size, 1.0)
    return r[rel.long()]


class Attention(nn.Module):
    def __init__(self, dim, heads, input_size):
        super().__init__()
        self.heads = heads
        hd = dim // heads
        self.scale = hd ** -0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=True)
        self.proj = nn.Linear(dim, dim)
        self.rel_pos_h = nn.Parameter(torch.zeros(2 * input_size[0] - 1, hd))
        self.rel_pos_w = nn.Parameter(torch.zeros(2 * input_size[1] - 1, hd))

    def forward(self, x):
        B, H, W, _ = x.shape
        qkv = self.qkv(x).reshape(B, H * W, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.reshape(3, B * self.heads, H * W, -1).unbind(0)
        attn = (q * self.scale) @ k.transpose(-2, -1)
        Rh = get_rel_pos(H, H, self.rel_pos_h)
        Rw = get_rel_pos(W, W, self.rel_pos_w)
        r_q = q.reshape(B * self.heads, H, W, -1)
        rel_h = torch.einsum("bhwc,hkc->bhwk", r_q, Rh)
        rel_w = torch.einsum("bhwc,wkc->bhwk", r_q, Rw)
        attn = (attn.view(-1, H, W, H, W) + rel_h[:, :, :, :, None] + rel_w[:, :, :, None, :]).view(-1, H * W, H * W)
        attn = attn.softmax(dim=-1)
        x = (attn @ v).view(B, self.heads, H, W, -1).permute(0, 2, 3, 1, 4).reshape(B, H, W, -1)
        return self.proj(x)


def window_partition(x, ws):
    B, H, W, C = x.shape
    ph = (ws - H % ws) % ws
    pw = (ws - W % ws) % ws
    if ph or pw:
        x = F.pad(x, (0, 0, 0, pw, 0, ph))
    Hp, Wp = H + ph, W + pw
    x = x.view(B, Hp // ws, ws, Wp // ws, ws, C)
    return x.permute(0, 1, 3, 2, 4, 5).contiguous().view(-1, ws, ws, C), (Hp, Wp)


def window_unpartition(w, ws, pad_hw, hw):
    Hp, Wp = pad_hw
    H, W = hw
    B = w.shape[0] // (Hp * Wp // ws // ws)
    x = w.view(B, Hp // ws, Wp // ws, ws, ws, -1)
    x = x.permute(0, 1, 3, 2, 4, 5).contiguous().view(B, Hp, Wp, -1)
    return x[:, :H, :W, :].contiguous()


class MLPBlock(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.lin1 = nn.Linear(dim, hidden)
        self.lin2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.lin2(F.gelu(self.lin1(x)))


class Block(nn.Module):
    def __init__(self, dim, heads, window, grid):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, heads, grid if window == 0 else (window, window))
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = MLPBlock(dim, dim * 4)
        self.window = window

    def forward(self, x):
        shortcut = x
        x = self.norm1(x)
        if self.window > 0:
            H, W = x.shape[1], x.shape[2]
            x, pad_hw = window_partition(x, self.window)
        x = self.attn(x)
        if self.window > 0:
            x = window_unpartition(x, self.window, pad_hw, (H, W))
        x = shortcut + x
        return x + self.mlp(self.norm2(x))


class PatchEmbed(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.proj = nn.Conv2d(3, dim, kernel_size=16, stride=16)

    def forward(self, x):
        return self.proj(x).permute(0, 2, 3, 1)


class ImageEncoderViT(nn.Module):
    def __init__(self, dim, depth, heads, global_idx, window, img_size=1024, out_chans=256):
        super().__init__()
        g = img_size // 16
        self.patch_embed = PatchEmbed(dim)
        self.pos_embed = nn.Parameter(torch.zeros(1, g, g, dim))
        self.blocks = nn.ModuleList(
            [Block(dim, heads, 0 if i in global_idx else window, (g, g)) for i in range(depth)]
        )
        self.neck = nn.Sequential(
            nn.Conv2d(dim, out_chans, 1, bias=False),
            LayerNorm2d(out_chans),
            nn.Conv2d(out_chans, out_chans, 3, padding=1, bias=False),
            LayerNorm2d(out_chans),
        )

    def forward(self, x):
        x = self.patch_embed(x)
        pe = self.pos_embed
        if pe.shape[1:3] != x.shape[1:3]:
            pe = F.interpolate(pe.permute(0, 3, 1, 2), size=x.shape[1:3], mode="bilinear", align_corners=False).permute(0, 2, 3, 1)
        x = x + pe
        for b in self.blocks:
            x = b(x)
        return self.neck(x.permute(0, 3, 1, 2))


def randomise(model, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("weight") and ("norm" in name or name.startswith("neck.1") or name.startswith("neck.3")):
                p.copy_(1 + 0.1 * torch.randn(p.shape, generator=g))
            elif p.dim() >= 2 and "rel_pos" not in name and "pos_embed" not in name:
                fan_in = p[0].numel()
                p.copy_(torch.randn(p.shape, generator=g) / fan_in ** 0.5)
            else:
                p.copy_(0.1 * torch.randn(p.shape, generator=g))


def state_dict_official(model):
    sd = {f"image_encoder.{k}": v for k, v in model.state_dict().items()}
    # the published checkpoints hold the whole SAM: a few of the other parts' keys
    sd["prompt_encoder.pe_layer.positional_encoding_gaussian_matrix"] = torch.randn(2, 128)
    sd["mask_decoder.iou_token.weight"] = torch.randn(1, 256)
    sd["mask_decoder.mask_tokens.weight"] = torch.randn(4, 256)
    return sd


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    mk = sub.add_parser("make")
    mk.add_argument("--variant", required=True, choices=sorted(VARIANTS))
    mk.add_argument("--size", type=int, default=256)
    mk.add_argument("--seed", type=int, default=0)
    mk.add_argument("--out", required=True)
    mk.add_argument("--name", default="checkpoint.pth")
    mk.add_argument("--threads", type=int, default=2)
    mk.add_argument("--repeats", type=int, default=1, help="forward runs to time (median reported)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    dim, depth, heads, gidx, window = VARIANTS[a.variant]
    torch.manual_seed(a.seed)
    model = ImageEncoderViT(dim, depth, heads, gidx, window).eval()
    randomise(model, a.seed)
    os.makedirs(a.out, exist_ok=True)
    torch.save(state_dict_official(model), os.path.join(a.out, a.name))
    img = torch.randn(1, 3, a.size, a.size, generator=torch.Generator().manual_seed(a.seed + 1))
    times = []
    with torch.no_grad():
        for _ in range(max(1, a.repeats)):
            t0 = time.perf_counter()
            emb = model(img)
            times.append(time.perf_counter() - t0)
    img.numpy().astype("float32").tofile(os.path.join(a.out, "image.f32"))
    emb.numpy().astype("float32").tofile(os.path.join(a.out, "embeddings.f32"))
    times.sort()
    info = {
        "variant": a.variant,
        "size": a.size,
        "seed": a.seed,
        "imageShape": list(img.shape),
        "embeddingShape": list(emb.shape),
        "params": sum(p.numel() for p in model.parameters()),
        "forwardMedianMs": 1000 * times[len(times) // 2],
        "threads": a.threads,
        "torch": torch.__version__,
    }
    with open(os.path.join(a.out, "reference.json"), "w") as f:
        json.dump(info, f, indent=2)
    print(json.dumps(info))


if __name__ == "__main__":
    main()
