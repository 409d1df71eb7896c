"""``alignscope experiment NAME [--quick] [--seeds 0,1] [--group GROUP]``: run an experiment preset's
stages and runs in this process (``worker.experiments.runner``), then print the summary table;
``--summarize GROUP`` stores an existing group's summary again without training; ``--list`` names
the presets. torch is imported only when a command trains or summarizes, so ``alignscope`` starts
fast."""

from __future__ import annotations

import argparse

from backend.experiment_spec import list_experiments, load_experiment


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "experiment", help="run an experiment preset (a group of runs) in this process"
    )
    parser.add_argument("name", nargs="?", help="a preset in presets/experiments/ or a YAML file")
    parser.add_argument("--quick", action="store_true", help="the preset's small version (minutes on a CPU)")
    parser.add_argument("--seeds", type=lambda text: [int(x) for x in text.split(",")], metavar="0,1,2",
                        help="run every configuration with these seeds instead of the preset's")  # fmt: skip
    parser.add_argument("--group", help="run as this group (the queued group row created by the API)")
    parser.add_argument("--summarize", metavar="GROUP", help="store GROUP's summary again; no training")
    parser.add_argument("--list", action="store_true", help="list the experiment presets")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if args.summarize:
        from worker.experiments.runner import summarize

        return summarize(args.summarize, args.name)
    if args.list or not args.name:
        for name in list_experiments():
            spec = load_experiment(name)
            print(f"{name:20}  {spec.title} ({spec.runtime_note or 'no runtime note'})")
        return 0
    from worker.experiments.runner import run_experiment

    return run_experiment(args.name, args.quick, args.seeds, args.group)
