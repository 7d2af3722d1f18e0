"""The Markdown table bench.py prints: one row per measurement, baseline and project side by side."""

from dataclasses import dataclass

COLUMNS = ("benchmark", "baseline", "this project", "result", "goal", "measured on")


@dataclass(frozen=True)
class Row:
    benchmark: str
    baseline: str
    project: str
    result: str
    goal: str
    measured_on: str

    def cells(self) -> tuple[str, ...]:
        return (self.benchmark, self.baseline, self.project, self.result, self.goal, self.measured_on)


def markdown_table(rows: list[Row]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "|".join(" --- " for _ in COLUMNS) + "|"]
    lines += ["| " + " | ".join(cell.replace("|", "/") for cell in row.cells()) + " |" for row in rows]
    return "\n".join(lines)


def format_seconds(seconds: float) -> str:
    """A duration with a unit that keeps three significant figures readable (µs, ms or s)."""
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds:.2f} s"


def format_ratio(ratio: float) -> str:
    """812x, 12.5x, 1.07x: whole numbers once the digits after the point stop mattering."""
    if ratio >= 100:
        return f"{ratio:.0f}x"
    if ratio >= 10:
        return f"{ratio:.1f}x"
    return f"{ratio:.2f}x"


def format_bytes(count: float) -> str:
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if count >= size:
            return f"{count / size:.1f} {unit}"
    return f"{count:.0f} B"
