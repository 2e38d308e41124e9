import json

import pytest

from ysh.catalog.feeds import FeedFormatError, decode_text, detect_delimiter, read_feed

PT_HEADER = "Código;Descrição;Marca;Potência (Wp);Preço\n"
PT_ROW = "JAM-550;Módulo Fotovoltaico JA Solar JAM72S30-550/MR 550W;JA Solar;550;R$ 612,50\n"


def test_latin1_feed_is_decoded_with_its_accents():
    feed = read_feed((PT_HEADER + PT_ROW).encode("latin-1"), "dist.csv")
    assert feed.encoding == "cp1252"
    assert feed.headers == ["Código", "Descrição", "Marca", "Potência (Wp)", "Preço"]
    assert feed.records[0].fields["Descrição"].startswith("Módulo")


def test_utf8_bom_is_stripped_from_the_first_header():
    feed = read_feed(("\ufeff" + PT_HEADER + PT_ROW).encode("utf-8"), "dist.csv")
    assert feed.encoding == "utf-8-sig"
    assert feed.headers[0] == "Código"


def test_cp1252_only_characters_decode():
    text, encoding = decode_text("Preço “promoção” – 10%".encode("cp1252"))
    assert encoding == "cp1252"
    assert "“promoção”" in text


@pytest.mark.parametrize("line, delimiter", [("a;b;c", ";"), ("a,b,c", ","), ("a\tb\tc", "\t"),
                                              ('"a;x",b,c', ",")])
def test_delimiter_detection_ignores_quoted_separators(line, delimiter):
    assert detect_delimiter(line) == delimiter


def test_comma_csv_with_quoted_commas_and_decimal_commas():
    data = b'sku,descricao,potencia_kw,preco\nA1,"Modulo, 550W","0,55","1.234,56"\n'
    record = read_feed(data, "x.csv").records[0]
    assert record.fields == {"sku": "A1", "descricao": "Modulo, 550W", "potencia_kw": "0,55",
                             "preco": "1.234,56"}


def test_line_numbers_are_physical_lines_skipping_blank_ones():
    data = b"sku;preco\nA;1\n\n\nB;2\n;\nC;3\n"
    feed = read_feed(data, "x.csv")
    assert [(r.line, r.fields["sku"]) for r in feed.records] == [(2, "A"), (5, "B"), (7, "C")]


def test_a_quoted_field_spanning_lines_keeps_its_starting_line():
    data = b'sku;descricao\nA;"linha 1\nlinha 2"\nB;x\n'
    feed = read_feed(data, "x.csv")
    assert [(r.line, r.fields["sku"]) for r in feed.records] == [(2, "A"), (4, "B")]
    assert feed.records[0].fields["descricao"] == "linha 1\nlinha 2"


def test_short_rows_get_missing_fields_as_none():
    feed = read_feed(b"sku;marca;preco\nA;JA\n", "x.csv")
    assert feed.records[0].fields == {"sku": "A", "marca": "JA", "preco": None}
    assert feed.records[0].error is None


def test_rows_with_extra_values_are_malformed():
    feed = read_feed(b"sku;preco\nA;1;surprise\n", "x.csv")
    assert feed.records[0].error == "malformed_row"
    assert feed.records[0].extra == ("surprise",)


def test_trailing_empty_separator_is_not_an_extra_value():
    feed = read_feed(b"sku;preco;\nA;1;\n", "x.csv")
    assert feed.records[0].error is None


def test_crlf_line_endings():
    feed = read_feed(b"sku;preco\r\nA;1\r\nB;2\r\n", "x.csv")
    assert [r.fields["sku"] for r in feed.records] == ["A", "B"]


def test_json_array_keeps_numbers_as_numbers():
    data = json.dumps([{"sku": "a", "price": 1.234, "power_w": 550}]).encode()
    feed = read_feed(data, "x.json")
    assert feed.format == "json"
    assert feed.records[0].fields == {"sku": "a", "price": 1.234, "power_w": 550}
    assert feed.records[0].line == 1


