#!/usr/bin/env python3
"""tools/scan_round_trips.py [BUILD_DIR]: look for the GCC 12.2 miscompile that
dropped ASGD's float32 rounding (engine/src/optim.c, float32_value).

GCC 12.2 at -O3 packs adjacent scalar (double)(float)x round trips into one
vector conversion pair in its SLP vectorizer; a later FRE pass then folds
(vector double)(vector float)v back to v, so the rounding silently vanishes.
This compiles every C file of BUILD_DIR (default build, an optimized build:
its compile_commands.json) once more, without LTO and with the vectorizer's
dump, and prints each function whose dump holds a float vector widened back
to double. Exit status 1 when one is found. Run by hand after changing code
that rounds to float32 in a double; takes a few minutes (each file is compiled
again). The LTO link can inline its way into new pairs: for those, add
-fdump-tree-slp2 -dumpdir DIR/ to the link command of nn.so and grep DIR's
*.slp2 dumps for "(vector(N) double)" the same way.
"""
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile

build = sys.argv[1] if len(sys.argv) > 1 else "build"
commands = json.load(open(os.path.join(build, "compile_commands.json")))
widen = re.compile(r"(\S+) = \(vector\(\d+\) double\) (\S+);")
found = 0
with tempfile.TemporaryDirectory() as dumps:
    for entry in commands:
        source = entry["file"]
        if not source.endswith(".c"):
            continue
        args, skip = [], False
        for arg in shlex.split(entry["command"])[1:]:
            if skip:
                skip = False
            elif arg in ("-o", "-MF", "-MT"):
                skip = True
            elif not (arg.startswith("-flto") or arg.startswith("-Werror") or arg in
                      ("-fno-fat-lto-objects", "-MD", "-c", source)):
                args.append(arg)
        base = os.path.join(dumps, "%d_%s" % (len(os.listdir(dumps)), os.path.basename(source)))
        run = subprocess.run(["gcc"] + args + ["-c", source, "-o", os.devnull, "-fdump-tree-slp2",
                                               "-dumpbase", base],
                             cwd=entry["directory"], capture_output=True, text=True)
        if run.returncode != 0:
            print("%s: does not compile on its own: %s" % (source, run.stderr.strip()[:200]))
            found += 1
            continue
        dump = [f for f in os.listdir(dumps) if f.startswith(os.path.basename(base)) and f.endswith("slp2")]
        if not dump:
            continue
        text = open(os.path.join(dumps, dump[0])).read()
        for match in widen.finditer(text):
            narrowed = re.escape(match.group(2)) + r" = \(vector\(\d+\) float\) "
            if re.search(narrowed, text):
                function = text[text.rfind(";; Function", 0, match.start()):].split("\n", 1)[0]
                print("%s: %s: %s" % (source, function, match.group(0).strip()))
                found += 1
print("%d float32 round trips at risk" % found)
sys.exit(1 if found else 0)
