#!/usr/bin/env python3
"""Writes a deterministic journal file for the journal benchmark.

The entries are those of bench/regex's auth.log generator (same seed, so about a third
are sshd failures of the shapes OpenSSH logs), each turned into a journal entry the way
journald would store it (_HOSTNAME, SYSLOG_IDENTIFIER, _PID, _COMM, _SYSTEMD_UNIT,
MESSAGE, a microsecond timestamp), written in export format and converted into a real
journal by systemd-journal-remote. journal-remote rotates its output at about 45 MiB
(systemd 252 has no setting for it), so a large journal is OUTPUT.journal plus archived
OUTPUT@....journal files beside it, as on a real machine: read them as `OUTPUT*.journal`.

Usage: gen_journal.py ENTRIES OUTPUT.journal [--seed N]
"""

import argparse
import calendar
import glob
import os
import re
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
GEN_LOG = os.path.join(HERE, "..", "regex", "gen_auth_log.py")
JOURNAL_REMOTE = "/lib/systemd/systemd-journal-remote"
BOOT_ID = "5f0c6ad1b7e24a5c9d3e8f1a2b4c6d8e"
MACHINE_ID = "b1e2c3d4a5f60718293a4b5c6d7e8f90"
LINE_RE = re.compile(r"^(\w{3}) +(\d+) (\d\d):(\d\d):(\d\d) (\S+) ([^\[:]+)(?:\[(\d+)\])?: (.*)$")
MONTHS = {m: i + 1 for i, m in enumerate("Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split())}
UNITS = {"sshd": "ssh.service", "CRON": "cron.service", "systemd-logind": "systemd-logind.service",
         "sudo": "session-1.scope", "systemd": "user@1000.service",
         "postfix/smtpd": "postfix@-.service"}
COMMS = {"CRON": "cron", "postfix/smtpd": "smtpd"}


def convert(log, export):
    last_second = None
    within = 0
    with open(log, encoding="utf-8") as src, open(export, "w", encoding="utf-8") as out:
        for n, line in enumerate(src):
            m = LINE_RE.match(line.rstrip("\n"))
            if not m:
                sys.exit("unexpected line %d: %r" % (n + 1, line))
            mon, day, hh, mi, ss, host, ident, pid, msg = m.groups()
            second = calendar.timegm((2026, MONTHS[mon], int(day), int(hh), int(mi), int(ss)))
            # Entries of one second are spread over it, in order.
            within = within + 1 if second == last_second else 0
            last_second = second
            micros = second * 1_000_000 + within * 97
            fields = ["__REALTIME_TIMESTAMP=%d" % micros,
                      "__MONOTONIC_TIMESTAMP=%d" % (1_000_000 + n * 1000),
                      "_BOOT_ID=" + BOOT_ID, "_MACHINE_ID=" + MACHINE_ID,
                      "_HOSTNAME=" + host, "PRIORITY=6", "SYSLOG_FACILITY=4",
                      "SYSLOG_IDENTIFIER=" + ident]
            if ident == "kernel":
                k = re.match(r"^\[ *(\d+)\.(\d+)\] (.*)$", msg)
                if k:
                    fields.append("_SOURCE_MONOTONIC_TIMESTAMP=%d%s" % (int(k.group(1)), k.group(2)))
                    msg = k.group(3)
                fields += ["_TRANSPORT=kernel"]
            else:
                fields += ["_TRANSPORT=syslog", "_PID=" + pid, "SYSLOG_PID=" + pid,
                           "_COMM=" + COMMS.get(ident, ident),
                           "_SYSTEMD_UNIT=" + UNITS.get(ident, ident + ".service")]
            fields.append("MESSAGE=" + msg)
            out.write("\n".join(fields) + "\n\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("entries", type=int)
    ap.add_argument("output")
    ap.add_argument("--seed", type=int, default=20261125)
    args = ap.parse_args()
    if not os.path.exists(JOURNAL_REMOTE):
        sys.exit("%s is missing: apt-get install systemd-journal-remote" % JOURNAL_REMOTE)
    with tempfile.TemporaryDirectory(dir=os.path.dirname(os.path.abspath(args.output))) as tmp:
        log = os.path.join(tmp, "auth.log")
        export = os.path.join(tmp, "entries.export")
        subprocess.run([sys.executable, GEN_LOG, str(args.entries), log, "--seed", str(args.seed)],
                       check=True)
        convert(log, export)
        stem = args.output[:-len(".journal")] if args.output.endswith(".journal") else args.output
        for old in glob.glob(glob.escape(stem) + "*.journal"):
            os.remove(old)
        subprocess.run([JOURNAL_REMOTE, "--output=" + args.output, export], check=True,
                       stderr=subprocess.DEVNULL)


if __name__ == "__main__":
    main()
