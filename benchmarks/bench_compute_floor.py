"""How close ansray's CPU inference runs to this machine's arithmetic limit (issue 8).

For one segment of the official-size network (the parity fixture's weights), prints:
  - the arithmetic of the fused path (`FRCRNInference`) and of the unfused reference, in GFLOP per second
    of audio (torch's FlopCounterMode: convolutions and matrix products);
  - wall time and GFLOP/s of each kind of layer (convolutions, FSMNs, the rest), from forward hooks;
  - this machine's rates at the network's own shapes: the widest decoder's phase convolution, an FSMN
    step's product and its memory (depthwise) convolution, at one thread and at `--threads`;
  - the floor: the RTF if every convolution ran at that convolution rate and every FSMN's products and
    memory at theirs, the rest taking what it takes now, against the measured RTF;
  - one arithmetic cut not taken: Winograd's F(2,3) along frequency on that convolution, run as a
    grouped convolution (4 products for 2 outputs instead of 6).

    python benchmarks/bench_compute_floor.py [--threads 2] [--segment 10]

Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import functools
import time
from collections import defaultdict

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from ansray.allocator import retain_freed_memory
from ansray.model import FRCRNInference
from ansray.model.fused import ComplexFsmn, SqueezeExcite
from ansray.segments import MODEL_HOP, MODEL_RATE
from bench_inference import best_of, cpu_name, reference_model

CL = torch.channels_last


def best_ms(run, repeats: int = 5) -> float:
    """Best of `repeats` calls after a warm-up, in milliseconds."""
    run()
    return 1e3 * best_of(repeats, run)[0]


def widest_decoder_phase() -> tuple[torch.Tensor, torch.Tensor]:
    """Input and kernel of the widest decoder's phase convolution on a 10 s segment (channels_last)."""
    x = torch.randn(1, 256, 502, 80).contiguous(memory_format=CL)
    w = torch.randn(128, 256, 2, 3).contiguous(memory_format=CL)
    return x, w


def layer_kind(module: torch.nn.Module) -> str:
    return "FSMN" if isinstance(module, ComplexFsmn) else "convolutions"


def is_product(op) -> bool:
    return "mm" in str(op)  # aten.mm, aten.addmm; the rest counted is aten.convolution


def leaf_layers(network: FRCRNInference) -> dict[str, torch.nn.Module]:
    """The layers that carry the arithmetic, by FlopCounterMode's names: every child of a UNet's
    ModuleLists, and the first encoder and mask decoder."""
    layers = {}
    for unet_name in ("unet", "unet2"):
        unet = getattr(network, unet_name)
        for name, module in unet.named_children():
            if isinstance(module, torch.nn.ModuleList):
                for i, layer in enumerate(module):
                    if not isinstance(layer, SqueezeExcite):  # elementwise: counted in "the rest"
                        layers[f"FRCRNInference.{unet_name}.{name}.{i}"] = layer
            elif name in ("encoder0", "mask_decoder"):
                layers[f"FRCRNInference.{unet_name}.{name}"] = module
    return layers


def time_layers(
    network: FRCRNInference, layers: dict[str, torch.nn.Module], wav: torch.Tensor, repeats: int
) -> tuple[float, dict[str, float]]:
    """(best total ms, each of `layers`' ms in that best run)."""
    started, spent = {}, defaultdict(float)
    for name, layer in layers.items():
        layer.register_forward_pre_hook(lambda m, a, name=name: started.__setitem__(name, time.perf_counter()))
        layer.register_forward_hook(
            lambda m, a, o, name=name: spent.__setitem__(name, spent[name] + time.perf_counter() - started[name])
        )
    best, best_spent = float("inf"), {}
    network(wav)
    for _ in range(repeats):
        spent.clear()
        t0 = time.perf_counter()
        network(wav)
        elapsed = time.perf_counter() - t0
        if elapsed < best:
            best, best_spent = elapsed, dict(spent)
    return 1e3 * best, {name: 1e3 * s for name, s in best_spent.items()}


def layer_flops(run) -> dict[str, dict]:
    """FlopCounterMode's {module name: {op: FLOP}}, "Global" for the whole run."""
    counter = FlopCounterMode(display=False)
    with counter:
        run()
    return counter.get_flop_counts()


def total(ops: dict) -> float:
    return float(sum(ops.values()))


def machine_rates(threads: int, fsmn: ComplexFsmn) -> dict[str, float]:
    """GFLOP/s at the network's own shapes: the widest decoder's phase convolution (channels_last,
    [1, 256, 502, 80] by [128, 256, 2, 3]), and a step of the widest FSMN: its product ([1908, 128]
    by [128, 256]) and its memory, the depthwise convolution over 12 sequences of 2 x 159 rows."""
    torch.set_num_threads(threads)
    x, w = widest_decoder_phase()
    conv_flop = 2 * 501 * 78 * 128 * 256 * 6
    a, b, bias = torch.randn(1908, 128), torch.randn(128, 256), torch.randn(256)
    gemm_flop = 2 * 1908 * 128 * 256
    seq = torch.randn(2, 12, 2 * 159, 128).permute(0, 3, 1, 2)
    reach = 2 * (fsmn.order - 1)
    memory_flop = 2 * 2 * 128 * 12 * 159 * 2 * fsmn.order
    return {
        "conv": conv_flop / best_ms(lambda: F.conv2d(x, w)) / 1e6,
        "gemm": gemm_flop / best_ms(lambda: torch.addmm(bias, a, b), repeats=50) / 1e6,
        "memory": memory_flop / best_ms(
            lambda: F.conv2d(seq, fsmn.taps, stride=(1, 2), padding=(0, reach), groups=128), repeats=50
        ) / 1e6,
    }


