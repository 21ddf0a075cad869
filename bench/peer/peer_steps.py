#!/usr/bin/env python3
"""The Python PyTorch peer of bench/peer_steps.cpp: the same six steps, the same networks (parameter
counts checked), shapes, optimizers and loops, written as a researcher would write them in Python.

    python3 bench/peer/peer_steps.py STEP [--threads T] [--iterations N] [--warmup W] [--repeats R]

Prints "STEP SECONDS_PER_ITERATION" once per repeat, as msd_peer_bench does. Optimizers are PyTorch's
own with their default implementation. Uses Debian's python3-torch (LibTorch 1.13, as the platform).
"""
import argparse
import copy
import math
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

SIGMA_DATA = 0.5
P_MEAN, P_STD = -1.2, 1.2


def precondition(sigma):
    s2 = sigma * sigma
    denom = (s2 + SIGMA_DATA ** 2).sqrt()
    return SIGMA_DATA ** 2 / (s2 + SIGMA_DATA ** 2), sigma * SIGMA_DATA / denom, 1.0 / denom, sigma.log() / 4.0


def per_sample(t, like):
    return t.view(-1, *([1] * (like.dim() - 1)))


def weighted_denoising_loss(denoised, target, sigma):
    weight = (sigma * sigma + SIGMA_DATA ** 2) / (sigma * sigma * SIGMA_DATA ** 2)
    return (per_sample(weight, denoised) * (denoised - target).pow(2)).mean()


def karras(n, sigma_min=0.002, sigma_max=80.0, rho=7.0):
    a, b = sigma_max ** (1 / rho), sigma_min ** (1 / rho)
    return [(a + i / (n - 1) * (b - a)) ** rho for i in range(n)] + [0.0]


