"""Prints the README's "llama.cpp memory by architecture" tables from the accuracy test.

    cargo test -p inferkit-llama-box --test accuracy -- --nocapture \\
        | python3 tools/measure/llamacpp/readme_tables.py

Reads the per-architecture tables the test prints for each measurement file (CPU rows and
RPC device rows), and prints one table per architecture family and one per architecture:
rows, largest compute error, largest total (device-total) error, the declared band.
"""
import os
import re
import sys

t = {}
cur = None
for line in sys.stdin:
    m = re.match(r'^(CPU backend|Offloaded over RPC devices|Projectors|stable-diffusion.cpp) \((\S+)\)$', line.strip())
    if m: cur = (m.group(1), m.group(2)); continue
    p = [x.strip() for x in line.split('|')]
    if cur and len(p) == 6 and p[2].isdigit():
        t.setdefault(cur, []).append((p[1], int(p[2]), float(p[3][:-1]), float(p[4][:-1])))
fam = {
    'dense decoders': 'arcee chatglm cohere2 command-r ernie4_5 exaone exaone4 falcon gemma gemma2 gemma3 gemma3n glm4 gptneox granite internlm2 llama minicpm mistral3 olmo olmo2 phi2 phi3 qwen2 qwen3 seed_oss smollm3 stablelm starcoder starcoder2'.split(),
    'mixture of experts': 'bailingmoe deepseek dots1 ernie4_5-moe glm4moe gpt-oss granitemoe hunyuan-moe llama4 olmoe phimoe qwen2moe qwen3moe'.split(),
    'latent attention': ['deepseek2', 'minicpm3'],
    'recurrent': ['mamba', 'mamba2', 'rwkv6', 'rwkv7'],
    'hybrid (attention + recurrent)': ['falcon-h1', 'granitehybrid', 'jamba', 'nemotron_h', 'qwen3next'],
    'encoders': ['bert', 'jina-bert-v2', 'modern-bert', 'nomic-bert', 't5encoder'],
}
cpu = [r for (k,f),rs in t.items() if k=='CPU backend' for r in rs]
unknown = sorted({r[0] for r in cpu} - {a for archs in fam.values() for a in archs})
if unknown:
    fam['other'] = unknown
rpc = [r for (k,f),rs in t.items() if k.startswith('Offloaded') for r in rs]
def agg(rows):
    return (sum(r[1] for r in rows), max(r[2] for r in rows), max(r[3] for r in rows)) if rows else None
def cells(a):
    return f"{a[0]} | {a[1]:.1f}% | {a[2]:.1f}%" if a else "– | – | –"
print('| family | architectures | CPU rows | max compute error | max total error | RPC device rows | max compute error | max device-total error |')
print('|---|---|---|---|---|---|---|---|')
for name, archs in fam.items():
    print(f"| {name} | {len(archs)} | {cells(agg([r for r in cpu if r[0] in archs]))} | {cells(agg([r for r in rpc if r[0] in archs]))} |")
print()
print('| architecture | CPU rows | max compute error | max total error | RPC device rows | max compute error | max device-total error | declared band |')
print('|---|---|---|---|---|---|---|---|')
# The bands drivers/llama-box/src/memory/architecture.rs declares: graph derived (DERIVED), else
# measured (the same band on the host and on every device of an offloaded layout).
src = open(os.path.join(os.path.dirname(os.path.abspath(__file__)),
                        '../../../drivers/llama-box/src/memory/architecture.rs')).read()
def listed(name):
    body = re.search(r'const ' + name + r': &\[[^\]]*\] = &\[(.*?)\];', src, re.S).group(1)
    return set(re.findall(r'^\s*"([\w.-]+)"', body, re.M))
derived = listed('DERIVED')
for a in sorted(set(r[0] for r in cpu)):
    band = '15%, graph derived' if a in derived else '5%, measured'
    print(f"| {a} | {cells(agg([r for r in cpu if r[0]==a]))} | {cells(agg([r for r in rpc if r[0]==a]))} | {band} |")
