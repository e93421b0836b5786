"""``qperf phantom``: simulate a perfusion study with its ground truth."""

from __future__ import annotations

import argparse

from qperf.cli.argtypes import int_range, seed

NAME = "phantom"
HELP = "simulate a perfusion study (digital phantom) with its ground truth"
DESCRIPTION = """Simulate a free-breathing, dual-sequence first-pass perfusion study with full ground truth.

Writes OUT_DIR/study.json with the slice series (signal units, proton-density frames,
acquisition metadata) and the dual-echo AIF images, readable by 'qperf info', and
OUT_DIR/truth/ (labels, AHA segments, MBF/PS/Vp/Visf maps and motion fields as NRRD,
per-segment truth as JSON, the true AIF as CSV). The same seed gives the same heart at
stress and at rest.

example:
  qperf phantom out/phantom0 --seed 0 --condition stress --preview
"""
ORDER = 90


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out_dir", metavar="OUT_DIR", help="new output folder")
    parser.add_argument("--slices", type=int_range(1, 8), default=3, help="number of short-axis slices (default 3)")
    parser.add_argument(
        "--frames", type=int_range(10, 200), default=60, help="frames per slice incl. 3 PD frames (default 60)"
    )
    parser.add_argument("--seed", type=seed, default=0, help="random seed; defines the heart (default 0)")
    parser.add_argument("--condition", choices=("stress", "rest"), default="stress")
    parser.add_argument("--field", type=float, choices=(1.5, 3.0), default=1.5, help="field strength in tesla")
    parser.add_argument(
        "--readout", choices=("flash", "ssfp"), default=None, help="readout (default: drawn from the seed)"
    )
    parser.add_argument(
        "--model",
        default="btex",
        choices=["btex", "fermi", "2cxm", "2cxm-analytic", "tofts", "extended_tofts"],
        help="tissue kinetic model: btex (default) or 2cxm-analytic (fast closed form)",
    )
    parser.add_argument("--no-motion", action="store_true", help="static (motion-free) frames")
    parser.add_argument("--no-noise", action="store_true", help="noise-free frames")
    parser.add_argument("--preview", action="store_true", help="also write OUT_DIR/preview.png")


def run(args: argparse.Namespace) -> int:
    from qperf import phantom
    from qperf.progress import TerminalProgress

    with TerminalProgress("phantom", enabled=not args.quiet) as bar:
        ps = phantom.generate_study(
            seed=args.seed,
            n_slices=args.slices,
            n_frames=args.frames,
            condition=args.condition,
            field_t=args.field,
            motion=not args.no_motion,
            noise=not args.no_noise,
            readout=args.readout,
            model=args.model,
            progress=bar,
        )
    path = phantom.write_study(ps, args.out_dir, overwrite=args.overwrite, preview=args.preview)
    if not args.quiet:
        segs = ps.truth.segments
        isch = [k for k, v in segs.items() if v["ischaemic"]]
        print(f"wrote {path} ({ps.study.n_slices} slices, {ps.study.slices[0].n_frames} frames, {args.condition})")
        print(f"truth in {path.parent / 'truth'}; ischaemic segments: {isch or 'none'}")
    return 0
