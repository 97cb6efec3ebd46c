#!/usr/bin/env python3
"""Side-by-side benchmark: `rampart regex` against `fail2ban-regex`.

Generates a deterministic syslog auth.log (gen_auth_log.py), then runs both tools on
the same file with the same stock sshd filter (fail2ban 1.0.2's own tree from Debian's
package), in normal and aggressive mode, each pinned to one core. Checks that both
report the same line counts, and prints lines/s, the ratio and peak RSS. The results
are appended to results/<date>.md beside this script.

Usage: bench/regex/run.py [--lines N] [--runs K] [--fail2ban-runs K] [--skip-fail2ban]
Needs: python3, taskset, /usr/bin/time, a release build (`cargo build --release`),
and apt-get to fetch the fail2ban package (done once, into target/).
"""

import argparse
import datetime
import os
import platform
import re
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
TARGET = os.path.join(ROOT, "target")
REF = os.path.join(TARGET, "fail2ban-1.0.2-2")
RAMPART = os.path.join(TARGET, "release", "rampart")
LINES_RE = re.compile(r"Lines: (\d+) lines, (\d+) ignored, (\d+) matched, (\d+) missed")


def fetch_reference():
    if os.path.exists(os.path.join(REF, "etc", "fail2ban", "jail.conf")):
        return
    work = REF + ".tmp"
    subprocess.run(["rm", "-rf", work], check=True)
    os.makedirs(work)
    subprocess.run(["apt-get", "download", "fail2ban=1.0.2-2"], cwd=work, check=True)
    deb = [f for f in os.listdir(work) if f.endswith(".deb")][0]
    subprocess.run(["dpkg-deb", "-x", os.path.join(work, deb), REF], check=True)
    subprocess.run(["rm", "-rf", work], check=True)


def timed(cmd, env=None):
    """Runs cmd on core 0; returns (stdout, wall seconds, peak RSS in KiB)."""
    full = ["taskset", "-c", "0", "/usr/bin/time", "-f", "@@ %e %M"] + cmd
    p = subprocess.run(full, capture_output=True, text=True, env=env)
    if p.returncode != 0:
        sys.exit("failed: %s\n%s\n%s" % (" ".join(cmd), p.stdout[-2000:], p.stderr[-2000:]))
    stats = [l for l in p.stderr.splitlines() if l.startswith("@@ ")][-1].split()
    return p.stdout, float(stats[1]), int(stats[2])


def counts(out):
    m = LINES_RE.search(out)
    if not m:
        sys.exit("no 'Lines:' summary in output:\n" + out[-2000:])
    return tuple(int(x) for x in m.groups())


def summary(results):
    """Counts of the first run, the best wall time, the highest peak RSS."""
    return counts(results[0][0]), min(r[1] for r in results), max(r[2] for r in results)


def code_version():
    """The commit the measured binary was built from, marked when the tree differs."""
    try:
        head = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (no git)"
    return head + (" with uncommitted changes" if dirty else "")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=3, help="runs of rampart per mode (best is kept)")
    ap.add_argument("--fail2ban-runs", type=int, default=1,
                    help="runs of fail2ban-regex per mode (best is kept), interleaved with "
                         "rampart's: on a machine whose speed drifts, both then see the same "
                         "spells")
    ap.add_argument("--skip-fail2ban", action="store_true", help="rampart only (no ratio)")
    args = ap.parse_args()

    if not os.path.exists(RAMPART):
        sys.exit("build first: cargo build --release")
    fetch_reference()
    log = os.path.join(TARGET, "bench", "auth-%d.log" % args.lines)
    if not os.path.exists(log):
        os.makedirs(os.path.dirname(log), exist_ok=True)
        subprocess.run([sys.executable, os.path.join(HERE, "gen_auth_log.py"), str(args.lines), log],
                       check=True)
    conf = os.path.join(REF, "etc", "fail2ban")
    env = dict(os.environ, PYTHONPATH=os.path.join(REF, "usr", "lib", "python3", "dist-packages"))
    f2b = ["/usr/bin/python3", os.path.join(REF, "usr", "bin", "fail2ban-regex")]

    rows = []
    for mode in ("normal", "aggressive"):
        flt = "sshd[mode=%s]" % mode
        r_cmd = [RAMPART, "regex", "-c", conf, log, flt]
        f_cmd = f2b + ["-c", conf, log, flt]
        f_runs = 0 if args.skip_fail2ban else args.fail2ban_runs
        r_results, f_results = [], []
        for i in range(max(args.runs, f_runs)):
            if i < args.runs:
                r_results.append(timed(r_cmd))
            if i < f_runs:
                f_results.append(timed(f_cmd, env))
        r_counts, r_secs, r_rss = summary(r_results)
        row = {"mode": mode, "r_counts": r_counts, "r_secs": r_secs, "r_rss": r_rss}
        if f_results:
            f_counts, f_secs, f_rss = summary(f_results)
            row.update(f_counts=f_counts, f_secs=f_secs, f_rss=f_rss)
            if f_counts != r_counts:
                print("MISMATCH in %s mode: fail2ban %s, rampart %s (lines, ignored, matched, missed)"
                      % (mode, f_counts, r_counts))
                row["mismatch"] = True
        rows.append(row)

    lines = args.lines
    report = []
    report.append("## %s — %d lines, %s" % (datetime.datetime.now().strftime("%Y-%m-%d %H:%M"),
                                             lines, os.path.relpath(log, ROOT)))
    report.append("")
    report.append("machine: %s, %s, %d cores; each tool pinned to one core (taskset -c 0)"
                  % (platform.node(), platform.processor() or platform.machine(), os.cpu_count()))
    report.append("command: `bench/regex/run.py --lines %d --runs %d --fail2ban-runs %d`"
                  % (lines, args.runs, args.fail2ban_runs))
    report.append("rampart: best of %d runs; fail2ban-regex: best of %d, interleaved with them"
                  % (args.runs, args.fail2ban_runs))
    report.append("code: %s" % code_version())
    report.append("")
    report.append("| mode | tool | seconds | lines/s | peak RSS | lines / ignored / matched / missed |")
    report.append("|---|---|---|---|---|---|")
    for r in rows:
        report.append("| %s | rampart | %.2f | %s | %.1f MiB | %s |" % (
            r["mode"], r["r_secs"], "{:,.0f}".format(lines / r["r_secs"]), r["r_rss"] / 1024,
            " / ".join(map(str, r["r_counts"]))))
        if "f_secs" in r:
            report.append("| %s | fail2ban-regex 1.0.2 | %.2f | %s | %.1f MiB | %s |" % (
                r["mode"], r["f_secs"], "{:,.0f}".format(lines / r["f_secs"]), r["f_rss"] / 1024,
                " / ".join(map(str, r["f_counts"]))))
    report.append("")
    for r in rows:
        if "f_secs" in r:
            report.append("- %s: rampart is **%.1f×** fail2ban-regex's throughput%s" % (
                r["mode"], r["f_secs"] / r["r_secs"],
                " — COUNTS DIFFER" if r.get("mismatch") else ", same counts"))
    report.append("")
    text = "\n".join(report)
    print(text)
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    path = os.path.join(HERE, "results", datetime.date.today().isoformat() + ".md")
    with open(path, "a", encoding="utf-8") as f:
        f.write(text + "\n")
    print("appended to", os.path.relpath(path, ROOT))
    if any(r.get("mismatch") for r in rows):
        sys.exit(1)


if __name__ == "__main__":
    main()
