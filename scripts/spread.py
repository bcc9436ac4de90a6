#!/usr/bin/env python3
"""The spread of every learned quantity the tests assert, over seeds and thread counts.

Seeded training lands elsewhere on another CPU: libtorch picks its kernels by instruction set
and thread count, so float sums and then whole trajectories differ. This script reruns the
learning tests (Rust and Python) with GLASSBOX_TEST_SEED (an offset added to each of their
seeds) and OMP_NUM_THREADS, with GLASSBOX_TEST_MEASURE=1 so that no bound stops a run early,
and tabulates each quantity's range against its bound. Each thread count gets its own zoo
cache, so the zoo models are trained again with that thread count, as on a new machine.

    .venv/bin/python scripts/spread.py --seeds 0,1,2 --threads 1,2 --out build/spread.md

Runs go side by side, one a core. The Rust tests need `cargo test --release` built; the
Python ones the installed kernel (`make install`).
"""
import argparse
import concurrent.futures
import json
import os
import re
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINE = re.compile(r"learned: (.+) = (-?[0-9.e+-]+|NaN|nan|inf|-inf) (>=|<=) (-?[0-9.e+-]+) \(seed offset (\d+), (\S+) threads\)")

# The tests that assert learned quantities (substring filters of the lib's test names).
RUST = [
    "bottleneck::tests::annealed_usbs_are_one_hot_and_entropy_ones_are_not",
    "bottleneck::tests::an_ssb_recovers_the_task_and_its_channels_name_concepts",
    "bottleneck::tests::torchvision::a_usb_after_a_resnet_block_learns_the_classes",
    "inn::tests::pipeline::",
    "inn::tests::semantic_pipeline::",
    "metrics::net2vec::tests::scenes_resnet_weights_beat_single_filters",
    "metrics::sevec::tests::the_papers_analyses_on_the_zoo_net",
    "models::fit::tests::fit_learns_and_score_reports_the_baseline",
    "models::train::tests::a_lenet_learns_a_synthetic_task",
    "models::train::tests::a_small_resnet_learns_to_segment_concept_scenes",
    "models::zoo::training::",
]
PYTHON = [
    "tests/test_commands.py::test_zoo_models_load_with_their_scores_and_checkpoints",
    "tests/test_commands.py::test_data_train_and_eval_a_small_net",
]


def user_cache():
    if os.environ.get("GLASSBOX_CACHE_DIR"):
        return Path(os.environ["GLASSBOX_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "glassbox"


def cache_for(threads, out):
    """A cache that shares the data and the REPL's build with the user's, but not the zoo."""
    cache = out / f"cache-{threads}-threads"
    cache.mkdir(parents=True, exist_ok=True)
    for entry in user_cache().iterdir():
        link = cache / entry.name
        if entry.name != "zoo" and not link.exists():
            link.symlink_to(entry)
    return cache


def rust_binary():
    built = subprocess.run(
        ["cargo", "test", "--release", "--locked", "--lib", "--no-run", "--message-format=json"],
        cwd=ROOT, check=True, capture_output=True, text=True,
    ).stdout
    for line in built.splitlines():
        msg = json.loads(line)
        if msg.get("reason") == "compiler-artifact" and msg.get("executable") and msg["target"]["kind"] == ["lib"]:
            return msg["executable"]
    sys.exit("spread: no test binary for the library")


def run(job):
    kind, threads, offset, cache, log = job
    # A passive wait keeps runs side by side from spinning on each other's cores; it changes
    # no result.
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), OMP_WAIT_POLICY="PASSIVE", GLASSBOX_TEST_SEED=str(offset),
               GLASSBOX_TEST_MEASURE="1", GLASSBOX_CACHE_DIR=str(cache))
    if kind == "rust":
        cmd = [rust_bin, "--test-threads=1", "--nocapture", *RUST]
    else:
        cmd = [str(ROOT / ".venv/bin/python"), "-m", "pytest", "-s", "-q", *PYTHON]
    done = re.compile(r"^test result: |^=+ .* in [0-9.]+s", re.M)
    if resume and Path(log).exists() and done.search(Path(log).read_text(errors="replace")):
        code = 0
    else:
        with open(log, "w") as f:
            code = subprocess.run(cmd, cwd=ROOT, env=env, stdout=f, stderr=subprocess.STDOUT).returncode
    found = []
    for line in Path(log).read_text(errors="replace").splitlines():
        m = LINE.search(line)
        if m:
            found.append((m[1], float(m[2]), m[3], float(m[4]), int(m[5]), threads))
    return job, code, found


def table(rows):
    by = defaultdict(list)
    for name, value, relation, bound, offset, threads in rows:
        by[(name, relation, bound)].append((value, offset, threads))
    out = ["| quantity | bound | min | max | worst margin | runs |", "|---|---|---|---|---|---|"]
    for (name, relation, bound), values in by.items():
        vs = [v for v, _, _ in values]
        margin = min(v - bound for v in vs) if relation == ">=" else min(bound - v for v in vs)
        out.append(f"| {name} | {relation} {bound:g} | {min(vs):.4f} | {max(vs):.4f} | {margin:+.4f} | {len(vs)} |")
    return "\n".join(out)


def main():
    global rust_bin
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--only", choices=["rust", "python"])
    parser.add_argument("--out", default=str(ROOT / "build/spread.md"))
    parser.add_argument("--resume", action="store_true", help="keep the runs whose logs are complete")
    args = parser.parse_args()
    global resume
    resume = args.resume
    seeds = [int(s) for s in args.seeds.split(",")]
    threads = [int(t) for t in args.threads.split(",")]
    kinds = [args.only] if args.only else ["rust", "python"]
    work = ROOT / "build/spread"
    work.mkdir(parents=True, exist_ok=True)
    rust_bin = rust_binary() if "rust" in kinds else None
    # Thread counts change which kernels run, not what a run computes on a busy machine, so
    # runs go side by side, one a core. The first run of each thread count trains its zoo
    # models; the others reuse them.
    jobs = {t: [(k, t, s, cache_for(t, work), work / f"{k}-{t}-threads-seed-{s}.log") for s in seeds for k in kinds]
            for t in threads}
    rows = []
    with concurrent.futures.ThreadPoolExecutor(os.cpu_count() or 1) as pool:
        results = list(pool.map(run, [j[0] for j in jobs.values()]))
        results += list(pool.map(run, [job for j in jobs.values() for job in j[1:]]))
    for (kind, t, s, _, log), code, found in results:
        print(f"{kind}, {t} threads, seed offset {s}: {len(found)} quantities (exit {code}; {log})", flush=True)
        rows += found
    text = table(rows)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
