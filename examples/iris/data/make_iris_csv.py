# Copyright (c) NGA4M developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Write examples/iris/data/iris.csv from the copy of the iris data set bundled with scikit-learn.

Nothing is downloaded: ``sklearn.datasets.load_iris`` reads the CSV shipped inside
the scikit-learn wheel. Output: 150 rows in the bundled order, header

    sepal_length,sepal_width,petal_length,petal_width,species

with lengths in cm (one decimal, as published) and ``species`` as the class *name*
(setosa, versicolor, virginica). The pipeline maps names to class indices in that
fixed order (setosa=0, versicolor=1, virginica=2), which is also the order of the
model's ``probabilities`` output.

Usage: python examples/iris/data/make_iris_csv.py [--output PATH] [--check]
(--check compares with the existing file and exits 1 when it differs).
"""

import argparse
import io
import os
import sys

COLUMNS = ("sepal_length", "sepal_width", "petal_length", "petal_width", "species")
CLASS_NAMES = ("setosa", "versicolor", "virginica")
DEFAULT_OUTPUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "iris.csv")


def render():
    """The CSV text (deterministic: bundled row order, one decimal, LF line endings)."""
    from sklearn.datasets import load_iris  # pylint: disable=import-outside-toplevel

    bunch = load_iris()
    names = [str(n) for n in bunch.target_names]
    if tuple(names) != CLASS_NAMES:
        raise SystemExit(f"unexpected class names in scikit-learn's iris copy: {names}")
    out = io.StringIO()
    out.write(",".join(COLUMNS) + "\n")
    for row, target in zip(bunch.data, bunch.target):
        out.write(",".join(f"{value:.1f}" for value in row) + f",{CLASS_NAMES[int(target)]}\n")
    return out.getvalue()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--output", default=DEFAULT_OUTPUT, help="CSV file to write (default: %(default)s)")
    parser.add_argument("--check", action="store_true", help="only compare with the existing file")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        try:
            with open(args.output, encoding="utf-8") as handle:
                same = handle.read() == text
        except OSError:
            same = False
        print(f"{args.output}: {'up to date' if same else 'differs from scikit-learn iris'}")
        return 0 if same else 1
    with open(args.output, "w", encoding="utf-8", newline="\n") as handle:
        handle.write(text)
    print(f"wrote {args.output} ({text.count(chr(10)) - 1} rows)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
