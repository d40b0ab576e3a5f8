# Copyright (c) hivit_mm contributors. Licensed under the Apache License 2.0.
"""The model zoo's two chores: the metafiles' figures and the README's table.

    python tools/misc/model_zoo.py stats [NAME ...]   # params / FLOPs, computed vs stated
    python tools/misc/model_zoo.py readme [--check]   # write (or check) README's table

``stats`` builds each model of ``model-index.yml`` (all, or the names given) and prints
its parameter count and FLOPs next to what its metafile states (see
:func:`hivit_mm.apis.model_complexity` for the definitions); it exits 1 on a mismatch.
``readme`` writes the model-zoo table of README.md, between its ``model zoo`` markers,
from the metafiles; ``--check`` exits 1 if the README's table is not what it would write.
"""
import argparse
import os.path as osp
import re
import sys
from typing import Any, Dict, List, Optional

from hivit_mm.apis import load_model_index, model_complexity

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
BEGIN = '<!-- model zoo: begin (written by tools/misc/model_zoo.py readme) -->'
END = '<!-- model zoo: end -->'


def _task(entry: Dict[str, Any]) -> str:
    results = entry.get('Results') or []
    return ', '.join(sorted({r['Task'] for r in results})) or 'Pre-training'


def _paper_result(entry: Dict[str, Any]) -> str:
    """The paper's figure, as stated: from ``Results`` + ``Results Source``, or
    ``Paper Result`` (pre-training models, whose figure is a downstream one)."""
    if entry.get('Paper Result'):
        return entry['Paper Result']
    if not entry.get('Results Source'):
        return ''
    metrics = [f'{v} {k}' for r in entry['Results'] for k, v in r['Metrics'].items()
               if v is not None]
    return f'{", ".join(metrics)}; {entry["Results Source"]}'


def table(models: Dict[str, Dict[str, Any]]) -> str:
    """The README's model-zoo table, one row per model, in the index's order."""
    head = ['name (`get_model` / `init_model`)', 'task', 'architecture', 'params',
            'FLOPs', 'input', 'paper\'s result', 'weights']
    rows = [head, ['---'] * len(head)]
    for name, entry in models.items():
        meta = entry['Metadata']
        size = meta.get('Input Size', [224, 224])
        weights = f'[download]({entry["Weights"]})' if entry.get(
            'Weights') else 'none yet'
        config = osp.relpath(entry['config'], REPO)
        rows.append([
            f'[`{name}`]({config})', _task(entry), meta.get('Architecture', ''),
            f'{meta["Parameters"] / 1e6:.2f}M', f'{meta["FLOPs"] / 1e9:.2f}G',
            f'{size[0]}x{size[1]}', _paper_result(entry), weights
        ])
    return '\n'.join('| ' + ' | '.join(str(c) for c in row) + ' |' for row in rows)


def readme_with_table(readme: str, models: Dict[str, Dict[str, Any]]) -> str:
    """``readme`` with the text between the markers replaced by :func:`table`."""
    pattern = re.compile(re.escape(BEGIN) + '.*?' + re.escape(END), re.S)
    if not pattern.search(readme):
        raise ValueError(f'README.md has no "{BEGIN}" ... "{END}" markers')
    return pattern.sub(lambda _: f'{BEGIN}\n\n{table(models)}\n\n{END}', readme)


def stats(names: Optional[List[str]]) -> int:
    """Print computed vs stated figures; return the number of mismatches."""
    models = load_model_index()
    bad = 0
    for name in names or list(models):
        meta = models[name.lower()]['Metadata']
        params, flops = model_complexity(name)
        ok = (params, flops) == (meta['Parameters'], meta['FLOPs'])
        bad += not ok
        print(f'{"ok " if ok else "BAD"} {name}: params {params} (stated '
              f'{meta["Parameters"]}), FLOPs {flops} (stated {meta["FLOPs"]})',
              flush=True)
    return bad


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest='command', required=True)
    p_stats = sub.add_parser('stats', help='computed vs stated params and FLOPs')
    p_stats.add_argument('names', nargs='*', help='model names (default: all)')
    p_readme = sub.add_parser('readme', help="write README.md's model-zoo table")
    p_readme.add_argument('--check', action='store_true',
                          help='only check that the table is up to date')
    args = parser.parse_args(argv)
    if args.command == 'stats':
        return int(stats(args.names) > 0)
    path = osp.join(REPO, 'README.md')
    with open(path) as f:
        readme = f.read()
    new = readme_with_table(readme, load_model_index())
    if args.check:
        if new != readme:
            print('README.md: the model-zoo table is out of date; run '
                  'python tools/misc/model_zoo.py readme', file=sys.stderr)
            return 1
        return 0
    with open(path, 'w') as f:
        f.write(new)
    print(f'wrote the model-zoo table of {path}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