class Mlp(nn.Module):
    """toy::MlpDenoiser: residual MLP, Fourier noise embedding plus class embedding."""

    def __init__(self, dim=2, classes=5, hidden=128, blocks=3, embed=64):
        super().__init__()
        self.register_buffer("frequencies", torch.exp(torch.linspace(0.0, math.log(100.0), embed // 2)))
        self.noise_proj = nn.Linear(embed, embed)
        self.class_embed = nn.Embedding(classes, embed)
        self.input_proj = nn.Linear(dim, hidden)
        self.first = nn.ModuleList(nn.Linear(hidden, hidden) for _ in range(blocks))
        self.cond = nn.ModuleList(nn.Linear(embed, hidden) for _ in range(blocks))
        self.second = nn.ModuleList(nn.Linear(hidden, hidden) for _ in range(blocks))
        self.output_proj = nn.Linear(hidden, dim)

    def forward(self, x, sigma, labels):
        c_skip, c_out, c_in, c_noise = precondition(sigma.reshape(-1, 1))
        angles = c_noise * self.frequencies.unsqueeze(0)
        emb = F.silu(self.noise_proj(torch.cat([angles.sin(), angles.cos()], 1)) + self.class_embed(labels))
        h = self.input_proj(c_in * x)
        for first, cond, second in zip(self.first, self.cond, self.second):
            h = h + second(F.silu(first(F.silu(h)) + cond(emb)))
        return c_skip * x + c_out * self.output_proj(F.silu(h))


def groups(channels):
    g = max(1, min(32, channels // 4))
    while channels % g:
        g -= 1
    return g


class ResBlock(nn.Module):
    def __init__(self, cin, cout, embed):
        super().__init__()
        self.norm1, self.conv1 = nn.GroupNorm(groups(cin), cin), nn.Conv2d(cin, cout, 3, padding=1)
        self.affine = nn.Linear(embed, 2 * cout)
        self.norm2, self.conv2 = nn.GroupNorm(groups(cout), cout), nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else None

    def forward(self, x, emb):
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.affine(emb)[:, :, None, None].chunk(2, 1)
        h = self.conv2(F.silu(self.norm2(h) * (scale + 1.0) + shift))
        return (h + (self.skip(x) if self.skip is not None else x)) * math.sqrt(0.5)


class UNet(nn.Module):
    """unet::UNetDenoiser at the study's size (base 32, levels [1, 2, 2], 1 block, no attention)."""

    def __init__(self, channels=1, classes=10, base=32, mult=(1, 2, 2), blocks=1, embed=128):
        super().__init__()
        self.register_buffer("frequencies", torch.exp(torch.linspace(0.0, math.log(100.0), embed // 2)))
        self.noise_fc1, self.noise_fc2 = nn.Linear(embed, embed), nn.Linear(embed, embed)
        self.class_embed = nn.Embedding(classes, embed)
        self.input_conv = nn.Conv2d(channels, base, 3, padding=1)
        self.encoder, skips, ch = nn.ModuleList(), [base], base
        for level, m in enumerate(mult):
            if level > 0:
                self.encoder.append(nn.Conv2d(ch, ch, 3, stride=2, padding=1))
                skips.append(ch)
            for _ in range(blocks):
                self.encoder.append(ResBlock(ch, base * m, embed))
                ch = base * m
                skips.append(ch)
        self.middle1, self.middle2 = ResBlock(ch, ch, embed), ResBlock(ch, ch, embed)
        self.decoder = nn.ModuleList()
        for level in reversed(range(len(mult))):
            for _ in range(blocks + 1):
                self.decoder.append(ResBlock(ch + skips.pop(), base * mult[level], embed))
                ch = base * mult[level]
            if level > 0:
                self.decoder.append(nn.Conv2d(ch, ch, 3, padding=1))
        self.output_norm, self.output_conv = nn.GroupNorm(groups(ch), ch), nn.Conv2d(ch, channels, 3, padding=1)

    def forward(self, x, sigma, labels):
        c_skip, c_out, c_in, c_noise = precondition(sigma.reshape(-1, 1))
        angles = c_noise * self.frequencies.unsqueeze(0)
        emb = self.noise_fc2(F.silu(self.noise_fc1(torch.cat([angles.sin(), angles.cos()], 1))))
        emb = F.silu(emb + self.class_embed(labels))
        h = self.input_conv(per_sample(c_in, x) * x)
        skips = [h]
        for layer in self.encoder:
            h = layer(h) if isinstance(layer, nn.Conv2d) else layer(h, emb)
            skips.append(h)
        h = self.middle2(self.middle1(h, emb), emb)
        for layer in self.decoder:
            if isinstance(layer, nn.Conv2d):
                h = layer(F.interpolate(h, size=skips[-1].shape[2:], mode="nearest"))
            else:
                h = layer(torch.cat([h, skips.pop()], 1), emb)
        return per_sample(c_skip, x) * x + per_sample(c_out, x) * self.output_conv(F.silu(self.output_norm(h)))


class GaussianGrid:
    """gaussian_grid's sampling: 5 x 5 modes, 5 classes of 5 modes each."""

    def __init__(self):
        xs = torch.linspace(-2, 2, 5)
        self.means = torch.cartesian_prod(xs, xs)
        self.stds = torch.full((25,), 0.05)
        self.class_modes = torch.arange(25).view(5, 5)
        self.class_mode_count = torch.full((5,), 5)
        self.shape, self.classes = (2,), 5

    def sample(self, n):
        labels = torch.randint(5, (n,))
        count = self.class_mode_count.index_select(0, labels)
        pick = (torch.rand(n, dtype=torch.float64) * count).floor().long().clamp_max(4)
        mode = self.class_modes[labels, pick]
        return self.means.index_select(0, mode) + torch.randn(n, 2) * self.stds.index_select(0, mode).unsqueeze(1), labels


class RandomImages:
    def __init__(self):
        self.images, self.labels = torch.randn(6000, 1, 28, 28).clamp(-1, 1), torch.arange(6000) % 10
        self.shape, self.classes = (1, 28, 28), 10

    def sample(self, n):
        index = torch.randint(6000, (n,))
        return self.images.index_select(0, index), self.labels.index_select(0, index)


TOY = dict(net=Mlp, data=GaussianGrid, teacher_batch=512, teacher_lr=1e-3, dm_batch=128, update_every=5, reg_weight=0.25)
UNET = dict(net=UNet, data=RandomImages, teacher_batch=256, teacher_lr=1e-3, dm_batch=64, update_every=1, reg_weight=0.05)
PARAMS = {Mlp: 129154, UNet: 1137729}


def network(setup):
    net = setup["net"]()
    count = sum(p.numel() for p in net.parameters())
    assert count == PARAMS[setup["net"]], f"{setup['net'].__name__} has {count} parameters, not the platform's"
    return net


def train_teacher(setup, data, iterations, warmup=200, halflife_kimg=50.0):
    """train_edm_teacher: Adam with linear warm-up, EDM loss, weight EMA, the loss read every step."""
    net, batch, lr = network(setup), setup["teacher_batch"], setup["teacher_lr"]
    beta = 0.5 ** (batch / (halflife_kimg * 1000.0))
    ema = copy.deepcopy(net).requires_grad_(False)
    optimizer = torch.optim.Adam(net.parameters(), lr=lr)
    net.train()
    for step in range(iterations):
        for group in optimizer.param_groups:
            group["lr"] = lr * min(1.0, (step + 1) / warmup)
        x, labels = data.sample(batch)
        sigma = (torch.randn(batch) * P_STD + P_MEAN).exp()
        loss = weighted_denoising_loss(net(x + torch.randn_like(x) * per_sample(sigma, x), sigma, labels), x, sigma)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            for target, source in zip(ema.parameters(), net.parameters()):
                target.mul_(beta).add_(source, alpha=1.0 - beta)
        loss.item()


def train_dm(setup, data, iterations, pairs=2048, sigma_gen=80.0, huber_c=0.01):
    """StudentTrainer on a DM stage: the student (a copy of the teacher) steps every update_every
    iterations on dm + weight * regression; the fake score (another copy) steps every iteration."""
    teacher = network(setup).requires_grad_(False).eval()
    student, fake = copy.deepcopy(teacher).requires_grad_(True), copy.deepcopy(teacher).requires_grad_(True)
    student.train()
    fake.train()
    student_opt = torch.optim.AdamW(student.parameters(), lr=1e-4, weight_decay=0.0)
    fake_opt = torch.optim.AdamW(fake.parameters(), lr=1e-4, weight_decay=0.01)
    grid = torch.tensor(karras(1000)[:-1], dtype=torch.float32)
    lo, hi = round(0.02 * 999), round(0.98 * 999)
    batch, shape = setup["dm_batch"], data.shape
    pair_noise, pair_labels = torch.randn(pairs, *shape), torch.arange(pairs) % data.classes
    pair_target = torch.randn(pairs, *shape)
    update_every, weight = setup["update_every"], setup["reg_weight"]
    log_every = max(1, (iterations + update_every - 1) // update_every // 100)
    updates = 0
    for it in range(iterations):
        update = it % update_every == 0
        logs = update and (updates % log_every == 0 or it + update_every >= iterations)
        labels = torch.randint(data.classes, (batch,))
        noise = torch.randn(batch, *shape)
        with torch.set_grad_enabled(update):
            x = student(noise * sigma_gen, torch.full((batch,), sigma_gen), labels)
        if update:
            with torch.no_grad():
                sigma = grid[torch.randint(lo, hi + 1, (batch,))]
                xt = x.detach() + torch.randn_like(x) * per_sample(sigma, x)
                mu_real, mu_fake = teacher(xt, sigma, labels), fake(xt, sigma, labels)
                norm = (x.detach() - mu_real).abs().mean(dim=tuple(range(1, x.dim())), keepdim=True).clamp_min(1e-12)
                grad = (mu_fake - mu_real) / norm
            dm = 0.5 * F.mse_loss(x, (x - grad).detach())
            index = torch.randint(pairs, (batch,))
            paired = student(pair_noise[index] * sigma_gen, torch.full((batch,), sigma_gen), pair_labels[index])
            sq = (paired - pair_target[index]).pow(2).reshape(batch, -1).sum(1)
            regression = ((sq + huber_c ** 2).sqrt() - huber_c).mean()
            objective = torch.zeros(()) + 1.0 * dm + weight * regression
            if logs:
                dm.item(), regression.item()
            student_opt.zero_grad()
            objective.backward()
            nn.utils.clip_grad_norm_(student.parameters(), 10.0)
            student_opt.step()
            updates += 1
        xd = x.detach()
        sigma = grid[torch.randint(0, 1000, (batch,))]
        fake_loss = weighted_denoising_loss(fake(xd + torch.randn_like(xd) * per_sample(sigma, xd), sigma, labels), xd, sigma)
        fake_opt.zero_grad()
        fake_loss.backward()
        nn.utils.clip_grad_norm_(fake.parameters(), 10.0)
        fake_opt.step()
        if logs:
            fake_loss.item()


@torch.no_grad()
def sample_toy(iterations, one_step, n=2048):
    teacher = network(TOY).eval().requires_grad_(False)
    labels = torch.arange(n) % 5

    def denoise(x, sigma):
        return teacher(x, torch.full((x.size(0),), sigma), labels)

    for _ in range(iterations):
        noise = torch.randn(n, 2)
        if one_step:
            x = denoise(noise * 80.0, 80.0)
        else:
            s = karras(18)
            x = noise * s[0]
            for i in range(len(s) - 1):
                d = (x - denoise(x, s[i])) / s[i]
                x_next = x + (s[i + 1] - s[i]) * d
                if s[i + 1] > 0:
                    x_next = x + (s[i + 1] - s[i]) * 0.5 * (d + (x_next - denoise(x_next, s[i + 1])) / s[i + 1])
                x = x_next
        x.sum().item()


STEPS = {
    "toy_teacher": lambda n: train_teacher(TOY, GaussianGrid(), n),
    "toy_dm": lambda n: train_dm(TOY, GaussianGrid(), n),
    "unet_teacher": lambda n: train_teacher(UNET, RandomImages(), n),
    "unet_dm": lambda n: train_dm(UNET, RandomImages(), n),
    "toy_onestep": lambda n: sample_toy(n, True),
    "toy_heun35": lambda n: sample_toy(n, False),
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("step", choices=sorted(STEPS))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--iterations", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    STEPS[args.step](args.warmup)
    for _ in range(args.repeats):
        start = time.perf_counter()
        STEPS[args.step](args.iterations)
        print(f"{args.step} {(time.perf_counter() - start) / args.iterations}", flush=True)


if __name__ == "__main__":
    main()
