"""Templates show fractions, times, modes, backbones and runs only through the built-in filters of
webapp/core/templatetags/present.py (docs/decisions.md, "One presentation per value")."""

import re
from pathlib import Path

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"

# Ways of writing these values that bypass the filters above. floatformat stays for plain numbers
# (loss, a temperature, milliseconds), never for an accuracy-like value.
FORBIDDEN = {
    r"\|date\b": "a time: use |when",
    r"\|time\b": "a time: use |when",
    r"naturaltime|naturalday|timesince|timeuntil": "a relative time: use |when",
    r"\b[\w.]*(accuracy|precision|recall|f1|share|progress|threshold|coverage|agreement|fraction|points)"
    r"\|floatformat": "a fraction: use |percent (or |points)",
    r"\{\{\s*[\w.]*\bmode\s*\}\}": "a raw mode: use |mode_name",
    r"\{\{\s*[\w.]*\bbackbone\s*\}\}": "a raw backbone: use |backbone_name",
    r"(Run|#|job) ?\{\{\s*[\w.]*\.pk\s*\}\}": "a global job id as a run's name: use job.run_label",
    r"load [\w ]*\bexperiment_tags\b": "the old per-app filters: the present library is built in",
}


def test_no_template_formats_these_values_by_hand():
    problems = []
    for path in sorted(TEMPLATES.rglob("*.html")):
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            for pattern, advice in FORBIDDEN.items():
                if re.search(pattern, line):
                    problems.append(f"{path.relative_to(TEMPLATES)}:{number}: {advice}")
    assert not problems, "\n".join(problems)
