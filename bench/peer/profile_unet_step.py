#!/usr/bin/env python3
"""Where the UNet teacher step's time goes: the peer's step (peer_steps.py) under torch.profiler, in
the contiguous layout the platform uses and in channels_last, 2 steps at batch 256 each.

    LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4 /usr/bin/python3 bench/peer/profile_unet_step.py
"""
import torch
from torch.profiler import ProfilerActivity, profile

import peer_steps as peer


def step_function(layout):
    net = peer.UNet().to(memory_format=layout)
    data = peer.RandomImages()
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)

    def step():
        x, labels = data.sample(256)
        x = x.contiguous(memory_format=layout)
        sigma = (torch.randn(256) * peer.P_STD + peer.P_MEAN).exp()
        noised = x + torch.randn_like(x) * peer.per_sample(sigma, x)
        loss = peer.weighted_denoising_loss(net(noised, sigma, labels), x, sigma)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    return step


def main():
    torch.set_num_threads(2)
    for name, layout in (("contiguous", torch.contiguous_format), ("channels_last", torch.channels_last)):
        step = step_function(layout)
        step()  # warm-up
        with profile(activities=[ProfilerActivity.CPU]) as profiler:
            for _ in range(2):
                step()
        print(name)
        print(profiler.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))


if __name__ == "__main__":
    main()
