#!/usr/bin/env python3
"""Side-by-side benchmark: `rampart regex` against `fail2ban-regex` on a journal file.

Builds a deterministic journal file with systemd-journal-remote (gen_journal.py: bench/
regex's auth.log entries as journal entries, about a third sshd failures), then runs
`rampart regex systemd-journal[journalfiles=F] sshd[logtype=journal]` and fail2ban-regex
(python3-systemd's reader) on it with the stock sshd filter of fail2ban 1.0.2's own tree.
Both apply the filter's journalmatch. Checks that both report the same counts, prints
entries/s (entries that reached the filter), the ratio and peak RSS. Each tool is pinned
to one core: rampart's journalctl, its reader thread and its matching share that core,
as fail2ban's single thread does. rampart is also run unpinned (its reading and matching
then overlap on two cores). The results are appended to results/<date>.md.

Usage: bench/journal/run.py [--entries N] [--runs K] [--skip-fail2ban]
Needs: python3, taskset, /usr/bin/time, systemd-journal-remote, /usr/bin/python3 with
python3-systemd, a release build (`cargo build --release -p rampart`), and the fail2ban
package (fetched once into target/ by bench/regex/run.py's helper).
"""

import argparse
import datetime
import glob
import os
import platform
import re
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
TARGET = os.path.join(ROOT, "target")
REF = os.path.join(TARGET, "fail2ban-1.0.2-2")
RAMPART = os.environ.get("RAMPART_BIN", os.path.join(TARGET, "release", "rampart"))
LINES_RE = re.compile(r"Lines: (\d+) lines, (\d+) ignored, (\d+) matched, (\d+) missed")

sys.path.insert(0, os.path.join(HERE, "..", "regex"))
from run import fetch_reference  # noqa: E402  (bench/regex/run.py)


def timed(cmd, env=None, pin=True):
    """Runs cmd (on core 0 when pinned); returns (stdout, wall seconds, peak RSS in KiB)."""
    full = (["taskset", "-c", "0"] if pin else []) + ["/usr/bin/time", "-f", "@@ %e %M"] + cmd
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


def best(cmd, runs, env=None, pin=True):
    results = [timed(cmd, env, pin) for _ in range(runs)]
    return counts(results[0][0]), min(r[1] for r in results), max(r[2] for r in results)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--entries", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=3, help="runs of rampart (best is kept)")
    ap.add_argument("--skip-fail2ban", action="store_true", help="rampart only (no ratio)")
    args = ap.parse_args()

    if not os.path.exists(RAMPART):
        sys.exit("build first: cargo build --release -p rampart")
    fetch_reference()
    journal = os.path.join(TARGET, "bench", "journal-%d.journal" % args.entries)
    # journal-remote rotates its output: the journal is the file and its archived siblings.
    files = journal[:-len(".journal")] + "*.journal"
    if not os.path.exists(journal):
        os.makedirs(os.path.dirname(journal), exist_ok=True)
        subprocess.run([sys.executable, os.path.join(HERE, "gen_journal.py"), str(args.entries),
                        journal], check=True)
    all_files = sorted(glob.glob(files))
    total = int(subprocess.run(["journalctl", "--file", files, "--output=cat", "--no-pager"],
                               capture_output=True, check=True).stdout.count(b"\n"))
    size = sum(os.path.getsize(f) for f in all_files)
    conf = os.path.join(REF, "etc", "fail2ban")
    env = dict(os.environ, PYTHONPATH=os.path.join(REF, "usr", "lib", "python3", "dist-packages"))
    f2b = ["/usr/bin/python3", os.path.join(REF, "usr", "bin", "fail2ban-regex")]
    log = "systemd-journal[journalfiles=%s]" % files
    flt = "sshd[logtype=journal]"

    rows = []
    r_counts, r_secs, r_rss = best([RAMPART, "regex", "-c", conf, log, flt], args.runs)
    rows.append(("rampart (1 core)", r_counts, r_secs, r_rss))
    u_counts, u_secs, u_rss = best([RAMPART, "regex", "-c", conf, log, flt], args.runs, pin=False)
    rows.append(("rampart (2 cores)", u_counts, u_secs, u_rss))
    mismatch = False
    f_secs = None
    if not args.skip_fail2ban:
        f_counts, f_secs, f_rss = best(f2b + ["-c", conf, log, flt], 1, env)
        rows.append(("fail2ban-regex 1.0.2 (1 core)", f_counts, f_secs, f_rss))
        if f_counts != r_counts or u_counts != r_counts:
            print("MISMATCH: fail2ban %s, rampart %s / %s (entries, ignored, matched, missed)"
                  % (f_counts, r_counts, u_counts))
            mismatch = True

    report = []
    report.append("## %s — %d-entry journal, %s" % (
        datetime.datetime.now().strftime("%Y-%m-%d %H:%M"), total, os.path.relpath(journal, ROOT)))
    report.append("")
    report.append("machine: %s, %s, %d cores; journal of %d files, %.0f MiB, written by "
                  "systemd-journal-remote; entries that pass sshd's journalmatch: %d"
                  % (platform.node(), platform.processor() or platform.machine(), os.cpu_count(),
                     len(all_files), size / 2**20, r_counts[0]))
    report.append("command: `bench/journal/run.py --entries %d`; `%s`" % (
        args.entries, " ".join(["rampart", "regex", "-c", "<fail2ban's tree>", log.replace(files, "F*.journal"), flt])))
    report.append("")
    report.append("| tool | seconds | journal entries/s | matched-filter entries/s | peak RSS | "
                  "entries / ignored / matched / missed |")
    report.append("|---|---|---|---|---|---|")
    for name, c, secs, rss in rows:
        report.append("| %s | %.2f | %s | %s | %.1f MiB | %s |" % (
            name, secs, "{:,.0f}".format(total / secs), "{:,.0f}".format(c[0] / secs),
            rss / 1024, " / ".join(map(str, c))))
    report.append("")
    if f_secs:
        report.append("- rampart is **%.1f×** fail2ban-regex's throughput on one core, **%.1f×** "
                      "on two%s" % (f_secs / r_secs, f_secs / u_secs,
                                    " — COUNTS DIFFER" if mismatch else ", same counts"))
    report.append("- peak RSS is the largest process of each run (for rampart: itself or its "
                  "journalctl)")
    report.append("")
    text = "\n".join(report)
    print(text)
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    path = os.path.join(HERE, "results", datetime.date.today().isoformat() + ".md")
    with open(path, "a", encoding="utf-8") as f:
        f.write(text + "\n")
    print("appended to", os.path.relpath(path, ROOT))
    if mismatch:
        sys.exit(1)


if __name__ == "__main__":
    main()