def test_json_object_wrapping_a_list():
    data = json.dumps({"produtos": [{"sku": "a"}, {"sku": "b"}]}).encode()
    assert [r.fields["sku"] for r in read_feed(data, "x.json").records] == ["a", "b"]


def test_json_array_element_that_is_not_an_object_is_malformed():
    feed = read_feed(b'[{"sku": "a"}, 42]', "x.json")
    assert feed.records[1].error == "malformed_record"
    assert feed.records[1].line == 2


def test_truncated_json_array_is_a_file_error():
    with pytest.raises(FeedFormatError):
        read_feed(b'[{"sku": "a"}, {"sku": ', "x.json")


def test_jsonl_blank_and_broken_lines():
    data = b'{"sku": "a"}\n\n{"sku": "b"\n{"sku": "c"}\n'
    feed = read_feed(data, "x.jsonl")
    assert feed.format == "jsonl"
    assert [(r.line, r.error) for r in feed.records] == [(1, None), (3, "malformed_json"), (4, None)]


def test_jsonl_saved_with_json_extension_is_detected():
    feed = read_feed(b'{"sku": "a"}\n{"sku": "b"}\n', "feed.json")
    assert feed.format == "jsonl"
    assert len(feed.records) == 2


@pytest.mark.parametrize("data", [b"", b"\n\n", b"\xef\xbb\xbf", b"  \r\n"])
def test_an_empty_file_is_a_file_error_not_an_empty_feed(data):
    with pytest.raises(FeedFormatError) as error:
        read_feed(data, "x.csv")
    assert error.value.reason == "empty_file"


@pytest.mark.parametrize("data", [b"PK\x03\x04\x14\x00rest-of-an-xlsx", b"\xd0\xcf\x11\xe0old-xls",
                                  b"sku;preco\nA;1\x00\x00\n"])
def test_spreadsheets_and_binary_files_are_rejected_as_files(data):
    with pytest.raises(FeedFormatError, match="not a text feed"):
        read_feed(data, "tabela.xlsx")


def test_utf16_with_bom_is_decoded():
    feed = read_feed("sku\tpreço\nA\t1,5\n".encode("utf-16"), "x.txt")
    assert feed.encoding == "utf-16"
    assert feed.records[0].fields == {"sku": "A", "preço": "1,5"}


def test_utf8_bom_followed_by_latin1_bytes():
    feed = read_feed(b"\xef\xbb\xbf" + "Código;Preço\nA;1\n".encode("latin-1"), "x.csv")
    assert feed.headers == ["Código", "Preço"]


def test_an_unterminated_quote_does_not_swallow_the_next_rows():
    data = 'sku,descricao,preco\nA3,"unterminated,10\nA4,Módulo JA Solar 550W,5\nA5,ok,6\n'.encode()
    feed = read_feed(data, "x.csv")
    assert [(r.line, r.error, r.fields.get("sku")) for r in feed.records] == [
        (2, "malformed_row", None), (3, None, "A4"), (4, None, "A5")]
    assert feed.records[0].raw_text == 'A3,"unterminated,10'


def test_a_quoted_multiline_description_without_delimiters_is_kept():
    feed = read_feed(b'sku;descricao\nA;"Modulo\nmonocristalino"\nB;x\n', "x.csv")
    assert [(r.line, r.error) for r in feed.records] == [(2, None), (4, None)]


def test_repeated_and_empty_headers_keep_every_column():
    feed = read_feed(b"SKU;Pre\xc3\xa7o;Pre\xc3\xa7o;\nA;100,00;200,00;x\n", "x.csv")
    assert feed.headers == ["SKU", "Preço", "Preço#2", "_col4"]
    assert feed.records[0].fields == {"SKU": "A", "Preço": "100,00", "Preço#2": "200,00", "_col4": "x"}


def test_json_nan_and_infinity_stay_text():
    feed = read_feed(b'[{"sku": "a", "price": NaN, "stock": Infinity}]', "x.json")
    assert feed.records[0].fields == {"sku": "a", "price": "NaN", "stock": "Infinity"}
