"""Input files for the CLI tests."""


def write_csv(path, rows, header="f0,f1,f2,f3,label,external_id"):
    """Write ``rows`` under ``header`` as a CSV file; its path as a string."""
    path.write_text(header + "\n" + "\n".join(",".join(map(str, r)) for r in rows) + "\n")
    return str(path)