def winograd_probe() -> tuple[float, float, float]:
    """(direct ms, Winograd ms, max relative difference) for the widest decoder's phase convolution.

    F(2,3) along frequency: each pair of outputs takes four products of transformed inputs
    (d0 - d2, d1 + d2, d2 - d1, d1 - d3) with transformed kernels, run as one convolution of four groups.
    """
    x, w = widest_decoder_phase()
    (_, c_in, t, width), c_out = x.shape, w.shape[0]
    transform = torch.tensor([[1.0, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1.0]])
    kernels = torch.einsum("xk,oitk->xoit", transform, w).reshape(4 * c_out, c_in, 2, 1).contiguous(memory_format=CL)
    tiles = (width - 2) // 2
    staged = torch.empty(1, 4 * c_in, t, tiles).contiguous(memory_format=CL)

    def winograd():
        d = [x[..., j : j + 2 * tiles : 2] for j in range(4)]
        torch.sub(d[0], d[2], out=staged[:, :c_in])
        torch.add(d[1], d[2], out=staged[:, c_in : 2 * c_in])
        torch.sub(d[2], d[1], out=staged[:, 2 * c_in : 3 * c_in])
        torch.sub(d[1], d[3], out=staged[:, 3 * c_in :])
        m = F.conv2d(staged, kernels, groups=4).split(c_out, dim=1)
        out = torch.empty(1, c_out, t - 1, 2 * tiles).contiguous(memory_format=CL)
        torch.add(m[0], m[1], out=out[..., 0::2]).add_(m[2])
        torch.sub(m[1], m[2], out=out[..., 1::2]).sub_(m[3])
        return out

    direct = F.conv2d(x, w)
    error = float((winograd() - direct).abs().max() / direct.abs().max())
    return best_ms(lambda: F.conv2d(x, w)), best_ms(winograd), error


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--segment", type=float, default=10.0, help="seconds of audio per forward pass")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    model = reference_model()
    wav = torch.randn(1, int(args.segment * MODEL_RATE) // MODEL_HOP * MODEL_HOP)
    audio_s = wav.shape[1] / MODEL_RATE
    with torch.inference_mode():
        reference_flop = total(layer_flops(functools.partial(model, wav))["Global"])
        retain_freed_memory()  # as the job's actors do
        network = FRCRNInference.from_model(model)
        del model
        flops = layer_flops(functools.partial(network, wav))
        layers = leaf_layers(network)
        total_ms, spent = time_layers(network, layers, wav, args.repeats)

    print(f"CPU: {cpu_name()}, {args.threads} threads, torch {torch.__version__}; one {audio_s:g} s segment, "
          "official size (fixture weights)")
    network_flop = total(flops["Global"])
    print(f"arithmetic: reference {reference_flop / 1e9 / audio_s:.1f} GFLOP per audio second, "
          f"ansray's fused path {network_flop / 1e9 / audio_s:.1f}")
    by_kind = defaultdict(lambda: [0.0, 0.0])  # kind: [ms, flop]
    fsmn_products = fsmn_memory = 0.0
    for name, layer in layers.items():
        ops = flops.get(name, {})
        by_kind[layer_kind(layer)][0] += spent.get(name, 0.0)
        by_kind[layer_kind(layer)][1] += total(ops)
        if isinstance(layer, ComplexFsmn):
            fsmn_products += sum(f for op, f in ops.items() if is_product(op))
            fsmn_memory += sum(f for op, f in ops.items() if not is_product(op))
    rest_ms = total_ms - sum(ms for ms, _ in by_kind.values())
    rest_flop = network_flop - sum(f for _, f in by_kind.values())
    print(f"{'layers':>14} {'ms':>8} {'share':>6} {'GFLOP':>7} {'GFLOP/s':>8}")
    for kind, (ms, flop) in sorted(by_kind.items()) + [("rest", (rest_ms, rest_flop))]:
        print(f"{kind:>14} {ms:>8.0f} {ms / total_ms:>6.0%} {flop / 1e9:>7.1f} {flop / ms / 1e6:>8.0f}")
    print(f"{'network':>14} {total_ms:>8.0f} {1:>6.0%} {network_flop / 1e9:>7.1f} "
          f"{network_flop / total_ms / 1e6:>8.0f}   RTF {total_ms / 1e3 / audio_s:.3f}")

    widest_fsmn = network.unet.fsmn_enc["1"]
    one = machine_rates(1, widest_fsmn)
    rates = machine_rates(args.threads, widest_fsmn)
    torch.set_num_threads(args.threads)
    print("machine, GFLOP/s at the network's shapes (one thread): "
          + ", ".join(f"{name} {rates[key]:.0f} ({one[key]:.0f})"
                      for name, key in [("convolution", "conv"), ("FSMN product", "gemm"), ("FSMN memory", "memory")]))
    floor_ms = rest_ms + 1e-6 * (
        by_kind["convolutions"][1] / rates["conv"] + fsmn_products / rates["gemm"] + fsmn_memory / rates["memory"]
    )
    print(f"floor: every convolution and FSMN at those rates, the rest as now: RTF {floor_ms / 1e3 / audio_s:.3f} "
          f"(measured {total_ms / 1e3 / audio_s:.3f}); on long inputs the segments' overlap "
          "(1 s per 10 s by default) comes on top")
    direct, winograd, error = winograd_probe()
    print(f"Winograd F(2,3) on the widest decoder phase: {winograd:.1f} ms against {direct:.1f} ms direct "
          f"({direct / winograd:.2f}x), max difference {error:.1e} of max|output|")


if __name__ == "__main__":
    main()
