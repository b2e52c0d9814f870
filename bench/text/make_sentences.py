#!/usr/bin/env python3
"""Builds English sentence sets for the text-encoder bench from the docstrings of this machine's Python standard
library (real prose, no network): calib.txt and eval.txt, disjoint, deterministic for a given Python install.

usage: python3 bench/text/make_sentences.py OUT_DIR [--calib 300] [--eval 600]
"""
import ast, os, random, re, sys, sysconfig

def sentences():
    root = sysconfig.get_paths()["stdlib"]
    seen = set()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in ("test", "tests", "idlelib", "lib2to3", "site-packages", "dist-packages"))
        for name in sorted(filenames):
            if not name.endswith(".py"):
                continue
            try:
                tree = ast.parse(open(os.path.join(dirpath, name), encoding="utf-8").read())
            except (SyntaxError, UnicodeDecodeError, ValueError):
                continue
            for node in ast.walk(tree):
                if not isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                    continue
                doc = ast.get_docstring(node)
                if not doc:
                    continue
                for para in re.split(r"\n\s*\n", doc):
                    text = " ".join(para.split())
                    for s in re.split(r"(?<=[.!?])\s+", text):
                        words = s.split()
                        if 6 <= len(words) <= 40 and s[0].isupper() and s[-1] == "." and not re.search(r"[>{}=_\\|]|::|\(\)", s):
                            if s not in seen:
                                seen.add(s)
                                yield s

def main():
    out = sys.argv[1]
    n_calib = int(sys.argv[sys.argv.index("--calib") + 1]) if "--calib" in sys.argv else 300
    n_eval = int(sys.argv[sys.argv.index("--eval") + 1]) if "--eval" in sys.argv else 600
    all_sentences = sorted(sentences())
    random.Random(0).shuffle(all_sentences)
    if len(all_sentences) < n_calib + n_eval:
        sys.exit(f"only {len(all_sentences)} sentences found")
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "calib.txt"), "w") as f:
        f.write("\n".join(all_sentences[:n_calib]) + "\n")
    with open(os.path.join(out, "eval.txt"), "w") as f:
        f.write("\n".join(all_sentences[n_calib:n_calib + n_eval]) + "\n")
    print(f"{len(all_sentences)} sentences; wrote {n_calib} calibration and {n_eval} evaluation sentences to {out}")

main()
