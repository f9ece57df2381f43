"""The streaming CSV reader (crmkit._core.CsvReader) on real files."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from crmkit._core import CsvReader
from crmkit.errors import InvalidInputError

Row = list[str | None]


def read_all(reader: CsvReader) -> tuple[list[Row], list[int], list[int], list[tuple[int, str]]]:
    rows: list[Row] = []
    lines: list[int] = []
    ends: list[int] = []
    rejects: list[tuple[int, str]] = []
    for columns, chunk_lines, byte_ends, chunk_rejects in reader:
        assert len(columns) == len(reader.headers)
        assert all(len(c) == len(chunk_lines) for c in columns)
        assert len(byte_ends) == len(chunk_lines)
        rows.extend([list(r) for r in zip(*columns, strict=True)])
        lines.extend(chunk_lines)
        ends.extend(byte_ends)
        rejects.extend(chunk_rejects)
    return rows, lines, ends, rejects


def test_utf8_with_bom(tmp_path: Path) -> None:
    p = tmp_path / "bom.csv"
    p.write_bytes("\ufeffemail, name \r\nann@x.com,Ann\r\nbob@x.com,\r\n".encode())
    r = CsvReader(p)
    assert r.encoding == "utf-8"
    assert r.delimiter == ","
    assert r.headers == ["email", "name"]
    rows, lines, ends, rejects = read_all(r)
    assert rows == [["ann@x.com", "Ann"], ["bob@x.com", None]]
    assert lines == [2, 3]
    assert ends[-1] == p.stat().st_size
    assert rejects == []


@pytest.mark.parametrize("codec", ["utf-16", "utf-16-le", "utf-16-be"])
def test_utf16(tmp_path: Path, codec: str) -> None:
    text = "name\tcity\nJosé\tKöln\nZoë\t東京 🙂\n"
    p = tmp_path / "u16.csv"
    data = text.encode(codec)
    if codec != "utf-16":  # add the BOM the plain codec writes itself
        data = "\ufeff".encode(codec) + data
    p.write_bytes(data)
    r = CsvReader(p)
    assert r.encoding in ("utf-16le", "utf-16be")
    assert r.delimiter == "\t"
    rows, lines, ends, _ = read_all(r)
    assert rows == [["José", "Köln"], ["Zoë", "東京 🙂"]]
    assert lines == [2, 3]
    assert ends[-1] == len(data)
    rest, rest_lines, _, _ = read_all(CsvReader(p, start_byte=ends[0]))
    assert rest == rows[1:]
    assert rest_lines == [3]


def test_cp1252_with_accents(tmp_path: Path) -> None:
    p = tmp_path / "cp.csv"
    p.write_bytes("name,note\nJosé Müller,€5 – ok\n".encode("cp1252"))
    r = CsvReader(p)
    assert r.encoding == "windows-1252"
    assert read_all(r)[0] == [["José Müller", "€5 – ok"]]
    # An explicit encoding is used as given.
    assert CsvReader(p, encoding="cp1252").encoding == "windows-1252"


def test_semicolons_sniffed_or_given(tmp_path: Path) -> None:
    p = tmp_path / "semi.csv"
    p.write_text("a;b;c\n1;2,5;3\n", encoding="utf-8")
    r = CsvReader(p)
    assert r.delimiter == ";"
    assert read_all(r)[0] == [["1", "2,5", "3"]]
    r2 = CsvReader(p, delimiter=",")
    assert r2.headers == ["a;b;c"]
    assert read_all(r2)[3] == [(2, "expected 1 fields, found 2")]


def test_quoted_newlines_keep_line_numbers(tmp_path: Path) -> None:
    p = tmp_path / "q.csv"
    p.write_text('id,note\n1,"two\nlines"\n\n2,"three\n\nlines"\n3,x\n', encoding="utf-8")
    rows, lines, _, _ = read_all(CsvReader(p))
    assert rows == [["1", "two\nlines"], ["2", "three\n\nlines"], ["3", "x"]]
    assert lines == [2, 5, 8]


def test_ragged_rows_are_rejected_with_their_lines(tmp_path: Path) -> None:
    p = tmp_path / "ragged.csv"
    p.write_text("a,b\n1,2\n3\n4,5,6\n7,8\n", encoding="utf-8")
    rows, lines, _, rejects = read_all(CsvReader(p))
    assert rows == [["1", "2"], ["7", "8"]]
    assert lines == [2, 5]
    assert rejects == [(3, "expected 2 fields, found 1"), (4, "expected 2 fields, found 3")]


def test_oversized_field_rejected_by_column_not_value(tmp_path: Path) -> None:
    p = tmp_path / "big.csv"
    big = "z" * (2 * 1024 * 1024)
    p.write_text(f"id,bio\n1,short\n2,{big}\n3,ok\n", encoding="utf-8")
    rows, lines, _, rejects = read_all(CsvReader(p))
    assert rows == [["1", "short"], ["3", "ok"]]
    assert lines == [2, 4]
    assert len(rejects) == 1
    line, reason = rejects[0]
    assert line == 3
    assert "column 2" in reason and '"bio"' in reason and "zzz" not in reason


def test_undecodable_bytes_rejected(tmp_path: Path) -> None:
    p = tmp_path / "bad.csv"
    p.write_bytes(b"a,b\n1,caf\xc3\xa9\n2,\xff\xfe\n3,x\n")
    rows, _, _, rejects = read_all(CsvReader(p, encoding="utf-8"))
    assert rows == [["1", "café"], ["3", "x"]]
    assert [r[0] for r in rejects] == [3]
    assert rejects[0][1].startswith("undecodable bytes in column 2")


def test_resume_from_each_offset_gives_exactly_the_rest(tmp_path: Path) -> None:
    p = tmp_path / "resume.csv"
    with p.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["n", "text"])
        for i in range(300):
            w.writerow([str(i), f"line\nbreak {i}" if i % 5 == 0 else f"t{i}"])
    rows, lines, ends, _ = read_all(CsvReader(p, chunk_rows=32))
    assert len(rows) == 300
    for k in (0, 31, 32, 150, 298):
        rest, rest_lines, rest_ends, _ = read_all(CsvReader(p, start_byte=ends[k]))
        assert rest == rows[k + 1 :]
        assert rest_lines == lines[k + 1 :]
        assert rest_ends == ends[k + 1 :]
    assert read_all(CsvReader(p, start_byte=ends[-1]))[0] == []


def test_header_errors_name_the_position(tmp_path: Path) -> None:
    p = tmp_path / "dup.csv"
    p.write_text("email,name,email\n", encoding="utf-8")
    with pytest.raises(InvalidInputError, match="columns 1 and 3"):
        CsvReader(p)
    p.write_text("email,,name\n", encoding="utf-8")
    with pytest.raises(InvalidInputError, match="empty header name in column 2"):
        CsvReader(p)


def test_file_and_option_errors(tmp_path: Path) -> None:
    missing = tmp_path / "missing.csv"
    with pytest.raises(FileNotFoundError, match=r"missing\.csv"):
        CsvReader(missing)
    p = tmp_path / "ok.csv"
    p.write_text("a,b\n1,2\n", encoding="utf-8")
    with pytest.raises(InvalidInputError, match="header"):
        CsvReader(p, start_byte=1)
    with pytest.raises(InvalidInputError, match="past the end"):
        CsvReader(p, start_byte=10_000)
    with pytest.raises(InvalidInputError, match="unknown encoding"):
        CsvReader(p, encoding="klingon")
    with pytest.raises(InvalidInputError, match="delimiter"):
        CsvReader(p, delimiter=";;")


def _rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    pytest.skip("no /proc/self/status")


def test_large_file_in_chunks_with_flat_memory(tmp_path: Path) -> None:
    p = tmp_path / "large.csv"
    n = 200_000
    with p.open("w", encoding="utf-8") as f:
        f.write("id,email,first_name,last_name,city,note\n")
        for i in range(n):
            f.write(f"{i},user{i}@example.com,First{i},Last{i},City{i % 97},{'x' * 40}\n")
    size = p.stat().st_size
    total = 0
    baseline = 0
    peak = 0
    for k, (columns, lines, _, rejects) in enumerate(CsvReader(p, chunk_rows=10_000)):
        assert not rejects
        assert len(columns[0]) <= 10_000
        total += len(lines)
        del columns
        rss = _rss_bytes()
        if k == 1:
            baseline = rss
        peak = max(peak, rss)
    assert total == n
    # Keeping rows around would grow by far more than the file's size; a streaming
    # reader stays within a few chunks of where it started.
    assert peak - baseline < size // 2, (peak - baseline, size)


def test_chunks_parsed_ahead_arrive_in_order_with_their_position(tmp_path: Path) -> None:
    p = tmp_path / "many.csv"
    with p.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["email", "n"])
        w.writerows([f"p{i}@x.org", str(i)] for i in range(1000))
    whole = read_all(CsvReader(p, chunk_rows=5000))
    r = CsvReader(p, chunk_rows=7)
    assert r.position < p.stat().st_size  # nothing handed out yet
    rows: list[Row] = []
    for columns, _lines, byte_ends, _rejects in r:
        rows.extend([list(x) for x in zip(*columns, strict=True)])
        # The position is the end of the last record handed out, not of what
        # the reader has parsed ahead.
        assert r.position == byte_ends[-1]
    assert rows == whole[0]
    assert r.position == p.stat().st_size
    assert next(iter(r), None) is None  # stays at the end


def test_a_reader_dropped_half_way_lets_go_of_the_file(tmp_path: Path) -> None:
    p = tmp_path / "many.csv"
    p.write_text("email\n" + "".join(f"p{i}@x.org\n" for i in range(500)), encoding="utf-8")
    for _ in range(20):
        r = CsvReader(p, chunk_rows=3)
        next(iter(r))
        del r
    rows, *_ = read_all(CsvReader(p, chunk_rows=50))
    assert len(rows) == 500
