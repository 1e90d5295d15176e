"""`unlearnspec` command line: validate, run, report, diff, schema. Thin: it builds runs and asks the engine."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

from .errors import UnlearnSpecError
from .outcome import EXIT_INCONCLUSIVE, INCONCLUSIVE_POLICIES


def _cmd_validate(args: argparse.Namespace) -> int:
    from .spec import load_spec

    status = 0
    for path in args.spec:
        try:
            spec = load_spec(Path(path))
        except UnlearnSpecError as exc:
            print(exc, file=sys.stderr)
            status = 1
            continue
        n_items = sum(len(c.subjects) for c in spec.claims)
        print(f"{path}: ok ({len(spec.models)} models, {len(spec.transforms)} transforms, "
              f"{len(spec.metrics)} metrics, {len(spec.claims)} claims, {n_items} items)")
    return status


def _cmd_run(args: argparse.Namespace) -> int:
    from .engine.measurement import Measurement
    from .engine.run import Run
    from .outcome import claim_measurements, claim_outcome, exit_code, format_work
    from .report.status import STATUSES
    from .report.terminal import render_matrix
    from .spec import load_spec

    try:
        spec = load_spec(Path(args.spec))
    except UnlearnSpecError as exc:
        print(exc, file=sys.stderr)
        return 2
    run = Run(spec, cache_dir=Path(args.cache_dir), device=args.device,
              progress=not args.quiet)
    items = [(c, s) for c in spec.claims for s in c.subjects]
    for claim, subject in items:
        run.plan(claim_measurements(run, claim, subject))
    statuses: list[str] = []
    values: dict[Measurement, float] = {}
    for claim, subject in items:
        outcome = claim_outcome(run, claim, subject)
        statuses.append(outcome.status)
        if outcome.error is not None:
            if not isinstance(outcome.error, UnlearnSpecError):
                raise outcome.error  # a bug: its traceback, not a verdict
            print(f"ERROR  {outcome.name}\n{outcome.explanation}")
            continue
        exclude = run.claim_exclusions(claim)
        verdict = outcome.verdict
        values.update({Measurement.of(ref, subject, exclude): value
                       for (_, value), ref in zip(verdict.terms, verdict.refs)})
        print(f"{STATUSES[outcome.status].short:6} {outcome.name}  "
              f"(margin {verdict.margin:+.3g})")
        if outcome.status in ("fail", "xfail", "inconclusive") and not args.quiet:
            print("       " + outcome.explanation.replace("\n", "\n       "))
    for m, r in run.results().items():
        values.setdefault(m, r.value)
    print(render_matrix(values, width=120))
    print(f"computed: {format_work(run.stats)}")
    run.close()
    # the same policy as the plugin's --unlearn-inconclusive (docs/report.md)
    return exit_code(statuses, args.inconclusive)


def _cmd_schema(args: argparse.Namespace) -> int:
    from .spec import spec_json_schema

    print(json.dumps(spec_json_schema(), indent=2))
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from .data.files import atomic_write
    from .report.html import render_html
    from .report.json_report import load_report, merge_reports, write_report
    from .report.markdown import render_markdown_report

    if not (args.output or args.markdown or args.json):
        print("unlearnspec report: nothing to write; give -o out.html, --markdown out.md "
              "or --json merged.json", file=sys.stderr)
        return 2
    try:
        report = merge_reports([load_report(p) for p in args.run], sources=list(args.run))
    except UnlearnSpecError as exc:
        print(exc, file=sys.stderr)
        return 2
    try:
        if args.json:
            write_report(report, args.json)
        for path, text in ((args.output, render_html), (args.markdown, render_markdown_report)):
            if path:
                atomic_write(path, text(report))
    except OSError as exc:
        print(f"unlearnspec report: cannot write {exc.filename or 'the output'}: "
              f"{exc.strerror or exc}; choose a writable path", file=sys.stderr)
        return 2
    return 0


def _cmd_diff(args: argparse.Namespace) -> int:
    import tempfile

    from .diff import DEFAULT_TRANSFORMS, diff_checkpoints
    from .diff_text import render_text
    from .models.gguf_file import convert_gguf, is_gguf

    try:
        with tempfile.TemporaryDirectory(prefix="unlearnspec-gguf-") as tmp:
            paths = []
            for which, given in (("target", args.target), ("subject", args.subject)):
                path = Path(given)
                if is_gguf(path):  # its tensors dequantized under Hugging Face names
                    path = convert_gguf(path, Path(tmp) / which, with_tokenizer=False)
                paths.append(path)
            report = diff_checkpoints(paths[0], paths[1], args.transform or DEFAULT_TRANSFORMS,
                                      threads=args.threads)
    except UnlearnSpecError as exc:
        print(f"unlearnspec diff: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        print(render_text(report, per_tensor=args.per_tensor))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="unlearnspec", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    v = sub.add_parser("validate", help="parse and check spec files; computes nothing")
    v.add_argument("spec", nargs="+")
    v.set_defaults(func=_cmd_validate)
    r = sub.add_parser("run", help="evaluate every claim of a spec (as pytest --unlearn-spec)")
    r.add_argument("spec")
    r.add_argument("--cache-dir", default=".unlearnspec")
    r.add_argument("--device", default=None, help="cpu, cuda, cuda:N or auto")
    r.add_argument("-q", "--quiet", action="store_true")
    r.add_argument("--inconclusive", choices=INCONCLUSIVE_POLICIES, default="fail",
                   help="what an inconclusive claim does to the exit code: fail (1), pass "
                        f"(0), distinct ({EXIT_INCONCLUSIVE} when nothing else failed)")
    r.set_defaults(func=_cmd_run)
    rp = sub.add_parser("report", help="HTML / Markdown / merged JSON from run reports "
                        "(several CI shards are merged first)")
    rp.add_argument("run", nargs="+", metavar="RUN.json",
                    help="files written by pytest --unlearn-report")
    rp.add_argument("-o", "--output", metavar="OUT.html", help="write the HTML page here")
    rp.add_argument("--markdown", metavar="OUT.md", help="write the Markdown summary here")
    rp.add_argument("--json", metavar="MERGED.json", help="write the merged JSON report here")
    rp.set_defaults(func=_cmd_report)
    d = sub.add_parser("diff", help="will quantization undo this unlearning? relative update "
                       "size, code-flip rate and update retention per layer, from the weights")
    d.add_argument("target", help="checkpoint directory before unlearning (safetensors), or "
                   "a llama.cpp .gguf file")
    d.add_argument("subject", help="the unlearned checkpoint directory or .gguf file")
    d.add_argument("--transform", action="extend", nargs="+", metavar="NAME",
                   help="rtn4, rtn8, rtn4-g128 (rtn<bits>[-g<group>][-paper|-clamped|-zp]), "
                   "nf4, fp4, int8, q4_0, q8_0 (llama.cpp: also q4_1 q5_0 q5_1 mxfp4), torchao-int8; "
                   "default: rtn4 rtn8")
    d.add_argument("--json", action="store_true", help="print JSON instead of a table")
    d.add_argument("--per-tensor", action="store_true", help="one row per tensor, not per layer")
    d.add_argument("--threads", type=int, default=None, metavar="N",
                   help="blocks tallied at once (default: every CPU this process may use; "
                   "any N gives the same numbers)")
    d.set_defaults(func=_cmd_diff)
    s = sub.add_parser("schema", help="print the JSON Schema of spec files (for editors)")
    s.set_defaults(func=_cmd_schema)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        # Ctrl-C: what finished is in the cache (entries are written atomically), what did not
        # leaves nothing behind; a traceback here would only bury that
        print("\nunlearnspec: interrupted. Finished models and measurements stay in the cache; "
              "run the same command again to continue from there.", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
