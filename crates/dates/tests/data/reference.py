"""Runs fail2ban's own date detection for rampart-dates' differential test.

Usage (fail2ban's package directory on PYTHONPATH, TZ set by the caller):
  reference.py datepatterns <config dir>   -> {"<filter>": "<datepattern>", ...}
  reference.py run < request.json          -> one result object per case

A request is {"cases": [{"id", "datepattern", "logtimezone", "now", "lines"}]}. Each case
gets a fresh DateDetector set up the way fail2ban's Filter.setDatePattern does it, with
fail2ban's clock frozen at "now", and every line goes through matchTime and, when the
date text is not empty, getTime, as Filter.processLine does. Results per line:
  null                      no template matched
  [start, end, time, null]  character span of group 1 and the time (null if getTime
                            gave None, i.e. a ValueError)
  [start, end, null, "X"]   getTime raised exception X (the line is lost in fail2ban)
  {"fatal": "X"}            matchTime itself raised X
"""
import json
import os
import re
import sys


def datepatterns(config_dir):
    from fail2ban.client.filterreader import FilterReader
    out = {}
    for conf in sorted(os.listdir(os.path.join(config_dir, "filter.d"))):
        if not conf.endswith(".conf"):
            continue
        name = conf[:-5]
        try:
            reader = FilterReader(name, "jail", {}, share_config={}, basedir=config_dir)
            if not reader.read():
                continue
            reader.getOptions({})
            stream = reader.convert()
        except Exception:
            continue
        for command in stream:
            if command[:3] == ["set", "jail", "datepattern"]:
                out[name] = command[3]
    json.dump(out, sys.stdout)


def run_case(case):
    from fail2ban.server.datedetector import DateDetector
    from fail2ban.server.mytime import MyTime

    MyTime.setTime(case["now"])
    detector = DateDetector()
    result = {"id": case["id"], "setup_error": None, "results": [], "templates": []}
    try:
        detector.default_tz = case.get("logtimezone")
        pattern = case.get("datepattern")
        if pattern is not None:
            for p in filter(bool, map(str.strip, re.split("\n+", pattern))):
                detector.appendTemplate(p)
    except Exception as e:
        result["setup_error"] = type(e).__name__
        return result
    for line in case["lines"]:
        try:
            match, template = detector.matchTime(line)
        except re.error:
            result["setup_error"] = "error"
            return result
        except Exception as e:
            result["results"].append({"fatal": type(e).__name__})
            continue
        if not match:
            result["results"].append(None)
            continue
        start, end = match.start(1), match.end(1)
        if start < 0:
            start = end = 0
        text = line[start:end]
        time, error = None, None
        if text:
            try:
                date = detector.getTime(text, (match, template))
                time = None if date is None else float(date[0])
            except Exception as e:
                error = type(e).__name__
        result["results"].append([start, end, time, error])
    result["templates"] = [[t.name, t.hits] for t in detector.templates]
    return result


def run():
    request = json.load(sys.stdin)
    out = [run_case(case) for case in request["cases"]]
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    if sys.argv[1] == "datepatterns":
        datepatterns(sys.argv[2])
    else:
        run()
