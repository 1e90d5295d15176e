"""How much of each architecture's decoder a transform quantizes: coverage per architecture,
measured on tiny random models (2 layers, hidden size 64) built from transformers configs.

For each architecture it prints the decoder's size and, per transform, the share of decoder
weights the transformed model no longer holds as they were (`unlearnspec.transforms.coverage`,
the number the engine enforces), plus `rtn-2 rule`: the share rtn-2 quantized (weights of
nn.Linear modules only), the "before" of issue 14. A transform the architecture cannot take
prints the RunError's first words instead of a share.

    python benchmarks/transform_coverage.py [--transforms rtn4 nf4 int8]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "transforms"))


def main() -> None:
    import torch
    from transformers.utils import logging as hf_logging

    from arch_helpers import ARCHS, load_arch, make_arch_checkpoint
    from unlearnspec.diff import parse_transform
    from unlearnspec.errors import RunError
    from unlearnspec.transforms.base import TransformContext
    from unlearnspec.transforms.coverage import apply_measured
    from unlearnspec.transforms.roles import parameter_roles

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transforms", nargs="+", default=["rtn4", "nf4"])
    args = parser.parse_args()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    head = f"{'architecture':<12} {'decoder weights':>15} {'rtn-2 rule':>10}"
    print(head + "".join(f" {t:>10}" for t in args.transforms))
    with tempfile.TemporaryDirectory() as tmp:
        for arch in ARCHS:
            path = make_arch_checkpoint(arch, Path(tmp) / arch)
            model = load_arch(path)
            infos = [i for i in parameter_roles(model).values() if i.decoder]
            total = sum(i.numel for i in infos)
            mods = dict(model.named_modules())
            old = sum(i.numel for i in infos
                      if isinstance(mods.get(i.name.rpartition(".")[0]), torch.nn.Linear))
            row = f"{arch:<12} {total:>15,} {100 * old / total:>9.0f}%"
            for label in args.transforms:
                transform = parse_transform(label)
                try:
                    _, cov = apply_measured(transform, load_arch(path),
                                            TransformContext(path, None))
                    cell = f"{100 * cov.decoder_share:.0f}%"
                except RunError as exc:
                    cell = "refused"
                    print(f"  {arch} {label}: {str(exc)[:160]}", file=sys.stderr)
                row += f" {cell:>10}"
            print(row)


if __name__ == "__main__":
    main()
