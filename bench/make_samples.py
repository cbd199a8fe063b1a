# The benchmark's 81 samples exactly as ../shared/gpu/peft_baseline.py draws them, as JSON for bench/lora-7b.ts.
import json, sys, torch
g = torch.Generator().manual_seed(1)
lens = torch.randint(150, 601, (81,), generator=g).tolist()
samples = [torch.randint(0, 151000, (L,), generator=g).tolist() for L in lens]
json.dump(samples, open(sys.argv[1], "w"))
