#!/usr/bin/env python3
"""Our own PyTorch reference of SAM's ViT image encoder (the architecture published with
segment-anything: patch embedding, absolute position embedding, windowed and global attention with
decomposed relative positions, MLP, neck) and of MobileSAM's TinyViT (conv patch embedding, MBConv
stage, patch merging, windowed attention with learned offset biases, local depth-wise conv, MLP,
the same neck), for checking the TypeScript import (models/src/sam) against PyTorch on identical
weights. BatchNorm runs in eval mode with random running statistics.

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


# ------------------------------------------------------------------ MobileSAM's TinyViT

TINY_VARIANTS = {
    # name: (embed_dims, depths, heads, window_sizes)
    "mobile_sam": ((64, 128, 160, 320), (2, 2, 6, 2), (2, 4, 5, 10), (7, 7, 14, 7)),
    "tiny-mobile-sam": ((16, 32, 40, 320), (1, 1, 2, 1), (1, 2, 2, 8), (7, 7, 14, 7)),
}


class Conv2dBN(nn.Sequential):
    def __init__(self, a, b, ks=1, stride=1, pad=0, groups=1):
        super().__init__()
        self.add_module("c", nn.Conv2d(a, b, ks, stride, pad, groups=groups, bias=False))
        self.add_module("bn", nn.BatchNorm2d(b))


class MBConv(nn.Module):
    def __init__(self, c, ratio=4):
        super().__init__()
        h = c * ratio
        self.conv1 = Conv2dBN(c, h)
        self.conv2 = Conv2dBN(h, h, 3, 1, 1, groups=h)
        self.conv3 = Conv2dBN(h, c)

    def forward(self, x):
        y = F.gelu(self.conv1(x))
        y = F.gelu(self.conv2(y))
        return F.gelu(self.conv3(y) + x)


class PatchMerging(nn.Module):
    def __init__(self, dim, out_dim):
        super().__init__()
        self.conv1 = Conv2dBN(dim, out_dim)
        self.conv2 = Conv2dBN(out_dim, out_dim, 3, 1 if out_dim in (320, 448, 576) else 2, 1, groups=out_dim)
        self.conv3 = Conv2dBN(out_dim, out_dim)

    def forward(self, x, hw):
        if x.dim() == 3:
            B, N, C = x.shape
            x = x.view(B, hw[0], hw[1], C).permute(0, 3, 1, 2)
        x = F.gelu(self.conv1(x))
        x = F.gelu(self.conv2(x))
        x = self.conv3(x)
        return x.flatten(2).transpose(1, 2), (x.shape[2], x.shape[3])


class TinyAttention(nn.Module):
    def __init__(self, dim, heads, ws):
        super().__init__()
        self.heads = heads
        self.kd = dim // heads
        self.norm = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        pts = [(y, x) for y in range(ws) for x in range(ws)]
        offsets, idxs = {}, []
        for p1 in pts:
            for p2 in pts:
                o = (abs(p1[0] - p2[0]), abs(p1[1] - p2[1]))
                offsets.setdefault(o, len(offsets))
                idxs.append(offsets[o])
        self.attention_biases = nn.Parameter(torch.zeros(heads, len(offsets)))
        self.register_buffer("attention_bias_idxs", torch.LongTensor(idxs).view(len(pts), len(pts)), persistent=False)

    def forward(self, x):
        B, N, _ = x.shape
        x = self.norm(x)
        q, k, v = self.qkv(x).view(B, N, self.heads, -1).split([self.kd, self.kd, self.kd], dim=3)
        q, k, v = (t.permute(0, 2, 1, 3) for t in (q, k, v))
        attn = (q @ k.transpose(-2, -1)) * self.kd ** -0.5 + self.attention_biases[:, self.attention_bias_idxs]
        x = (attn.softmax(-1) @ v).transpose(1, 2).reshape(B, N, -1)
        return self.proj(x)


class TinyMlp(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, 4 * dim)
        self.fc2 = nn.Linear(4 * dim, dim)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(self.norm(x))))


class TinyViTBlock(nn.Module):
    def __init__(self, dim, heads, ws):
        super().__init__()
        self.ws = ws
        self.attn = TinyAttention(dim, heads, ws)
        self.local_conv = Conv2dBN(dim, dim, 3, 1, 1, groups=dim)
        self.mlp = TinyMlp(dim)

    def forward(self, x, hw):
        H, W = hw
        B, L, C = x.shape
        res = x
        ws = self.ws
        if H == ws and W == ws:
            x = self.attn(x)
        else:
            x = x.view(B, H, W, C)
            pb, pr = (ws - H % ws) % ws, (ws - W % ws) % ws
            if pb or pr:
                x = F.pad(x, (0, 0, 0, pr, 0, pb))
            pH, pW = H + pb, W + pr
            nH, nW = pH // ws, pW // ws
            x = x.view(B, nH, ws, nW, ws, C).transpose(2, 3).reshape(B * nH * nW, ws * ws, C)
            x = self.attn(x)
            x = x.view(B, nH, nW, ws, ws, C).transpose(2, 3).reshape(B, pH, pW, C)
            x = x[:, :H, :W].contiguous().view(B, L, C)
        x = res + x
        x = self.local_conv(x.transpose(1, 2).reshape(B, C, H, W)).view(B, C, L).transpose(1, 2)
        return x + self.mlp(x)


class TinyLayer(nn.Module):
    def __init__(self, dim, depth, heads, ws, out_dim, conv):
        super().__init__()
        self.conv = conv
        self.blocks = nn.ModuleList([MBConv(dim) if conv else TinyViTBlock(dim, heads, ws) for _ in range(depth)])
        self.downsample = PatchMerging(dim, out_dim) if out_dim else None

    def forward(self, x, hw):
        for b in self.blocks:
            x = b(x) if self.conv else b(x, hw)
        return self.downsample(x, hw) if self.downsample else (x, hw)


class TinyViT(nn.Module):
    def __init__(self, dims, depths, heads, windows):
        super().__init__()
        self.patch_embed = nn.Module()
        self.patch_embed.seq = nn.Sequential(Conv2dBN(3, dims[0] // 2, 3, 2, 1), nn.GELU(), Conv2dBN(dims[0] // 2, dims[0], 3, 2, 1))
        self.layers = nn.ModuleList(
            [TinyLayer(dims[i], depths[i], heads[i], windows[i], dims[i + 1] if i < 3 else None, i == 0) for i in range(4)]
        )
        self.norm_head = nn.LayerNorm(dims[-1])
        self.head = nn.Linear(dims[-1], 1000)
        self.neck = nn.Sequential(
            nn.Conv2d(dims[-1], 256, 1, bias=False), LayerNorm2d(256), nn.Conv2d(256, 256, 3, padding=1, bias=False), LayerNorm2d(256)
        )

    def forward(self, x):
        x = self.patch_embed.seq(x)
        hw = (x.shape[2], x.shape[3])
        for layer in self.layers:
            x, hw = layer(x, hw)
        B, _, C = x.shape
        g = hw[0]
        return self.neck(x.view(B, g, g, C).permute(0, 3, 1, 2))


def randomise(model, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("weight") and ("norm" in name or ".bn." in name or name.startswith("neck.1") or name.startswith("neck.3")):
                p.copy_(1 + 0.1 * torch.randn(p.shape, generator=g))
            elif p.dim() >= 2 and "rel_pos" not in name and "pos_embed" not in name:
                fan_in = p[0].numel()
                p.copy_(torch.randn(p.shape, generator=g) / fan_in ** 0.5)
            else:
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
        for name, b in model.named_buffers():
            if name.endswith("running_mean"):
                b.copy_(0.1 * torch.randn(b.shape, generator=g))
            elif name.endswith("running_var"):
                b.copy_(0.5 + torch.rand(b.shape, generator=g))


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
    mk.add_argument("--variant", required=True, choices=sorted(VARIANTS) + sorted(TINY_VARIANTS))
    mk.add_argument("--size", type=int, default=256)
    mk.add_argument("--seed", type=int, default=0)
    mk.add_argument("--out", required=True)
    mk.add_argument("--name", default="checkpoint.pth")
    mk.add_argument("--threads", type=int, default=2)
    mk.add_argument("--repeats", type=int, default=1, help="forward runs to time (median reported)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    if a.variant in TINY_VARIANTS:
        model = TinyViT(*TINY_VARIANTS[a.variant]).eval()
    else:
        dim, depth, heads, gidx, window = VARIANTS[a.variant]
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
