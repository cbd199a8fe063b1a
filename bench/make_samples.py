# The GPU benchmark's 81 samples (torch's generator, seed 1: lengths 150–600, ids below 151000), as
# the JSON list of token-id lists that bench/lora-7b.ts and scripts/bench_peft.py both read.
import json, sys, torch
g = torch.Generator().manual_seed(1)
lens = torch.randint(150, 601, (81,), generator=g).tolist()
samples = [torch.randint(0, 151000, (L,), generator=g).tolist() for L in lens]
json.dump(samples, open(sys.argv[1], "w"))
