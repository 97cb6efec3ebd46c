"""Builds the differential corpus for rampart-pyre's tests.

Run with the reference fail2ban package on PYTHONPATH:
    python3 corpus.py CONFIG_DIR LOGS_DIR [EXTRA_LINES_FILE]
Prints one JSON document: every regex fail2ban 1.0.2 would compile for its stock
filters (all modes, tags expanded) and for its default date templates, the sample
lines, and Python's own `re.search` answer for each (pattern, line) pair, with spans
converted to UTF-8 byte offsets.
"""
import glob
import json
import os
import re
import sys

from fail2ban.client.filterreader import FilterReader
from fail2ban.server.failregex import Regex as F2bRegex
from fail2ban.server.datedetector import DateDetector

config_dir, logs_dir = sys.argv[1], sys.argv[2]
extra_file = sys.argv[3] if len(sys.argv) > 3 else None


def expand(regex):
    """The exact string fail2ban hands to re.compile."""
    return F2bRegex(regex)._regex


def filter_regexes(name):
    base = FilterReader(name, "probe", {}, share_config={}, basedir=config_dir)
    base.read()
    base.getOptions({})
    modes = {"normal"}
    for opt in base._cfg.options("Definition"):
        for prefix in ("mdre-", "mdpr-"):
            if opt.startswith(prefix):
                modes.add(opt[len(prefix):])
    found = []
    for mode in sorted(modes):
        for extra in ({}, {"publickey": "invalid"}, {"publickey": "any"}):
            opts = {"mode": mode}
            opts.update(extra)
            reader = FilterReader(name, "probe", opts, share_config={}, basedir=config_dir)
            if not reader.read():
                continue
            reader.getOptions({})
            try:
                combined = reader.getCombined()
            except Exception:
                continue
            multiline = int(combined.get("maxlines") or 1) > 1
            for key in ("prefregex", "failregex", "ignoreregex"):
                value = combined.get(key)
                if not value:
                    continue
                for raw in value.split("\n"):
                    if raw.strip():
                        found.append((expand(raw), multiline, mode == "normal" and not extra))
    return found


def date_regexes():
    detector = DateDetector()
    detector.addDefaultTemplate()
    out = []
    for template in detector.templates:
        out.append(template.template.regex)
    return out


patterns = {}
for path in sorted(glob.glob(os.path.join(config_dir, "filter.d", "*.conf"))):
    name = os.path.basename(path)[: -len(".conf")]
    try:
        regexes = filter_regexes(name)
    except Exception as e:  # a filter the reader cannot load alone
        print("skip %s: %s" % (name, e), file=sys.stderr)
        continue
    for regex, multiline, default in regexes:
        patterns.setdefault((regex, multiline), [name, False])
        if default:
            patterns[(regex, multiline)][1] = True
for regex in date_regexes():
    patterns.setdefault((regex, False), ["datedetector", True])

lines = []
for path in sorted(glob.glob(os.path.join(logs_dir, "*"))):
    if not os.path.isfile(path):
        continue
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            line = line.rstrip("\r\n")
            if line.startswith("#") or not line.strip():
                continue
            lines.append(line)
if extra_file:
    with open(extra_file, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if line and not line.startswith("#"):
                lines.append(line.encode().decode("unicode_escape") if "\\" in line else line)
# Deduplicate, keep order; every line is matched as fail2ban sees it (trailing newline).
seen = set()
texts = []
for line in lines:
    if line not in seen:
        seen.add(line)
        texts.append(line + "\n")


def byte_offset(text, index):
    return len(text[:index].encode("utf-8"))


out_patterns = []
for (regex, multiline), (origin, default) in patterns.items():
    flags = re.MULTILINE if multiline else 0
    try:
        compiled = re.compile(regex, flags)
    except re.error as e:
        out_patterns.append({"pattern": regex, "multiline": multiline, "origin": origin,
                             "default": default, "error": str(e)})
        continue
    results = []
    for i, text in enumerate([] if os.environ.get("CORPUS_PATTERNS_ONLY") else texts):
        m = compiled.search(text)
        if m is None:
            continue
        spans = []
        for g in range(compiled.groups + 1):
            s, e = m.span(g)
            spans.append(None if s < 0 else [byte_offset(text, s), byte_offset(text, e)])
        results.append([i, spans])
    out_patterns.append({"pattern": regex, "multiline": multiline, "origin": origin,
                         "default": default, "groups": compiled.groups, "names": dict(compiled.groupindex),
                         "matches": results})

json.dump({"lines": texts, "patterns": out_patterns}, sys.stdout)
